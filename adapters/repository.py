"""One way to load and save aggregates, and one way to retry.

Three outcomes a caller must tell apart, and nothing else:

- *not found*: the aggregate has never been recorded (``find`` returns None);
- *store unavailable*: the store could not be asked or did not answer
  (``StoreUnavailable``) — the state is unknown, never "none";
- *conflict*: another writer saved first and nothing of this save was recorded
  (``Conflict``) — reload and apply the command again.

A save whose commit went through but whose acknowledgement was lost (the connection broke
after the insert committed, or the snapshot taken after it failed) is recognised by reading
the events back: it is a success, not a conflict and not an outage.

``RetryPolicy`` is the only retry loop for store work. A writer's policy stops starting
attempts after ``budget`` seconds (2 s); one attempt against a store that does not answer
is cut off by the store's connect and pool timeout (3 s, ``adapters.eventstore``), so an
outage fails a writer within ``WRITER_BOUND`` (5 s), never minutes.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError, InterfaceError, OperationalError

from adapters.answer_deadline import given_up
from adapters.errors import StoreUnavailable
from adapters.eventstore import LargeBatchSafeRecorder, TradecoreEventStore

log = logging.getLogger(__name__)
T = TypeVar("T")

# Seconds: the most an outage delays a writer before it fails with StoreUnavailable.
WRITER_BOUND = 5.0


class Conflict(Exception):
    """Another writer saved one of these aggregates first; nothing of this save was recorded."""


class ConcurrencyExhausted(Exception):
    """A command kept losing optimistic-concurrency races; nothing of it was recorded."""


def unavailable(error: BaseException) -> StoreUnavailable:
    """The one-line StoreUnavailable for a store error (no password, no traceback)."""
    text = str(error).strip().splitlines()
    return StoreUnavailable(f"event store unavailable: {text[0] if text else type(error).__name__}")


def guard(call: Callable[[], T]) -> T:
    """``call()``, with the store's connection errors raised as StoreUnavailable."""
    try:
        return call()
    except (OperationalError, InterfaceError) as e:
        raise unavailable(e) from None


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries with jittered exponential backoff.

    ``budget``: seconds after which an unavailable store is no longer retried (the last
    error is raised); ``max_attempts`` bounds the attempts as well. Conflicts are retried at
    once with a tiny jitter; an unavailable store with backoff up to ``max_backoff`` seconds.
    """

    budget: float = 2.0
    max_attempts: int = 50
    first_backoff: float = 0.002
    max_backoff: float = 0.25
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False, compare=False)
    now: Callable[[], float] = field(default=time.monotonic, repr=False, compare=False)

    def run(self, attempt: Callable[[], T], *, what: str = "the command") -> T:
        """``attempt()`` until it returns, retrying Conflict and StoreUnavailable.

        ``attempt`` must reload what it changes (each call starts from the committed state).
        Raises the last StoreUnavailable once ``budget`` seconds have passed (an outage) or
        the caller's answer deadline passed with the store silent, or
        ConcurrencyExhausted after ``max_attempts`` conflicts (each of which was a round trip
        that did reach the store); any other error at once.
        """
        started = self.now()
        backoff = self.first_backoff
        for n in range(self.max_attempts):
            try:
                return guard(attempt)
            except Conflict:
                log.debug("%s: concurrent-update conflict, attempt %d", what, n + 1)
                self.sleep(random.uniform(0, min(self.first_backoff * 2**n, 0.1)))  # noqa: S311
            except StoreUnavailable as e:
                remaining = self.budget - (self.now() - started)
                # Nor once the caller's answer deadline passed with the store silent: a
                # retry would only add to the overrun (adapters.answer_deadline).
                if remaining <= 0 or given_up():
                    raise
                log.warning("%s: %s (attempt %d)", what, e, n + 1)
                self.sleep(min(backoff, remaining))
                backoff = min(backoff * 4, self.max_backoff)
        raise ConcurrencyExhausted(
            f"{what}: gave up after {self.max_attempts} concurrent-update conflicts; "
            "nothing recorded"
        )


# The writers' policy: every command, process manager and the breaker use it.
WRITER = RetryPolicy()


class Repository:
    """Load and save aggregates of the one event store, telling the three outcomes apart."""

    def __init__(self, store: TradecoreEventStore) -> None:
        self.store = store

    def find(self, cls: type[T], aggregate_id: UUID, *, version: int | None = None) -> T | None:
        """The aggregate as committed (at ``version`` if given), or None if it was never
        recorded. Raises StoreUnavailable when the store cannot say."""
        try:
            found: object = guard(lambda: self.store.repository.get(aggregate_id, version=version))
        except AggregateNotFoundError:
            return None
        if not isinstance(found, cls):
            raise TypeError(f"aggregate {aggregate_id} is a {type(found).__name__}, not {cls}")
        return found

    def unchanged(self, *aggregates: Any) -> bool:
        """True when the store holds no version of any of these aggregates newer than the
        copy given (one statement for all): a holder of copies keeps using them only then.
        Raises StoreUnavailable."""
        recorder = cast(LargeBatchSafeRecorder, self.store.recorder)
        versions = guard(lambda: recorder.current_versions([a.id for a in aggregates]))
        return all(versions.get(a.id) == a.version for a in aggregates)

    def save(self, *aggregates: Any) -> None:
        """Record the aggregates' pending events in one transaction.

        Raises Conflict (another writer saved first: nothing recorded) or StoreUnavailable
        (the outcome could not be established: nothing or everything was recorded, and a
        reload tells which). A lost acknowledgement of a commit returns normally.
        """
        pending = [e for a in aggregates if a is not None for e in a.pending_events]
        try:
            self.store.save(*aggregates)
        except IntegrityError:
            # The store makes one attempt per call (adapters.eventstore), so this is never a
            # retry of our own committed insert: another writer saved first. (Content alone
            # could not tell: two writers with one clock can record identical events.)
            raise Conflict("another writer saved first") from None
        except (OperationalError, InterfaceError) as e:
            if pending and self._recorded(pending):
                log.warning("a commit's acknowledgement was lost (%s); its events are recorded", e)
                return
            raise unavailable(e) from None

    def _recorded(self, pending: Sequence[Any]) -> bool:
        """True if these events are in the log exactly as this writer encoded them (a save is
        one transaction, so the first event of each aggregate stands for all). Asked only
        after a connection error, when a concurrent writer's identical event (same content,
        same timestamp to the microsecond) is not a practical concern."""
        firsts: dict[UUID, Any] = {}
        for event in pending:
            firsts.setdefault(event.originator_id, event)
        try:
            for event in firsts.values():
                version = event.originator_version
                stored = self.store.recorder.select_events(
                    event.originator_id, gt=version - 1, lte=version
                )
                mine = self.store.mapper.to_stored_event(event)
                if not stored or stored[0].state != mine.state:
                    return False
        except (OperationalError, InterfaceError):
            return False  # cannot tell: the caller reports the store unavailable
        return True
