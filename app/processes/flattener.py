"""The emergency flattener (P0-02): cancel every order, close every position, until flat.

Runs after an activation, from the CLI that activated it and from the worker; both may run
at once. An advisory lock per activation lets one act at a time; the other waits and then
finds the account flat. Each attempt is recorded *before* its close orders leave, and client
order ids derive from the activation, the attempt and the position, so a crashed and
restarted flattener uses new attempt numbers and can never send the same order twice; and
since every attempt re-reads the venue and closes only what is still open with reduce-only
orders, a replay can never close more than is there.

A timeout is an unknown outcome: the order is looked up by its client order id, never
assumed. When the deadline passes the flattener records ``FlattenIncomplete`` and says so
loudly; the worker keeps calling it at a lower rate until the account is flat.

On a venue whose calls are round trips the critical path is kept to the venue's own steps:
the first read goes out while the lock and the barrier are taken (it sizes the first attempt
only if nobody recorded anything meanwhile and never concludes flat), and the attempt's
results (with the fills of orders the venue only acknowledged) are read and saved while the
position lag passes and the check read is in flight, settled before that read is used.

The store fails closed: only "the emergency was never recorded" or "it is recorded as not
active" means there is nothing to do. A store error (cannot load, cannot take the lock,
cannot record an attempt) is retried with backoff until the flatten deadline, and no close
order leaves before its attempt is recorded (on a venue of round trips the cancels, which
create nothing to look up, go while it is recorded); at the deadline the report says not
flat, with the store error as the reason.
"""

from __future__ import annotations

import contextvars
import gc
import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Generic, TypeVar
from uuid import UUID

from adapters.answer_deadline import answer_deadline
from adapters.errors import StoreUnavailable
from adapters.eventstore import TradecoreEventStore
from adapters.repository import Conflict, Repository
from adapters.venues import retry_transient
from app.commands.close_booking import activation_events, closed_positions, look_up_lost_closes
from domain.emergency import Emergency
from domain.ids import EMERGENCY_ID
from domain.venue import (
    DuplicateClientOrderId,
    ExchangePort,
    Order,
    OrderRequest,
    OutcomeUnknown,
    Position,
    VenueError,
)

log = logging.getLogger(__name__)

Lock = Callable[[UUID, float], AbstractContextManager[bool]]
# Seconds a read started by ``Flattener.read_ahead`` stays fit to size a first attempt: an
# activation commits in milliseconds; an older read (a slow confirmation, a store retry)
# is dropped and the venue read again.
READ_AHEAD_MAX_AGE = 1.0
A = TypeVar("A")
B = TypeVar("B")


@dataclass(frozen=True)
class FlattenReport:
    activation_number: int | None  # None: the store never answered, the emergency is unknown
    flat: bool
    positions_closed: int
    orders_canceled: int
    attempts: int
    time_to_flat_ms: int | None
    remaining_positions: list[Position] = field(default_factory=list)
    remaining_orders: int = 0
    last_error: str | None = None
    # False: the venue could not be read when the deadline passed, so what is left is not
    # known; ``remaining_*`` are then what the last read that answered showed.
    remaining_known: bool = True

    def left(self) -> str:
        """What is left open, for a person: counts, or that they are not known."""
        counts = f"{len(self.remaining_positions)} position(s), {self.remaining_orders} order(s)"
        if self.remaining_known:
            return f"{counts} left"
        if not self.remaining_positions and not self.remaining_orders:
            # A read that answered "nothing open" would have ended the flatten as flat.
            return "what is left is unknown (no read of the venue answered)"
        return f"what is left is unknown (the venue could not be read; last seen: {counts})"

    @property
    def stopped_by_store(self) -> bool:
        """Whether the last thing that kept the flatten from its end was the event store."""
        return self.last_error is not None and self.last_error.startswith("store unavailable")


