"""The drawdown breaker as the README describes it around its feed: a mark move is read at
once (the NOTIFY), not at the next poll; its thread trips and flattens while the worker's
main loop is stuck; a forced reset during a hard breach resets, and the next reading trips
the stop again; the daily reset starts a new high-water mark on a new UTC day."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from adapters.clock import utc_now
from adapters.paper.venue import PaperVenue
from app.bootstrap import Core, bootstrap
from app.config import Settings
from app.entrypoints.worker import Duty, Worker
from app.entrypoints.worker.breaker import BreakerLoop
from app.processes.drawdown_breaker import Poll
from app.processes.flattener import positions_and_orders
from domain.account import Account
from domain.drawdown import BreakerState
from domain.errors import RefusedBySafetyRule
from domain.ids import account_id
from projections.policy_view import PolicyProjection
from projections.trade_store import TradeProjection
from tests.integration.held_rows import tracking_row_held
from tests.integration.paper_drill import funded, long_book, move, running
from tests.waiting import wait_for

BTC, ETH = "BTC/USDT:USDT", "ETH/USDT:USDT"
MARKS = {BTC: "50000", ETH: "3000"}


def readings(core: Core) -> list[Account.EquityRecorded]:
    events = core.store.events.get(account_id(core.settings.account))
    return [e for e in events if isinstance(e, Account.EquityRecorded)]


def account(core: Core) -> Account:
    found = core.drawdown_breaker().load()
    assert found is not None
    return found


def tripped_and_flat(core: Core) -> Callable[[], bool]:
    def check() -> bool:
        emergency = core.commands.load_emergency()
        return (
            emergency is not None
            and emergency.active
            and emergency.source == "drawdown"
            and emergency.flat is True
        )

    return check


# -- the feed ----------------------------------------------------------------------------------


@contextmanager
def slow_poll_book(settings: Settings) -> Iterator[tuple[Core, PaperVenue]]:
    """A core whose breaker polls every 60 s, far longer than any wait below (so a reading
    within one was pushed), with ``long_book`` open on its funded paper venue."""
    with bootstrap(settings.model_copy(update={"equity_interval": 60.0}), pool_size=8) as core:
        venue = funded(core, MARKS)
        long_book(venue)
        yield core, venue


def pushed_reading_of_the_move(core: Core, before: int, what: str) -> None:
    """The reading after the first ``before`` ones comes within 20 s, pushed by the mark's
    NOTIFY, and is lower than the one before it (the marks moved down)."""
    wait_for(lambda: len(readings(core)) > before, 20, what=what)
    last, new = readings(core)[before - 1 : before + 1]
    assert new.source == "paper:push", new.source
    assert new.status == "accepted" and new.equity < last.equity


def test_a_mark_move_is_read_at_once_through_its_notify_not_at_the_next_poll(
    settings: Settings,
) -> None:
    # The breaker's wait for a NOTIFY lasts up to the interval; a last mark move lets it see
    # the stop at once (it would otherwise linger after the worker for up to 60 s).
    with (
        slow_poll_book(settings) as (core, venue),
        running(Worker(core), wake=lambda: move(venue, "1")),
    ):
        wait_for(
            lambda: any(r.status == "accepted" for r in readings(core)),
            30,
            what="the worker's first reading, confirmed",
        )
        before = len(readings(core))
        move(venue, "0.99")  # -0.8 % of equity: no jump to confirm
        pushed_reading_of_the_move(
            core, before, "a reading of the moved marks (the poll would come only after 60 s)"
        )


class MovesAfterItsFirstReading(BreakerLoop):
    """The breaker loop, with the marks moved right after its first reading took them: the
    window between a reading and the loop's first wait for a NOTIFY."""

    def __init__(self, core: Core, venue: PaperVenue) -> None:
        super().__init__(core)
        self.venue = venue
        self.before_move: int | None = None  # readings recorded when the marks moved

    def read(self, trigger: str) -> Poll:
        poll = super().read(trigger)
        if self.readings == 1:
            # Counted here, not by the test: the pushed reading may be recorded before the
            # test's thread looks.
            self.before_move = len(readings(self.core))
            move(self.venue, "0.99")
        return poll


