"""The supervisor: the worker's duties in their order, each on its own timer of the one
clock and failing on its own; the store's outages; the account's lock."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from adapters.database import lost_store
from adapters.locks import SessionLock
from app.bootstrap import Core
from app.entrypoints.worker.breaker import BreakerLoop
from app.entrypoints.worker.duty import Duty
from app.entrypoints.worker.models import ConsumerSync, WatchModels
from app.entrypoints.worker.projections import CatchUp
from app.entrypoints.worker.reconciliation import Reconciliation
from app.entrypoints.worker.signals import SignalTrading
from app.entrypoints.worker.status import Heartbeat, Outages, record_start
from app.entrypoints.worker.supervision import EmergencySupervision
from app.entrypoints.worker.watchdog import LockWatchdog, watch_server
from app.processes.model_consumers import ConsumerRuntime, ModelWatch, promoted_score
from app.processes.signal_engine import SignalEngine
from domain.ids import worker_lock_id

log = logging.getLogger(__name__)


class Worker:
    """The main loop's duties in one thread, the breaker (:class:`BreakerLoop`) in another.

    ``retry_interval`` / ``verify_interval``: seconds between flattens while an emergency's
    account is not flat / is flat; ``heartbeat_interval``: seconds between heartbeats;
    ``fence``: asked before each signal trade, is this still the account's active worker?"""

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
        self.fence = fence
        self.retry_interval = retry_interval
        self.verify_interval = verify_interval
        self.heartbeat_interval = heartbeat_interval
        self.consumers: list[ConsumerRuntime] = []
        self.watch_interval = 30.0
        self.outages = Outages(core)

    def run(self, stop: threading.Event) -> None:
        duties = self.prepare()
        # The breaker has a thread of its own: a slow catch-up or model load never delays it.
        breaker = threading.Thread(
            target=BreakerLoop(self.core).run, args=(stop,), name="drawdown-breaker", daemon=True
        )
        breaker.start()
        poll = self.core.settings.poll_interval
        waiter = self.core.waiter()
        waiter.subscribe()  # before the first round: what is recorded after it is heard
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
        for duty in duties:
            if not duty.due():
                continue
            try:
                duty.action()
            except Exception as error:  # noqa: BLE001 - a worker logs, backs off, carries on
                if self.outages.store_down(error):
                    return False
                duty.failed(error)
                continue
            duty.succeeded()
        return True

    def prepare(self) -> list[Duty]:
        """Record the start and build the duties (without the breaker, which
        :class:`BreakerLoop` runs); :meth:`round` then performs them. A replay drives
        these rounds itself, between the moves of its market clock."""
        record_start(self.core)
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

        def duty(name: str, action: Callable[[], None], cap: float = 30.0) -> Duty:
            return Duty(name, action, backoff=poll, cap=cap, monotonic=self.core.clock.monotonic)

        supervision = EmergencySupervision(
            self.core,
            flattener.run,
            retry_interval=self.retry_interval,
            verify_interval=self.verify_interval,
        )
        return [
            # The catch-up first: it is how an outage is noticed (see CatchUp).
            duty("read models", CatchUp(self.core, self.outages).run_once),
            # Not behind anything but an outage: the account is kept flat whatever a read
            # model or process manager does.
            duty("emergency supervision", supervision.run_once, cap=self.retry_interval),
            duty("model consumers", ConsumerSync(self.consumers).run_once),
            duty(
                "model watch",
                WatchModels(watch, self.core.clock.monotonic, self.watch_interval).run_once,
            ),
            duty("reconciliation", Reconciliation(self.core, reconciler).run_once),
            *(
                [duty("signal trading", SignalTrading(signals).run_once)]
                if signals is not None
                else []
            ),
            duty("heartbeat", Heartbeat(self.core, self.heartbeat_interval).run_once),
        ]

    def signal_engine(self, model: ConsumerRuntime) -> SignalEngine | None:
        """The signal engine (when symbols are configured), its entries sized on the score
        of ``model``: the signal engine's consumer of the promoted model."""
        venue = self.core.venue()
        return self.core.signal_engine(
            fence=self.fence, score=lambda symbol: promoted_score(model, venue, symbol)
        )

    def note_outage(self) -> bool:
        """Note the start of an outage (from a failed iteration or the server watch thread);
        the next successful catch-up counts it once. Returns whether it is a new one."""
        return self.outages.note()


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
    standby (a second worker for the same account never trades twice): ``on_standby`` is
    told once another worker is seen holding it (not while the store cannot be reached).
    While active, the lock is checked every ``check_every`` seconds: if its session was
    lost (and a standby may have taken over), this worker stops at once and stands by
    again; and right before each signal trade. Returns whether this process ran as the
    active worker."""
    lock = SessionLock(core.address, worker_lock_id(core.settings.account))
    # One worker across active spells, so an outage that began in one (or in standby) is
    # counted once, by the catch-up that ends it.
    worker = Worker(core, fence=lock.still_held)
    server_watch = watch_server(core, worker.note_outage, stop)
    told, ran = False, False
    while not stop.is_set():
        try:
            acquired = lock.try_acquire()
            held_elsewhere = not acquired
        except Exception as error:
            unavailable = lost_store(error)
            if unavailable is None:
                raise
            # Not "another worker holds it": nobody can be told who does, the store is away.
            log.warning("cannot reach the store for the worker lock: %s", unavailable)
            acquired = held_elsewhere = False
        if not acquired:
            if held_elsewhere and not told:
                on_standby()
                told = True
            stop.wait(poll)
            continue
        ran, told = True, False
        on_active()
        active = threading.Event()
        watchdog = threading.Thread(
            target=LockWatchdog(lock, stop, active, check_every).run, daemon=True
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