def client_order_id(activation_id: UUID, attempt: int, position: Position) -> str:
    """Deterministic, at most 36 characters of [A-Za-z0-9-] (Binance's and Bybit's limits)."""
    digest = hashlib.sha256(
        f"{activation_id}:{attempt}:{position.symbol}:{position.side}".encode()
    ).hexdigest()[:24]
    return f"tcx{attempt}-{digest}"


def _close_request(activation_id: UUID, attempt: int, position: Position) -> OrderRequest:
    """One reduce-only market order for the whole position."""
    return OrderRequest(
        symbol=position.symbol,
        side=position.closing_side,
        quantity=position.quantity,
        client_order_id=client_order_id(activation_id, attempt, position),
        type="market",
        reduce_only=True,
        position_side=position.side if position.mode == "hedge" else None,
    )


class _Freeze:
    """Flattens running in this process; the collector's old objects are frozen while any
    does (see ``_collector_spares_old_objects``)."""

    lock = threading.Lock()
    runs = 0


@contextmanager
def _collector_spares_old_objects() -> Iterator[None]:
    """While a flatten runs, the garbage collector's full collections scan only the objects
    made since it started: a full collection of a process holding ccxt's market tables,
    models and the ORM took 80-280 ms on this machine (measured with ``gc.callbacks`` in
    the ccxt flatten benchmark), longer than a venue round trip. The objects are frozen
    (``gc.freeze``), not exempt: cyclic garbage among them is collected after the last
    flatten of the process ends (``gc.unfreeze``)."""
    with _Freeze.lock:
        if _Freeze.runs == 0:
            gc.freeze()
        _Freeze.runs += 1
    try:
        yield
    finally:
        with _Freeze.lock:
            _Freeze.runs -= 1
            if _Freeze.runs == 0:
                gc.unfreeze()