def test_a_mark_move_right_after_the_first_reading_is_read_at_once_not_at_the_next_poll(
    settings: Settings,
) -> None:
    with slow_poll_book(settings) as (core, venue):
        loop = MovesAfterItsFirstReading(core, venue)
        stop = threading.Event()
        thread = threading.Thread(target=loop.run, args=(stop,), daemon=True)
        thread.start()
        try:
            wait_for(lambda: loop.before_move is not None, 30, what="the first reading's move")
            assert loop.before_move is not None
            pushed_reading_of_the_move(
                core,
                loop.before_move,
                "a reading of the marks moved after the first (the poll: 60 s later)",
            )
        finally:
            stop.set()
            thread.join(timeout=10)
        assert not thread.is_alive(), "the breaker loop did not stop"


class StuckWorker(Worker):
    """A worker whose main loop is stuck in its first duty until ``release`` is set (at
    most 60 s): whatever holds a main loop up, a hung venue call, a slow model load."""

    def __init__(self, core: Core, entered: threading.Event, release: threading.Event) -> None:
        super().__init__(core)
        self.entered, self.release = entered, release

    def prepare(self) -> list[Duty]:
        def stuck() -> None:
            self.entered.set()
            self.release.wait(60)

        return [Duty("stuck", stuck, backoff=1.0), *super().prepare()]


def test_the_breaker_thread_trips_and_flattens_while_the_worker_main_loop_is_stuck(
    core: Core,
) -> None:
    venue = funded(core, MARKS)
    long_book(venue)
    entered, release = threading.Event(), threading.Event()
    with running(StuckWorker(core, entered, release), wake=release.set):
        wait_for(entered.is_set, 30, what="the main loop stuck in its first duty")
        wait_for(
            lambda: any(r.status == "accepted" for r in readings(core)),
            30,
            what="the breaker thread's first reading, confirmed",
        )
        move(venue, "0.85")  # a 12 % drawdown
        wait_for(tripped_and_flat(core), 20, what="the breaker's own trip and flatten")

        assert positions_and_orders(venue) == (0, 0)
        # Nothing of the main loop ran: the emergency supervision never flattened anything.
        assert not release.is_set() and entered.is_set()
        assert core.runner.positions()[0].position == 0, "no read model was caught up"
        release.set()
    assert account(core).breaker_state is BreakerState.HARD_BREACH


def test_a_read_model_held_by_another_transaction_does_not_stop_the_emergency_supervision(
    core: Core,
) -> None:
    # The worker's main loop catches up the read models before it supervises the emergency.
    # A transaction holding a read model's rows (here the test's; in life a stopped
    # process's) once held that catch-up, and with it the supervision, for as long as it
    # held them. Now the catch-up passes over the held one after READ_MODEL_LOCK_WAIT, and
    # the supervision flattens the operator's activation.
    venue = funded(core, MARKS)
    long_book(venue)
    core.runner.catch_up()  # every read model's tracking row exists
    with running(Worker(core)):
        wait_for(
            lambda: any(r.status == "accepted" for r in readings(core)),
            30,
            what="the worker's first reading, confirmed",
        )
        with tracking_row_held(core.engine, PolicyProjection.default_name):
            stuck_at = policy_view_position(core)
            core.commands.activate_emergency(reason="drill", actor="alice")  # recorded only
            wait_for(
                lambda: positions_and_orders(venue) == (0, 0),
                30,
                what="the worker's supervision flattening while the policy view is held",
            )
            assert policy_view_position(core) == stuck_at  # the lock held throughout
        head = core.runner.positions()[0].head
        wait_for(
            lambda: policy_view_position(core) >= head,
            30,
            what="the policy view caught up once its rows were free",
        )
    [view] = [p for p in core.runner.positions() if p.name == PolicyProjection.default_name]
    assert view.last_error is None and view.failures == 0, "a held read model is not failing"


