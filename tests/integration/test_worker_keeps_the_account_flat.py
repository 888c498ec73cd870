"""While the latch is on, the worker keeps the account flat by itself: it closes a position
that appears after the account was flat, and it retries a flatten that ended in
``FlattenIncomplete`` once the venue answers again, with nobody else calling the flattener."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from adapters.paper.faults import FaultSettings
from adapters.paper.venue import PaperVenue
from app.bootstrap import Core, bootstrap
from app.config import Settings
from app.entrypoints.worker import Worker
from app.processes.flattener import positions_and_orders
from domain.emergency import Emergency
from domain.ids import EMERGENCY_ID
from tests.integration.paper_drill import open_account, place, running
from tests.waiting import wait_for

BTC = "BTC/USDT:USDT"


def emergency_events(core: Core) -> list[object]:
    return list(core.store.events.get(EMERGENCY_ID))


def attempts(core: Core) -> list[Emergency.FlattenAttempted]:
    return [e for e in emergency_events(core) if isinstance(e, Emergency.FlattenAttempted)]


def recorded_flat(core: Core) -> Callable[[], bool]:
    def flat() -> bool:
        emergency = core.commands.load_emergency()
        return emergency is not None and emergency.active and emergency.flat is True

    return flat


def test_the_worker_closes_a_position_that_appears_while_the_latch_is_on(core: Core) -> None:
    venue = core.venue()
    assert isinstance(venue, PaperVenue)
    open_account(venue, symbols=2, resting=1)
    core.commands.activate_emergency(reason="drill", actor="alice")
    # A short re-check interval (default 10 s) keeps the test short; the mechanism is the same.
    with running(Worker(core, verify_interval=0.5)):
        wait_for(recorded_flat(core), 30, what="the worker's first flatten")
        assert positions_and_orders(venue) == (0, 0)
        before = len(attempts(core))

        # A position opened at the venue by hand (outside tradecore) while the latch is on.
        place(venue, BTC, "buy", "0.05")
        assert positions_and_orders(venue) == (1, 0)

        wait_for(
            lambda: positions_and_orders(venue) == (0, 0),
            30,
            what="the reappeared position closed by the worker",
        )
    later = attempts(core)[before:]
    assert later, "no flatten attempt was recorded for the reappeared position"
    assert later[0].positions_open == 1
    assert [o["symbol"] for o in later[0].close_orders] == [BTC]
    emergency = core.commands.load_emergency()
    assert emergency is not None and emergency.active and emergency.flat is True


def test_the_worker_retries_an_incomplete_flatten_by_itself_once_the_venue_answers(
    settings: Settings,
) -> None:
    with bootstrap(settings.model_copy(update={"flatten_deadline": 0.5}), pool_size=8) as core:
        venue = core.venue()
        assert isinstance(venue, PaperVenue)
        open_account(venue, symbols=2, resting=1)
        venue.admin().set_faults(FaultSettings(error_rate=Decimal(1), seed=1))
        core.commands.activate_emergency(reason="drill", actor="alice")
        # Default intervals: an incomplete flatten is retried every 5 s.
        with running(Worker(core)):
            wait_for(
                lambda: any(
                    isinstance(e, Emergency.FlattenIncomplete) for e in emergency_events(core)
                ),
                30,
                what="the worker's flatten to give up at its deadline (FlattenIncomplete)",
            )
            emergency = core.commands.load_emergency()
            assert emergency is not None and emergency.flat is False
            assert positions_and_orders(venue.admin()) == (2, 1)

            venue.admin().set_faults(None)  # the venue answers again; nobody else acts
            wait_for(recorded_flat(core), 30, what="the worker's own retry to reach flat")
        assert positions_and_orders(venue.admin()) == (0, 0)
        events = emergency_events(core)
        incomplete_at = next(
            i for i, e in enumerate(events) if isinstance(e, Emergency.FlattenIncomplete)
        )
        assert any(isinstance(e, Emergency.AccountFlat) for e in events[incomplete_at:])