class _InBackground(Generic[A]):
    """``call()`` started now in a thread of its own; ``result()`` waits for it and returns
    its value or raises its exception. Only venue calls and store saves run this way: each
    ends within its client's own timeout, so the wait is bounded by it."""

    def __init__(self, call: Callable[[], A], name: str) -> None:
        self._call = call
        self._value: list[A] = []
        self._failure: list[BaseException] = []
        # In the caller's context: its store-answer deadline holds in the thread too.
        self._thread = threading.Thread(
            target=contextvars.copy_context().run, args=(self._run,), name=name, daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        try:
            self._value.append(self._call())
        except BaseException as e:  # noqa: BLE001 - handed to the caller's thread
            self._failure.append(e)

    def join(self) -> None:
        """Wait for ``call`` to end, whatever its outcome."""
        self._thread.join()

    def result(self) -> A:
        self._thread.join()
        if self._failure:
            raise self._failure[0]
        return self._value[0]


_Read = tuple[list[Position], list[Order]]


class _Overtaken(Exception):
    """Another writer saved the emergency first: the copy in hand is stale."""


@dataclass
class _Progress:
    """What this run has seen, to report totals that do not depend on lost answers."""

    orders_seen: set[str] = field(default_factory=set)
    positions_seen: set[tuple[str, str]] = field(default_factory=set)
    last_error: str | None = None
    # The last read of the venue that answered (None: none did yet).
    last_positions: list[Position] | None = None
    last_orders: list[Order] | None = None


class Flattener:
    def __init__(
        self,
        store: TradecoreEventStore,
        venue: ExchangePort,
        clock: Callable[[], datetime],
        lock: Lock,
        *,
        deadline: float = 30.0,
        interval: float = 0.02,
        max_backoff: float = 1.0,
        progress: Callable[[str], None] = lambda _: None,
        sleep: Callable[[float], None] = time.sleep,
        barrier: Callable[[float], bool] = lambda _: True,
        on_flat: Callable[[Emergency], object] = lambda _: None,
        barrier_timeout: float = 10.0,
    ) -> None:
        self.store = store
        self.repository = Repository(store)
        self.venue = venue
        self.clock = clock
        self.lock = lock
        self.deadline = deadline
        self.interval = interval
        self.max_backoff = max_backoff
        self.progress = progress
        self.sleep = sleep
        self.barrier = barrier
        self.on_flat = on_flat
        self.barrier_timeout = barrier_timeout
        self._ahead: tuple[float, _InBackground[_Read | None]] | None = None

    def read_ahead(self) -> None:
        """Start reading the venue now, before the activation this flatten is for has been
        committed (the operator's ``emergency activate`` calls it first): reading sends
        nothing, and the read's round trip then overlaps the activation's commit. The next
        ``run`` uses it like the read it starts beside the lock (sizing the first attempt,
        never concluding flat), and only if it is at most ``READ_AHEAD_MAX_AGE`` seconds old
        and no flatten attempt of the activation was recorded by anyone before ``run``
        loaded it. Only on venues whose calls are round trips."""
        if self.venue.concurrent_requests:
            with answer_deadline(self.deadline):  # the thread takes this context with it
                self._ahead = (
                    time.monotonic(),
                    _InBackground(self._read_early, "flattener-read-ahead"),
                )

    def run(self) -> FlattenReport | None:
        """Flatten for the active emergency; None when the store shows no active emergency.

        Returns when the venue shows no position and no open order, or the deadline passed
        (``flat=False``; a store that never answered gives ``activation_number=None``).
        """
        # Each store statement waits for its answer until the deadline (at least the last
        # word's few seconds): a store that stops answering mid-flatten must end it as "not
        # flat" within the deadline, as a store that refuses does.
        with _collector_spares_old_objects(), answer_deadline(self.deadline):
            return self._run()

    def _run(self) -> FlattenReport | None:
        started = time.monotonic()
        backoff = self.interval
        seen = _Progress()
        while True:
            try:
                return self._run_once(started, seen)
            except StoreUnavailable as e:  # loading the emergency or taking the lock
                seen.last_error = f"store unavailable: {e}"
                if time.monotonic() - started > self.deadline:
                    log.error("FLATTEN INCOMPLETE: %s", seen.last_error)
                    return FlattenReport(
                        None,
                        False,
                        0,
                        0,
                        0,
                        None,
                        last_error=seen.last_error,
                        remaining_known=False,
                    )
                backoff = self._pause(backoff, f"store unavailable ({e})")

    # -- internals ---------------------------------------------------------------------------

    def _run_once(self, started: float, seen: _Progress) -> FlattenReport | None:
        emergency = self._load()
        if emergency is None or not emergency.active or emergency.activation_id is None:
            return None
        # The first read of the venue goes out now, while the lock and the barrier are taken
        # (a round trip each way for the store): reading sends nothing. It sizes the first
        # attempt only if nobody recorded anything meanwhile; it never concludes flat, since
        # an order past the gate may still be on its way (see ``_flatten``). Not for an
        # account already recorded flat (the worker's re-checks): that read would be wasted
        # and cost the venue's request budget twice.
        ahead, self._ahead = self._ahead, None
        if (
            ahead is not None
            and time.monotonic() - ahead[0] <= READ_AHEAD_MAX_AGE
            and emergency.flatten_attempts == 0
            and emergency.flat is not True
        ):
            # Started before the activation was committed, and no attempt recorded since:
            # nobody's orders but the executor's (held back by the barrier below) changed
            # the account after it went out, which the first read allows for anyway.
            early: _InBackground[_Read | None] | None = ahead[1]
        elif self.venue.concurrent_requests and emergency.flat is not True:
            early = _InBackground(self._read_early, "flattener-first-read")
        else:
            early = None
        remaining = max(self.deadline - (time.monotonic() - started), 0.0)
        with self.lock(emergency.activation_id, remaining) as acquired:
            if not acquired:
                self.progress("another flattener is still working on this activation")
                return self._report(self._load(), flat=False, progress=seen)
            # Wait for orders already past the gate to be answered: after this, every
            # opening order is either swept below or refused by the gate.
            try:
                held = self.barrier(self.barrier_timeout)
            except Exception as e:  # noqa: BLE001 - sweeping is the safe side of any doubt
                log.error("cannot take the order-flow barrier (%s); sweeping anyway", e)
                held = True
            if not held:
                log.error(
                    "order senders still hold the order flow after %.0fs; sweeping anyway",
                    self.barrier_timeout,
                )
                early = None  # read before a barrier that never came: read again
            return self._flatten(started, seen, emergency, early)

    def _flatten(
        self,
        started: float,
        seen: _Progress,
        known: Emergency,
        early: _InBackground[_Read | None] | None = None,
    ) -> FlattenReport | None:
        """Attempts until a read shows flat. ``early``: a read started before the lock was
        taken, on ``known`` as loaded then; used for the first attempt only if the emergency
        is still at that version (no attempt recorded since the read went out)."""
        backoff = self.interval
        emergency: Emergency | None = None  # re-read unless this run's last save kept it current
        # The save of the last attempt's results, running while the position lag passes and
        # the venue is read again: joined before anything else is recorded or concluded.
        recording: _InBackground[None] | None = None
        while True:
            if emergency is None:
                try:
                    emergency = self._load()
                except StoreUnavailable as e:
                    # Unknown is not "none": retry until the deadline (no order can leave
                    # before its attempt is recorded anyway).
                    seen.last_error = f"store unavailable: {e}"
                    if time.monotonic() - started > self.deadline:
                        return self._conclude_incomplete(known, seen, None, None)
                    backoff = self._pause(backoff, f"store unavailable ({e})")
                    continue
            if emergency is None or not emergency.active:
                return None  # reset meanwhile: nothing more to do
            # An early read still fit (nobody recorded since it went out) sizes this attempt.
            pending = early if early is not None and emergency.version == known.version else None
            early, known = None, emergency
            first_read = self._early_result(pending)
            try:
                positions, orders = first_read or self._read_venue()
            except VenueError as e:
                self._settle(recording, seen)
                recording = None
                seen.last_error = f"{type(e).__name__}: {e}"
                if time.monotonic() - started > self.deadline:
                    return self._conclude_incomplete(emergency, seen, None, None)
                backoff = self._pause(backoff, f"venue unavailable ({e})")
                emergency = None  # an operator may reset while the venue is away
                continue
            recorded, recording = self._settle(recording, seen), None
            if recorded is not True:
                # Overtaken (re-read at once) or the store is away (back off): this read
                # waits for the emergency as committed.
                emergency = None
                backoff = self._pause(backoff) if recorded is None else backoff
                continue
            seen.orders_seen |= {o.id for o in orders}
            seen.positions_seen |= {(p.symbol, p.side) for p in positions}
            seen.last_positions, seen.last_orders = positions, orders
            if not positions and not orders:
                return self._conclude_flat(emergency, seen)
            if time.monotonic() - started > self.deadline:
                return self._conclude_incomplete(emergency, seen, positions, orders)
            try:
                progressed, recording = self._attempt(emergency, positions, orders, seen)
            except _Overtaken:  # someone else recorded meanwhile (a reset?): re-read, decide
                emergency, progressed = None, True
            except StoreUnavailable as e:
                # The attempt could not be recorded: re-read once the store answers; nothing
                # leaves before its attempt is recorded.
                seen.last_error = f"store unavailable: {e}"
                emergency, progressed = None, False
            # Progress: re-read once the venue can show it (its position lag less the network
            # time already past). None: back off (bounded).
            backoff = self.interval if progressed else min(backoff * 2, self.max_backoff)
            self.sleep(self.venue.check_delay() if progressed else backoff)

    def _attempt(
        self,
        emergency: Emergency,
        positions: list[Position],
        orders: list[Order],
        seen: _Progress,
    ) -> tuple[bool, _InBackground[None]]:
        """One attempt: record it, cancel, close, then start recording the results. Returns
        whether it achieved anything (an order canceled or a fill: the next attempt need not
        back off) and the results' save, still running (``_settle`` it before recording
        anything else). Raises _Overtaken or StoreUnavailable when the attempt itself cannot
        be recorded, before any close order leaves (on a venue of round trips, once the
        cancels sent meanwhile are answered)."""
        attempt = emergency.flatten_attempts + 1
        activation_id = emergency.activation_id
        assert activation_id is not None
        requests = [_close_request(activation_id, attempt, p) for p in positions]
        emergency.record_attempt(
            attempt=attempt,
            positions_open=len(positions),
            orders_open=len(orders),
            close_orders=[
                {
                    "symbol": p.symbol,
                    "side": p.side,
                    "quantity": r.quantity,
                    "client_order_id": r.client_order_id,
                }
                for p, r in zip(positions, requests, strict=True)
            ],
            timestamp=self.clock(),
        )
        concurrent = self.venue.concurrent_requests

        def record_attempt() -> None:
            self._save_current(emergency)  # before any close order leaves
            self.progress(
                f"attempt {attempt}: {len(positions)} position(s), {len(orders)} open order(s)"
            )

        def close() -> list[Order | VenueError]:
            if concurrent:
                record_attempt()
            return self.venue.create_orders(requests) if requests else []

        # Every cancel in one call and every close in one call: a venue with batch endpoints
        # (the paper venue: one transaction) answers them in one round trip each. On a venue
        # where each call is a round trip the two go at once: the closes are sized from the
        # read above whether or not the cancels were answered first, so waiting for them
        # changes nothing but the time (an order that fills meanwhile leaves a position the
        # next attempt closes, in both orders), and reduce-only closes cannot overshoot.
        # There the cancels also go while the attempt commits: a cancel creates no order a
        # later look-up would need the record of, only takes risk off, and its count comes
        # from the reads; the closes, which do, wait for the commit. A failed commit then
        # raises once the cancels are answered, with no close sent.
        if not concurrent:
            record_attempt()
        canceled, canceled_symbols = 0, []
        symbols = sorted({o.symbol for o in orders})
        cancels, answers = self._side_by_side(
            lambda: self.venue.cancel_all_orders_on(symbols) if symbols else {}, close
        )
        for symbol, answer in cancels.items():
            if isinstance(answer, VenueError):
                seen.last_error = f"cancel {symbol}: {type(answer).__name__}: {answer}"
                continue
            canceled += answer
            canceled_symbols.append(symbol)

        def record() -> None:
            """The fills of the closes (read where the venue only acknowledged them), then
            the results recorded on ``emergency``."""
            fills = self._fills(requests, answers, seen)
            unknown: list[str] = []
            closes = [
                close
                for position, request, answer in zip(positions, requests, answers, strict=True)
                if (close := self._closed(position, request, answer, seen, fills, unknown))
            ]
            emergency.record_attempt_results(
                canceled=canceled,
                canceled_symbols=canceled_symbols,
                closes=closes,
                unknown=unknown,
                timestamp=self.clock(),
            )

        def record_and_save() -> None:
            record()
            self._save_current(emergency)

        # Bookkeeping only (the attempt itself is recorded above, before the orders left): it
        # runs while the position lag passes and the venue is read again (a read of fills
        # needs no lag, so it goes with that one), and is settled before that read is used.
        # The paper venue answers one call at a time with its faults drawn in call order: its
        # look-ups stay here, in order, and only the save goes aside.
        progressed = bool(canceled or any(isinstance(a, Order) for a in answers))
        if not self.venue.concurrent_requests:
            record()
            return progressed, _InBackground(
                lambda: self._save_current(emergency), "flattener-record-results"
            )
        return progressed, _InBackground(record_and_save, "flattener-record-results")

    def _fills(
        self, requests: list[OrderRequest], answers: list[Order | VenueError], seen: _Progress
    ) -> dict[str, Order]:
        """The orders the venue only acknowledged (Bybit's market orders), as it shows them
        now, by client order id; {} when none was or the venue cannot say (then each is
        looked up alone, in ``_closed``)."""
        acknowledged = [
            request
            for request, answer in zip(requests, answers, strict=True)
            if isinstance(answer, Order) and answer.status == "open" and answer.filled <= 0
        ]
        if not acknowledged:
            return {}
        try:
            return self.venue.fetch_fills(acknowledged)
        except VenueError as e:
            seen.last_error = f"reading the fills: {type(e).__name__}: {e}"
            return {}

    def _settle(self, recording: _InBackground[None] | None, seen: _Progress) -> bool | None:
        """Wait for the results' save: True recorded (or nothing to wait for), False another
        writer saved first, None the store could not record it (noted in ``seen``)."""
        if recording is None:
            return True
        try:
            recording.result()
        except _Overtaken:
            return False
        except StoreUnavailable as e:
            seen.last_error = f"store unavailable: {e}"
            return None
        return True

    @staticmethod
    def _early_result(early: _InBackground[_Read | None] | None) -> _Read | None:
        """What the early read found (waiting for it), if it is fit to size the first
        attempt; else None (read afresh). The caller has checked that nobody recorded an
        attempt since it went out (another flattener's orders may have changed the account).
        Unfit: it failed, or it shows flat (it went out before the barrier, when an order past
        the gate may still have been on its way: only a read started after the barrier can
        show flat)."""
        if early is None:
            return None
        read = early.result()
        return read if read is not None and (read[0] or read[1]) else None

    def _read_early(self) -> _Read | None:
        """``_read_venue``, None if the venue could not answer (the normal read decides)."""
        try:
            return self._read_venue()
        except VenueError:
            return None

    def _pause(self, backoff: float, note: str | None = None) -> float:
        """Sleep ``backoff`` seconds (saying why, when ``note``); the next back-off, bounded."""
        if note:
            self.progress(f"{note}; retrying in {backoff:.2f}s")
        self.sleep(backoff)
        return min(backoff * 2, self.max_backoff)

    def _read_venue(self) -> _Read:
        """Every position and every open order, read side by side."""
        return self._side_by_side(self.venue.fetch_positions, self.venue.fetch_open_orders)

    def _side_by_side(self, first: Callable[[], A], second: Callable[[], B]) -> tuple[A, B]:
        """``first()`` and ``second()``, at the same time where the venue's calls are round
        trips (``first`` in a thread of its own), else one after the other. An exception of
        either is raised once both have ended; each venue call ends within its client's own
        request timeout, so the join is bounded by it."""
        if not self.venue.concurrent_requests:
            return first(), second()
        one = _InBackground(first, "flattener-step")
        try:
            other = second()
        except BaseException:
            one.join()  # ended before ``second``'s exception (the one raised) is raised
            raise
        return one.result(), other

    def _closed(
        self,
        position: Position,
        request: OrderRequest,
        answer: Order | VenueError,
        seen: _Progress,
        fills: dict[str, Order],
        unknown: list[str],
    ) -> dict[str, Any] | None:
        """What one close order achieved: the fill it got, if any (``fills``: the venue's
        later view of acknowledged orders). A close whose outcome stays unknown (its
        look-up failed too) is added to ``unknown``."""
        order: Order | None = None
        if isinstance(answer, (OutcomeUnknown, DuplicateClientOrderId)):
            # The order may exist: ask the venue, never assume.
            seen.last_error = f"close {position.symbol}: {type(answer).__name__}: {answer}"
            order = self._look_up(request, seen, unknown)
        elif isinstance(answer, VenueError):
            seen.last_error = f"close {position.symbol}: {type(answer).__name__}: {answer}"
        elif answer.status == "open" and answer.filled <= 0:
            # Some venues (Bybit) only acknowledge a market order; ask for its fill.
            order = fills.get(request.client_order_id)
            if order is None or order.filled <= 0:
                order = self._look_up(request, seen, unknown) or answer
        else:
            order = answer
        if order is None or order.filled <= 0:
            return None
        return {
            "symbol": position.symbol,
            "side": position.side,
            "quantity": order.filled,
            "average_price": order.average_price,
            "complete": order.filled >= position.quantity,
            "client_order_id": request.client_order_id,
            "mark_price": position.mark_price,
            "fee": order.fee,
        }

    def _look_up(self, request: OrderRequest, seen: _Progress, unknown: list[str]) -> Order | None:
        try:
            return self.venue.fetch_order_by_client_id(request.client_order_id, request.symbol)
        except VenueError as e:
            # Still unknown: the next attempt re-reads the position and closes what is left,
            # and the order is looked up again before the flat record (it may have filled).
            seen.last_error = f"look up {request.client_order_id}: {type(e).__name__}: {e}"
            unknown.append(request.client_order_id)
            return None

    def _conclude_flat(self, emergency: Emergency, seen: _Progress) -> FlattenReport:
        already = emergency.flat is True  # recorded before this run looked
        flat_at = self.clock()  # the read that showed flat, not the look-ups after it
        # Close orders whose answer was lost (timed out, yet executed) are looked up now, so
        # their fills are on record before the flat record and the trades are closed.
        record = [] if already else self._activation_record(emergency)
        found = look_up_lost_closes(record, self.venue)
        if found:
            emergency.record_looked_up_closes(closes=found, timestamp=self.clock())
            if not self._save(emergency):
                emergency = self._load_or(emergency)
        if emergency.flat is not True or seen.positions_seen or seen.orders_seen or found:
            # Every position a recorded close hit counts, whichever run closed it, and so
            # does every position an attempt set out to close (the account is flat now): a
            # run that died after sending its closes, before recording what they did, closed
            # them all the same.
            planned_positions, planned_orders = _planned(record)
            closed_keys = (
                seen.positions_seen
                | closed_positions(record)
                | planned_positions
                | {(str(c["symbol"]), str(c["side"])) for c in found}
            )
            emergency.record_flat(
                positions_closed=len(closed_keys),
                # Likewise the orders: those an earlier run's cancels took off (recorded) or
                # an attempt found open count whether or not this run saw them. The largest
                # of these lower bounds: they overlap, so adding them would count twice.
                orders_canceled=max(
                    len(seen.orders_seen), _canceled_orders(record), planned_orders
                ),
                timestamp=flat_at,
            )
            if not self._save(emergency):
                emergency = self._load_or(emergency)
        try:
            self.on_flat(emergency)
        except TimeoutError as e:  # a read model held elsewhere (ProjectionBusy): one line
            log.warning("closing the trades after the flatten waits (%s); retried on next check", e)
        except Exception:  # bookkeeping; the account is flat regardless
            log.exception("closing the trades after the flatten failed; retried on next check")
        report = self._report(emergency, flat=True, progress=seen)
        if seen.positions_seen or seen.orders_seen:
            self.progress(
                f"account flat: {report.positions_closed} position(s) closed, "
                f"{report.orders_canceled} order(s) canceled in {report.attempts} attempt(s)"
            )
        elif not already:  # flat before this run sent anything: nothing to close
            self.progress("account already flat")
        # else: a re-check of an account known flat (the worker's every few seconds): quiet
        return report

    def _activation_record(self, emergency: Emergency) -> list[Any]:
        """The emergency's events of this activation (one read); [] when the store cannot
        give them now (the closes found by look-up then wait for a later check)."""
        try:
            return activation_events(self.store, emergency.activation_number)
        except StoreUnavailable as e:
            log.error("cannot read this activation's closes (%s); looked up later", e)
            return []

    def _conclude_incomplete(
        self,
        emergency: Emergency,
        seen: _Progress,
        positions: list[Position] | None,
        orders: list[Order] | None,
    ) -> FlattenReport:
        """``positions``/``orders``: the venue's read at the deadline; None when it could
        not be read: the last read that answered stands in, so nothing is ever counted as
        closed that was not seen gone, and the report says what is left is unknown."""
        known = positions is not None and orders is not None
        positions = positions if positions is not None else seen.last_positions or []
        orders = orders if orders is not None else seen.last_orders or []
        remaining = [
            {"symbol": p.symbol, "side": p.side, "quantity": p.quantity, "average_price": None}
            for p in positions
        ]
        still_open = {o.id for o in orders}
        # Once the store went silent in this run these calls fail at once (its deadline has
        # passed: adapters.answer_deadline); the latch stays, and the flatten that finishes
        # the job (the worker's) records its own conclusion.
        current = self._load_or(emergency)  # the copy in hand may be behind our saves
        if current.active and current.activation_id == emergency.activation_id:
            emergency = current
            emergency.record_incomplete(
                remaining_positions=remaining,
                remaining_orders=len(still_open),
                positions_closed=len(seen.positions_seen) - len(remaining),
                orders_canceled=len(seen.orders_seen - still_open),
                last_error=seen.last_error,
                timestamp=self.clock(),
            )
            self._save(emergency)
        report = replace(
            self._report(self._load_or(emergency), flat=False, progress=seen),
            remaining_positions=positions,
            remaining_orders=len(still_open),
            remaining_known=known,
        )
        log.error(
            "FLATTEN INCOMPLETE after %.0fs: %s (last error: %s); still trying",
            self.deadline,
            report.left(),
            seen.last_error,
        )
        return report

    def _report(
        self, emergency: Emergency | None, *, flat: bool, progress: _Progress
    ) -> FlattenReport:
        assert emergency is not None
        return FlattenReport(
            activation_number=emergency.activation_number,
            flat=flat,
            positions_closed=emergency.positions_closed or 0,
            orders_canceled=emergency.orders_canceled or 0,
            attempts=emergency.flatten_attempts,
            time_to_flat_ms=emergency.time_to_flat_ms,
            last_error=progress.last_error,
        )

    def _load(self) -> Emergency | None:
        """The emergency as committed; None only if it was never recorded. Raises
        StoreUnavailable when the store cannot say (which never means "none")."""
        return self.repository.find(Emergency, EMERGENCY_ID)

    def _load_or(self, fallback: Emergency) -> Emergency:
        """The committed emergency, or ``fallback`` when the store cannot give it now."""
        try:
            return self._load() or fallback
        except StoreUnavailable:
            return fallback

    def _save_current(self, emergency: Emergency) -> None:
        """Save; raise _Overtaken if another writer got there first, StoreUnavailable if the
        store cannot record it."""
        try:
            self.repository.save(emergency)
        except Conflict:
            raise _Overtaken from None

    def _save(self, emergency: Emergency) -> bool:
        """Save a conclusion; False if another writer got there first or the store cannot
        record it now (the worker's next check records it)."""
        try:
            self.repository.save(emergency)
        except Conflict:
            return False
        except StoreUnavailable as e:
            log.error("cannot record the flatten's conclusion (%s); recorded on a later check", e)
            return False
        return True


def _planned(record: list[Any]) -> tuple[set[tuple[str, str]], int]:
    """What the attempts of an activation's ``record`` set out to do: the (symbol, side) of
    every position they sent a close for, and the most orders one of them found open."""
    attempts = [e for e in record if isinstance(e, Emergency.FlattenAttempted)]
    positions = {(str(o["symbol"]), str(o["side"])) for e in attempts for o in e.close_orders}
    return positions, max((e.orders_open for e in attempts), default=0)


def _canceled_orders(record: list[Any]) -> int:
    """How many orders the recorded cancels of an activation's ``record`` took off the
    venue, whichever run sent them."""
    return sum(e.count for e in record if isinstance(e, Emergency.OrdersCanceled))


def positions_and_orders(venue: ExchangePort) -> tuple[int, int]:
    """The venue's exposure now: (open positions, open orders); transient errors retried."""
    return (
        len(retry_transient(venue.fetch_positions)),
        len(retry_transient(venue.fetch_open_orders)),
    )
