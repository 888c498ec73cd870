"""The flattener's two ways past trouble of its own: an order sender that holds the order
flow past the barrier's timeout does not stop the sweep, and a flattener that dies after
its first attempt (before or after recording what that attempt did) leaves counts the next
one reports in full."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from adapters.locks import order_flow_lock
from adapters.paper.venue import PaperVenue
from app.bootstrap import Core
from app.processes.flattener import positions_and_orders
from domain.emergency import Emergency
from domain.ids import EMERGENCY_ID, ORDER_FLOW_LOCK
from domain.venue import Order, OrderRequest, Position, VenueError
from tests.integration.paper_drill import doubled_orders, open_account
from tests.waiting import wait_for


@pytest.fixture
def venue(core: Core) -> PaperVenue:
    venue = core.venue()
    assert isinstance(venue, PaperVenue)
    open_account(venue, symbols=2, resting=1)  # two longs, one resting limit order
    assert positions_and_orders(venue) == (2, 1)
    return venue


def emergency_events(core: Core) -> list[object]:
    return list(core.store.events.get(EMERGENCY_ID))


def test_a_sender_holding_the_order_flow_past_the_barrier_timeout_does_not_stop_the_sweep(
    core: Core, venue: PaperVenue, caplog: pytest.LogCaptureFixture
) -> None:
    core.commands.activate_emergency(reason="drill", actor="alice")
    flattener = core.flattener()
    flattener.barrier_timeout = 0.5  # default 10 s; the mechanism is the same
    # An order sender stuck past the gate: it holds the order flow (shared) throughout.
    with order_flow_lock(core.engine, ORDER_FLOW_LOCK, exclusive=False, timeout=5) as held:
        assert held
        report = flattener.run()
        assert positions_and_orders(venue) == (0, 0)  # swept while the sender still held it
    assert report is not None and report.flat, report
    assert (report.positions_closed, report.orders_canceled) == (2, 1)
    assert "still hold the order flow" in caplog.text and "sweeping anyway" in caplog.text
    assert doubled_orders(core.engine) == []


class Crash(BaseException):
    """The flattener's process dies here (not an error anything in it would handle)."""


class DiesAtTheCheckRead(PaperVenue):
    """The paper venue as a flattener process sees it that dies right after its first
    attempt: its cancels and closes reached the venue and their results are on record, and
    the process is gone before its next read could show the account flat."""

    def __init__(self, core: Core) -> None:
        super().__init__(core.engine, core.clock)
        self.core = core
        self.reads = 0

    def fetch_positions(self) -> list[Position]:
        self.reads += 1
        if self.reads == 2:

            def results_recorded() -> bool:
                events = emergency_events(self.core)
                return any(isinstance(e, Emergency.PositionsClosed) for e in events) and any(
                    isinstance(e, Emergency.OrdersCanceled) for e in events
                )

            wait_for(results_recorded, 10, what="the first attempt's results on record")
            raise Crash
        return super().fetch_positions()


class DiesAfterSendingTheCloses(PaperVenue):
    """The paper venue as a flattener process sees it that dies the moment its first
    attempt's cancels and closes have reached the venue: nothing of what they did is on
    record (only the attempt, recorded before they left)."""

    def __init__(self, core: Core) -> None:
        super().__init__(core.engine, core.clock)

    def create_orders(self, requests: list[OrderRequest]) -> list[Order | VenueError]:
        super().create_orders(requests)
        raise Crash


@pytest.mark.parametrize(
    "dying",
    [DiesAfterSendingTheCloses, DiesAtTheCheckRead],
    ids=["before-its-results-were-recorded", "after-its-results-were-recorded"],
)
def test_the_counts_after_a_flattener_died_mid_flatten_include_what_it_did(
    core: Core, venue: PaperVenue, dying: Callable[[Core], PaperVenue]
) -> None:
    core.commands.activate_emergency(reason="drill", actor="alice")
    with pytest.raises(Crash):
        core.flattener(venue=dying(core)).run()
    assert positions_and_orders(venue) == (0, 0)  # the dead one did the work
    assert [type(e) for e in emergency_events(core)].count(Emergency.FlattenAttempted) == 1
    emergency = core.commands.load_emergency()
    assert emergency is not None and emergency.flat is None  # but never saw it flat

    report = core.flattener().run()  # the restart (the worker's, or the operator's again)

    assert report is not None and report.flat, report
    assert (report.positions_closed, report.orders_canceled) == (2, 1)
    events = emergency_events(core)
    [triggered] = [e for e in events if isinstance(e, Emergency.Triggered)]
    assert (triggered.positions_closed, triggered.orders_canceled) == (2, 1)
    [flat] = [e for e in events if isinstance(e, Emergency.AccountFlat)]
    assert (flat.positions_closed, flat.orders_canceled) == (2, 1)
    emergency = core.commands.load_emergency()
    assert emergency is not None
    assert (emergency.positions_closed, emergency.orders_canceled) == (2, 1)
    assert doubled_orders(core.engine) == []