def test_a_held_trade_store_does_not_stop_the_breaker_after_its_flatten(core: Core) -> None:
    # After its flatten the breaker's thread closes the trades, which needs the trade store
    # caught up. A transaction holding the trade store's rows (here the test's; in life a
    # stopped process's) once held the thread there, and no reading was taken until it
    # ended. Now it waits READ_MODEL_LOCK_WAIT at most, reads on, and the trades are
    # closed by a later check once the rows are free.
    venue = funded(core, MARKS)
    long_book(venue)
    core.runner.catch_up()  # every read model's tracking row exists
    with running(Worker(core)):
        wait_for(
            lambda: len(core.open_trade_ids()) == 2,
            30,
            what="the two positions adopted as trades by reconciliation",
        )
        trade_ids = core.open_trade_ids()

        def open_trades() -> int:  # as the log has them: the trade store is the one held
            return sum(core.store.repository.get(t).is_open for t in trade_ids)

        with tracking_row_held(core.engine, TradeProjection.default_name):
            move(venue, "0.85")  # a 12 % drawdown
            wait_for(tripped_and_flat(core), 20, what="the breaker's own trip and flatten")
            at_flat = len(readings(core))
            wait_for(
                lambda: len(readings(core)) >= at_flat + 3,
                20,
                what="readings after the flatten while the trade store is held",
            )
            assert positions_and_orders(venue) == (0, 0)
            assert open_trades() == 2, "the closes wait for the trade store"
        wait_for(lambda: open_trades() == 0, 30, what="the trades closed at a later check")
    [store] = [p for p in core.runner.positions() if p.name == TradeProjection.default_name]
    assert store.last_error is None and store.failures == 0, "a busy store is not failing"


def policy_view_position(core: Core) -> int:
    [view] = [p for p in core.runner.positions() if p.name == PolicyProjection.default_name]
    return view.position


# -- resets ------------------------------------------------------------------------------------


def test_a_forced_reset_during_a_hard_breach_resets_and_the_next_reading_trips_the_stop_again(
    core: Core,
) -> None:
    venue = funded(core, MARKS)
    long_book(venue)
    breaker = core.drawdown_breaker()
    breaker.poll()
    move(venue, "0.85")
    breaker.poll()
    assert account(core).breaker_state is BreakerState.HARD_BREACH
    report = core.flattener().run()
    assert report is not None and report.flat
    first = core.commands.load_emergency()
    assert first is not None and first.active and first.source == "drawdown"

    def exposure() -> tuple[int, int]:
        return positions_and_orders(venue)

    with pytest.raises(RefusedBySafetyRule, match="hard breach"):
        core.commands.reset_emergency(reason="early", actor="alice", venue_exposure=exposure)
    core.commands.reset_emergency(
        reason="reviewed, accepted", actor="alice", venue_exposure=exposure, force=True
    )
    reset = core.commands.load_emergency()
    assert reset is not None and not reset.active and reset.forced_reset is True
    assert account(core).breaker_state is BreakerState.HARD_BREACH  # the peak was not reset

    breaker.poll()  # the next reading, still past the hard threshold

    again = core.commands.load_emergency()
    assert again is not None and again.active and again.source == "drawdown"
    assert again.activation_number == first.activation_number + 1
    policy = core.commands.load_policy()
    assert policy is not None and policy.emergency_mode and not policy.allow_new_trades


class ShiftedClock:
    """The wall clock moved by ``offset`` (which a test may change): the one clock a core
    reads, as if the machine's time were elsewhere."""

    def __init__(self, offset: timedelta) -> None:
        self.offset = offset

    def __call__(self) -> datetime:
        return utc_now() + self.offset


@pytest.mark.parametrize("daily_reset", [True, False], ids=["daily-reset", "no-daily-reset"])
def test_the_daily_reset_starts_a_new_high_water_mark_at_the_first_reading_of_a_utc_day(
    settings: Settings, daily_reset: bool
) -> None:
    now = utc_now()
    before_midnight = datetime(now.year, now.month, now.day, 23, 58, tzinfo=UTC)
    clock = ShiftedClock(before_midnight - now)
    configured = settings.model_copy(update={"drawdown_daily_reset": daily_reset})
    with bootstrap(configured, clock=clock, pool_size=8) as core:
        venue = funded(core, MARKS)
        long_book(venue)
        breaker = core.drawdown_breaker()
        breaker.poll()
        move(venue, "0.96")  # about -3.2 % of equity: held, confirmed by the re-read
        breaker.poll()
        day_one = account(core)
        assert day_one.equity is not None and day_one.peak > day_one.equity

        clock.offset += timedelta(minutes=5)  # past midnight, UTC
        breaker.poll()

        after = account(core)
        resets = [e for e in core.store.events.get(after.id) if isinstance(e, Account.PeakReset)]
        if daily_reset:
            [reset] = resets
            assert (reset.old_peak, reset.new_peak) == (day_one.peak, day_one.equity)
            assert reset.reason == "daily reset of the high-water mark"
            assert (after.peak, after.drawdown) == (day_one.equity, Decimal(0))
        else:
            assert resets == []
            assert after.peak == day_one.peak and after.drawdown < 0
