"""The worker: one process that runs every projection and process manager for the account.

It reads the account's equity for the drawdown breaker (every ``equity_interval`` and on
each paper mark move), keeps the read models at the head and supervises the emergency stop:
on start it catches up on any activation it has not seen to a flat account, and while the
latch is on it keeps the account flat (retrying an incomplete flatten at a lower rate, and
re-checking a flat one now and then, since a position can appear from outside).

Each job is a ``Duty`` that fails on its own: a read model that cannot apply an event, a
model that will not load or a venue that will not answer delays only its own duty, never
the emergency supervision (which reads the Emergency aggregate, not a view) nor the breaker
(a thread of its own).

When the store goes away it keeps running, retries with a bounded backoff, and when the
store returns it catches up from the tracked positions: the log is the buffer. It records
each outage and the catch-up after it (events, seconds) in ``worker_status``. On the
embedded default it also watches the server itself and restarts it if it dies
(app.processes.server_watch): nobody else would.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal

from sqlalchemy import update
from sqlalchemy.dialects.postgresql import insert

from adapters.database import lost_store
from adapters.errors import StoreUnavailable
from adapters.locks import SessionLock
from adapters.notify import NotificationWaiter
from adapters.paper.tables import MARKS_CHANNEL
from app.bootstrap import Core
from app.processes.drawdown_breaker import Poll
from app.processes.flattener import FlattenReport
from app.processes.model_consumers import ConsumerRuntime, ModelWatch, promoted_score
from app.processes.reconciliation import Reconciler
from app.processes.server_watch import ServerWatch
from app.processes.signal_engine import SignalEngine
from domain.drawdown import Transition
from domain.errors import InvalidCommand
from domain.ids import worker_lock_id
from domain.venue import ExchangePort, VenueError
from projections.tables import worker_status

log = logging.getLogger(__name__)
WORKER_NAME = "worker"


class Duty:
    """One of the worker's jobs, failing on its own: a failure is logged and the duty waits
    out a backoff of its own (``backoff`` seconds, doubling up to ``cap``) while the other
    duties go on. An outage of the store is the worker's to handle, not a duty's."""

    def __init__(
        self,
        name: str,
        action: Callable[[], None],
        *,
        backoff: float,
        cap: float = 30.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.monotonic = monotonic
        self.action = action
        self.base = backoff
        self.cap = cap
        self._delay = backoff
        self._next = float("-inf")

    def due(self) -> bool:
        return self.monotonic() >= self._next

    def failed(self, error: Exception) -> None:
        log.error(
            "worker duty %r failed (%s: %s); the others go on, retrying it in %.1fs",
            self.name,
            type(error).__name__,
            error,
            self._delay,
            exc_info=error,
        )
        self._next = self.monotonic() + self._delay
        self._delay = min(self._delay * 2, self.cap)

    def succeeded(self) -> None:
        self._delay = self.base


class BreakerLoop:
    """The equity feed and the drawdown breaker, on a venue client and a listener of their
    own: a reading every ``equity_interval`` and at once on each paper mark move; after a
    hard breach it flattens at once (the main loop would too: the flattener's lock per
    activation lets one act and the other find the account flat)."""

    def __init__(self, core: Core, venue: ExchangePort | None = None) -> None:
        """``venue``: the breaker's own client (default: a new one of the core's venue)."""
        self.core = core
        venue = venue or core.new_venue()
        self.breaker = core.drawdown_breaker(venue)
        self.flattener = core.flattener(
            progress=lambda line: log.warning("flattener: %s", line), venue=venue
        )
        self._last = float("-inf")

    def run(self, stop: threading.Event) -> None:
        interval = self.core.settings.equity_interval
        clock = self.core.clock
        waiter = NotificationWaiter(self.core.address, MARKS_CHANNEL)
        backoff = interval
        try:
            pushed = False
            while not stop.is_set():
                try:
                    due = clock.monotonic() - self._last >= interval
                    if due or pushed:
                        self._last = clock.monotonic()
                        self.read("poll" if due else "push")
                    backoff = interval
                except Exception:
                    log.exception("drawdown breaker failed; retrying in %.1fs", backoff)
                    stop.wait(backoff)
                    backoff = min(backoff * 2, 30.0)
                    continue
                pushed = bool(waiter(max(0.0, self._last + interval - clock.monotonic())))
        finally:
            waiter.close()

    def read(self, trigger: str) -> Poll:
        """One reading (and its re-read, if held); a hard breach is flattened at once."""
        poll = self.breaker.poll(trigger)
        last = poll.last
        if last is not None and last.transition is Transition.HARD_BREACH:
            self.flattener.run()
        return poll


class Worker:
    def __init__(
        self,
        core: Core,
        *,
        retry_interval: float = 5.0,
        verify_interval: float = 10.0,
        heartbeat_interval: float = 1.0,
        fence: Callable[[], bool] = lambda: True,
    ) -> None:
        self.core = core
        # Asked before each signal trade: is this still the account's one active worker?
        self.fence = fence
        self.retry_interval = retry_interval
        self.verify_interval = verify_interval
        self.heartbeat_interval = heartbeat_interval
        self._last_flatten = float("-inf")
        self._last_reconcile = float("-inf")
        self.consumers: list[ConsumerRuntime] = []
        self.watch_interval = 30.0
        self._last_watch = float("-inf")
        self._last_heartbeat = float("-inf")
        self._outage_started: float | None = None
        self._outage_at: datetime | None = None
        self._outage_lock = threading.Lock()

    def run(self, stop: threading.Event) -> None:
        duties = self.prepare()
        # The breaker has a thread of its own: a slow catch-up or model load never delays it.
        breaker = threading.Thread(
            target=BreakerLoop(self.core).run, args=(stop,), name="drawdown-breaker", daemon=True
        )
        breaker.start()
        poll = self.core.settings.poll_interval
        waiter = self.core.waiter()
        backoff = poll
        while not stop.is_set():
            if self.round(duties):
                backoff = poll
                waiter(poll)
                continue
            stop.wait(backoff)  # the store is down: every duty needs it
            backoff = min(backoff * 2, 30.0)
        breaker.join(timeout=10)

    def round(self, duties: list[Duty]) -> bool:
        """One round of every duty that is due (by the core's clock). False, at once, when
        the store is down."""
        return self._perform(duties)

    def prepare(self) -> list[Duty]:
        """Record the start and build the duties (without the breaker, which
        :class:`BreakerLoop` runs); :meth:`round` then performs them. A replay drives
        these rounds itself, between the moves of its market clock."""
        self._started()
        flattener = self.core.flattener(progress=lambda line: log.warning("flattener: %s", line))
        reconciler = self.core.reconciler()
        self.consumers = self.core.model_consumers()
        engine_model, monitor, insights = self.consumers
        signals = self.signal_engine(engine_model)
        watch = ModelWatch(
            monitor,
            insights,
            self.core.venue(),
            self.core.trade_store().list_open_trades,
            self.core.settings.signal_symbol_list,
        )
        poll = self.core.settings.poll_interval
        monotonic = self.core.clock.monotonic
        return [
            # The catch-up first: its engine fails fast when the store is down, which is how
            # an outage is noticed (the event store's own pool waits for a connection). A
            # read model that cannot apply an event does not fail it: the runner isolates
            # that one and the others go on.
            Duty("read models", self._catch_up, backoff=poll, monotonic=monotonic),
            # Not behind anything but an outage: the account is kept flat whatever a read
            # model or process manager does.
            Duty(
                "emergency supervision",
                lambda: self._supervise_emergency(flattener.run),
                backoff=poll,
                cap=self.retry_interval,
                monotonic=monotonic,
            ),
            Duty("model consumers", self._sync_consumers, backoff=poll, monotonic=monotonic),
            Duty(
                "model watch", lambda: self._watch_if_due(watch), backoff=poll, monotonic=monotonic
            ),
            Duty(
                "reconciliation",
                lambda: self._reconcile_if_due(reconciler),
                backoff=poll,
                monotonic=monotonic,
            ),
            *(
                [
                    Duty(
                        "signal trading",
                        lambda: self._trade_signals(signals),
                        backoff=poll,
                        monotonic=monotonic,
                    )
                ]
                if signals is not None
                else []
            ),
            Duty("heartbeat", self._heartbeat, backoff=poll, monotonic=monotonic),
        ]

    def signal_engine(self, model: ConsumerRuntime) -> SignalEngine | None:
        """The signal engine (when symbols are configured), its entries sized on the score
        of ``model``: the signal engine's consumer of the promoted model."""
        venue = self.core.venue()
        return self.core.signal_engine(
            fence=self.fence, score=lambda symbol: promoted_score(model, venue, symbol)
        )

    def _perform(self, duties: list[Duty]) -> bool:
        """One round of every duty that is due. False, at once, when the store is down."""
        for duty in duties:
            if not duty.due():
                continue
            try:
                duty.action()
            except Exception as error:  # noqa: BLE001 - a worker logs, backs off, carries on
                if self._store_down(error):
                    return False
                duty.failed(error)
                continue
            duty.succeeded()
        return True

    def _catch_up(self) -> None:
        began = time.monotonic()
        applied = self.core.runner.catch_up()
        outage = self._outage_started
        # An outage the server watch saw begin during this catch-up is not over yet.
        if outage is not None and outage < began:
            self._recovered(applied, time.monotonic() - began)

    def _sync_consumers(self) -> None:
        for consumer in self.consumers:
            consumer.sync()

    # -- emergency ------------------------------------------------------------------------------

    def _supervise_emergency(self, flatten: Callable[[], FlattenReport | None]) -> None:
        emergency = self.core.commands.load_emergency()
        if emergency is None or not emergency.active:
            return
        since = self.core.clock.monotonic() - self._last_flatten
        due = self.verify_interval if emergency.flat else self.retry_interval
        if emergency.flat is None or since >= due:
            self._last_flatten = self.core.clock.monotonic()
            report = flatten()
            if report is not None and not report.flat:
                log.error(
                    "EMERGENCY ACTIVE AND ACCOUNT NOT FLAT: %d position(s), %d order(s) left; "
                    "retrying every %.0fs",
                    len(report.remaining_positions),
                    report.remaining_orders,
                    self.retry_interval,
                )

    def _watch_if_due(self, watch: ModelWatch) -> None:
        if self.core.clock.monotonic() - self._last_watch < self.watch_interval:
            return
        self._last_watch = self.core.clock.monotonic()
        try:
            watch.run_once()
        except Exception:
            log.warning("model watch failed", exc_info=True)

    # -- reconciliation -------------------------------------------------------------------------

    def _reconcile_if_due(self, reconciler: Reconciler) -> None:
        """On start, then every ``reconcile_interval``. A venue that cannot be read is a
        missed round, not a worker failure."""
        if (
            self.core.clock.monotonic() - self._last_reconcile
            < self.core.settings.reconcile_interval
        ):
            return
        self._last_reconcile = self.core.clock.monotonic()
        try:
            report = reconciler.run()
        except VenueError as e:
            log.warning("reconciliation skipped, venue unavailable: %s", e)
            return
        if report.adopted or report.closed_external or report.orders_resolved:
            log.warning(
                "reconciliation: %d adopted, %d closed as external, %d order(s) resolved",
                len(report.adopted),
                len(report.closed_external),
                report.orders_resolved,
            )

    def _trade_signals(self, signals: SignalEngine) -> None:
        """A venue that cannot be read, or a rule that refuses its input, skips a bar."""
        try:
            for execution in signals.step():
                log.warning("signal trade %s: %s", execution.outcome.value, execution.reason)
        except (VenueError, InvalidCommand) as e:
            log.warning("signal bar skipped: %s", e)

    # -- outages and liveness --------------------------------------------------------------------

    def _store_down(self, error: Exception) -> bool:
        """Is ``error`` an outage? Then it is recorded (once per outage) and True."""
        try:
            self.core.address.check()
        except StoreUnavailable as unreachable:
            if self.note_outage():
                log.error("store unavailable, retrying with backoff: %s (%s)", unreachable, error)
            return True
        return False

    def note_outage(self) -> bool:
        """Note the start of an outage (from a failed iteration or the server watch thread);
        the next successful catch-up counts it once. Returns whether it is a new one."""
        with self._outage_lock:
            if self._outage_started is not None:
                return False
            self._outage_started = time.monotonic()
            self._outage_at = self.core.clock()
            return True

    def _recovered(self, applied: int, seconds: float) -> None:
        assert self._outage_started is not None
        outage = time.monotonic() - self._outage_started - seconds
        log.warning(
            "store back after %.1fs; caught up %d event(s) in %.3fs", outage, applied, seconds
        )
        with self.core.engine.begin() as conn:
            conn.execute(
                update(worker_status)
                .where(worker_status.c.name == WORKER_NAME)
                .values(
                    outages=worker_status.c.outages + 1,
                    last_outage_at=self._outage_at,
                    last_outage_seconds=Decimal(f"{outage:.3f}"),
                    last_catch_up_events=applied,
                    last_catch_up_seconds=Decimal(f"{seconds:.3f}"),
                )
            )
        with self._outage_lock:
            self._outage_started = None

    def _started(self) -> None:
        now = self.core.clock()
        self.core.runner.mark_started()
        with self.core.engine.begin() as conn:
            conn.execute(
                insert(worker_status)
                .values(name=WORKER_NAME, started_at=now, heartbeat_at=now)
                .on_conflict_do_update(
                    index_elements=["name"], set_={"started_at": now, "heartbeat_at": now}
                )
            )

    def _heartbeat(self) -> None:
        if self.core.clock.monotonic() - self._last_heartbeat < self.heartbeat_interval:
            return
        self._last_heartbeat = self.core.clock.monotonic()
        with self.core.engine.begin() as conn:
            conn.execute(
                update(worker_status)
                .where(worker_status.c.name == WORKER_NAME)
                .values(heartbeat_at=self.core.clock())
            )


def run_exclusively(
    core: Core,
    stop: threading.Event,
    *,
    on_standby: Callable[[], None] = lambda: None,
    on_active: Callable[[], None] = lambda: None,
    poll: float = 0.5,
    check_every: float = 2.0,
) -> bool:
    """Run the worker while holding the account's advisory lock; until then wait as a hot
    standby (a second worker for the same account never trades twice). While active, the
    lock is checked every ``check_every`` seconds: if its session was lost (and a standby
    may have taken over), this worker stops at once and stands by again; and right before
    each signal trade. Returns whether this process ran as the active worker."""
    lock = SessionLock(core.address, worker_lock_id(core.settings.account))
    # One worker across active spells, so an outage that began in one (or in standby) is
    # counted once, by the catch-up that ends it.
    worker = Worker(core, fence=lock.still_held)
    server_watch = _watch_server(core, worker, stop)
    told, ran = False, False
    while not stop.is_set():
        try:
            acquired = lock.try_acquire()
        except Exception as error:
            unavailable = lost_store(error)
            if unavailable is None:
                raise
            log.warning("cannot reach the store for the worker lock: %s", unavailable)
            acquired = False
        if not acquired:
            if not told:
                on_standby()
                told = True
            stop.wait(poll)
            continue
        ran, told = True, False
        on_active()
        active = threading.Event()
        watchdog = threading.Thread(
            target=_watch_lock, args=(lock, stop, active, check_every), daemon=True
        )
        watchdog.start()
        try:
            # The watchdog notices a lost lock within ``check_every``; the fence closes that
            # window for orders: the lock is asked again right before each signal trade.
            worker.run(active)
        except Exception as error:
            # The store went away before the worker's loop took over (its start-up writes):
            # stand by and start again when it is back, rather than end the process.
            unavailable = lost_store(error)
            if unavailable is None:
                raise
            worker.note_outage()
            log.error("worker lost the store while starting: %s; trying again", unavailable)
            stop.wait(poll)
        finally:
            active.set()
            watchdog.join(timeout=10)
            lock.release()
    if server_watch is not None:
        server_watch.join(timeout=10)
    return ran


def _watch_server(core: Core, worker: Worker, stop: threading.Event) -> threading.Thread | None:
    """On the embedded default, a thread that restarts the server if it dies, whether this
    process is active or standing by (the outage is the worker's to count); None when the
    store is someone else's server."""
    if core.embedded is None:
        return None
    watch = ServerWatch(core.embedded, on_down=worker.note_outage)
    thread = threading.Thread(
        target=watch.run, args=(stop,), name="embedded-server-watch", daemon=True
    )
    thread.start()
    return thread


def _watch_lock(
    lock: SessionLock, stop: threading.Event, active: threading.Event, every: float
) -> None:
    """Stop the active worker when asked to, or the moment it no longer holds the lock."""
    while not active.is_set():
        if stop.wait(every):
            active.set()
            return
        if not active.is_set() and not lock.still_held():
            log.error("WORKER LOCK LOST: stopping this worker; standing by again")
            active.set()
            return
