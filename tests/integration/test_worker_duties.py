"""Each of the worker's duties driven alone, on real Postgres and the paper venue, with a
market clock where its timer matters: no supervisor, no threads but the ones a duty owns."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from adapters.clock import MarketClock, utc_now
from adapters.locks import SessionLock
from adapters.paper.venue import PaperVenue
from app.bootstrap import Core, bootstrap
from app.config import Settings
from app.entrypoints.worker.breaker import BreakerLoop
from app.entrypoints.worker.projections import CatchUp
from app.entrypoints.worker.reconciliation import Reconciliation
from app.entrypoints.worker.status import Heartbeat, Outages, record_start
from app.entrypoints.worker.supervision import EmergencySupervision
from app.entrypoints.worker.watchdog import LockWatchdog
from app.processes.flattener import FlattenReport, positions_and_orders
from app.processes.reconciliation import ReconcileReport
from domain.drawdown import Transition
from domain.ids import worker_lock_id
from projections.tables import worker_status
from tests.integration.paper_drill import funded, open_account, place
from tests.waiting import wait_for

BTC, ETH = "BTC/USDT:USDT", "ETH/USDT:USDT"


@pytest.fixture
def clock() -> MarketClock:
    return MarketClock(utc_now().replace(microsecond=0))


@pytest.fixture
def timed_core(settings: Settings, clock: MarketClock) -> Iterator[Core]:
    """A core on a market clock that moves only when the test moves it."""
    with bootstrap(settings, pool_size=8, clock=clock) as built:
        built.commands.update_policy(actor="operator", reason="open", allow_new_trades=True)
        yield built


def advance(clock: MarketClock, seconds: float) -> None:
    clock.advance_to(clock.now() + timedelta(seconds=seconds))


def status_row(core: Core) -> dict[str, object]:
    with core.engine.connect() as conn:
        return dict(conn.execute(select(worker_status)).one()._mapping)


# -- supervision ---------------------------------------------------------------------------------


def test_supervision_flattens_a_latched_account_then_rechecks_a_flat_one_only_after_its_interval(
    timed_core: Core, clock: MarketClock
) -> None:
    venue = timed_core.venue()
    assert isinstance(venue, PaperVenue)
    open_account(venue, symbols=2, resting=1)
    flattener = timed_core.flattener()
    runs: list[FlattenReport | None] = []

    def flatten() -> FlattenReport | None:
        runs.append(flattener.run())
        return runs[-1]

    duty = EmergencySupervision(timed_core, flatten, retry_interval=5.0, verify_interval=10.0)
    duty.run_once()
    assert runs == [], "no latch, no flatten"

    timed_core.commands.activate_emergency(reason="drill", actor="alice")
    duty.run_once()
    assert len(runs) == 1 and positions_and_orders(venue) == (0, 0)

    place(venue, BTC, "buy", "0.05")  # a position from outside while the latch is on
    advance(clock, 9)
    duty.run_once()
    assert len(runs) == 1, "a flat account is re-checked every verify_interval, not sooner"
    advance(clock, 1)
    duty.run_once()
    assert len(runs) == 2 and positions_and_orders(venue) == (0, 0)


# -- projections and outages -------------------------------------------------------------------


def test_the_first_catch_up_after_an_outage_counts_it_once(core: Core) -> None:
    record_start(core)
    outages = Outages(core)
    duty = CatchUp(core, outages)
    duty.run_once()
    assert status_row(core)["outages"] == 0, "no outage noted, none counted"

    assert outages.note() is True
    assert outages.note() is False, "an outage is noted once however often it is seen"
    core.commands.activate_emergency(reason="an event to catch up on", actor="alice")
    duty.run_once()
    row = status_row(core)
    assert row["outages"] == 1
    assert row["last_catch_up_events"] is not None and int(str(row["last_catch_up_events"])) >= 1
    assert outages.started is None

    duty.run_once()
    assert status_row(core)["outages"] == 1


# -- heartbeat -----------------------------------------------------------------------------------


def test_the_heartbeat_is_written_at_most_once_per_interval_of_the_core_clock(
    timed_core: Core, clock: MarketClock
) -> None:
    record_start(timed_core)
    started = status_row(timed_core)["heartbeat_at"]
    duty = Heartbeat(timed_core, interval=1.0)
    advance(clock, 0.5)
    duty.run_once()
    assert status_row(timed_core)["heartbeat_at"] == clock.now()
    advance(clock, 0.5)
    duty.run_once()
    assert status_row(timed_core)["heartbeat_at"] == clock.now() - timedelta(seconds=0.5)
    advance(clock, 0.5)
    duty.run_once()
    assert status_row(timed_core)["heartbeat_at"] == clock.now()
    assert started != clock.now()


# -- reconciliation ------------------------------------------------------------------------------


class CountingReconciler:
    """The core's real reconciler, counting its rounds."""

    def __init__(self, core: Core) -> None:
        self.real = core.reconciler()
        self.rounds = 0

    def run(self) -> ReconcileReport:
        self.rounds += 1
        return self.real.run()


def test_reconciliation_adopts_on_start_then_waits_out_its_interval(
    timed_core: Core, clock: MarketClock
) -> None:
    venue = funded(timed_core, {BTC: "50000", ETH: "3000"})
    place(venue, BTC, "buy", "0.01")  # opened outside tradecore
    reconciler = CountingReconciler(timed_core)
    duty = Reconciliation(timed_core, reconciler)
    duty.run_once()
    assert reconciler.rounds == 1
    assert len(timed_core.open_trade_ids()) == 1, "the outside position is adopted"

    place(venue, ETH, "buy", "0.1")
    advance(clock, timed_core.settings.reconcile_interval - 1)
    duty.run_once()
    assert reconciler.rounds == 1 and len(timed_core.open_trade_ids()) == 1
    advance(clock, 1)
    duty.run_once()
    assert reconciler.rounds == 2 and len(timed_core.open_trade_ids()) == 2


# -- breaker -------------------------------------------------------------------------------------


def test_a_breaker_reading_of_a_hard_breach_flattens_at_once(core: Core) -> None:
    venue = funded(core, {BTC: "50000", ETH: "3000"})
    place(venue, BTC, "buy", "0.1")
    place(venue, ETH, "buy", "1")
    loop = BreakerLoop(core)
    assert loop.read("poll").last is not None
    admin = venue.admin()
    admin.set_price(BTC, Decimal(50_000) * Decimal("0.85"))
    admin.set_price(ETH, Decimal(3_000) * Decimal("0.85"))
    last = loop.read("poll").last
    assert last is not None and last.transition is Transition.HARD_BREACH
    assert positions_and_orders(venue) == (0, 0), "flattened by the reading itself"


# -- watchdog ------------------------------------------------------------------------------------


def test_the_lock_watchdog_stops_the_worker_once_its_lock_session_is_gone(core: Core) -> None:
    lock = SessionLock(core.address, worker_lock_id(core.settings.account))
    assert lock.try_acquire()
    stop, active = threading.Event(), threading.Event()
    watchdog = LockWatchdog(lock, stop, active, every=0.1)
    try:
        assert watchdog.check() is False and not active.is_set()
        lock.release()  # the session (and the lock with it) is gone
        assert watchdog.check() is True and active.is_set()
    finally:
        lock.release()


def test_the_lock_watchdog_stops_the_worker_when_asked_to_stop(core: Core) -> None:
    lock = SessionLock(core.address, worker_lock_id(core.settings.account))
    assert lock.try_acquire()
    stop, active = threading.Event(), threading.Event()
    try:
        stop.set()
        thread = threading.Thread(target=LockWatchdog(lock, stop, active, every=5.0).run)
        thread.start()
        thread.join(timeout=10)
        assert not thread.is_alive() and active.is_set()
    finally:
        lock.release()


def test_the_breaker_loop_stops_promptly_whatever_its_equity_interval(settings: Settings) -> None:
    slow = settings.model_copy(update={"equity_interval": 120.0})
    with bootstrap(slow) as core:
        loop = BreakerLoop(core)
        stop = threading.Event()
        thread = threading.Thread(target=loop.run, args=(stop,), daemon=True)
        thread.start()
        try:
            # Its first reading taken, it waits for the next mark or the interval's end.
            wait_for(lambda: loop.readings >= 1, 30, what="the loop's first reading")
        finally:
            stop.set()
            thread.join(timeout=10)
        assert not thread.is_alive(), "the loop went on waiting out its 120 s interval"
