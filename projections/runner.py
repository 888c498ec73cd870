"""Runs projections over the one event log, exactly once per event.

Each batch is applied in one transaction that also advances the projection's tracking row,
so a crash leaves either both or neither (P0-03). The tracking row is locked for the batch,
so two runners of the same projection (a CLI command catching up while the worker runs)
take turns instead of applying an event twice. Events a projection does not handle are
skipped without being decoded, but the position still advances past them, so lag reads 0
when the projection has seen everything. Batches are bounded, so memory is too, however
long the log.

A consumer that fails on an event is isolated: its batch is replayed one event at a time to
find the event it cannot apply (the ones before it are applied), the failure is recorded in
its tracking row (position, event id, topic, error, since when, how many tries), it waits
out a backoff of its own, and the other consumers keep going. It stays at that position
until the event applies (an upcaster release) or an operator records a skip of exactly
that event (``domain.projection_skip``). A store that cannot be reached is not a consumer's
failure: it is raised at once, so the caller notices the outage.
"""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Protocol, Self
from uuid import UUID

from eventsourcing.domain import DomainEventProtocol
from eventsourcing.persistence import Mapper, StoredEvent
from eventsourcing.utils import get_topic
from sqlalchemy import (
    Connection,
    Engine,
    MetaData,
    Table,
    bindparam,
    func,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.sql.elements import quoted_name

from domain.projection_skip import ProjectionSkip
from projections.tables import projection_tracking

log = logging.getLogger(__name__)


class LogReader(Protocol):
    """Reads the event log inside a caller's transaction (implemented in adapters)."""

    def head(self, conn: Connection) -> int: ...

    def read(
        self,
        conn: Connection,
        *,
        after: int,
        upto: int,
        topics: Sequence[str] | None,
        limit: int,
    ) -> list[tuple[int, StoredEvent]]: ...


class Projection(ABC):
    """A read model: the tables it owns (by role) and how each event changes them.

    ``renamed(suffix)`` gives the same projection writing to copies of its tables under
    another tracking name: what rebuilds and verification build before comparing or swapping.
    """

    default_name: ClassVar[str]
    # The event classes it handles; None: every event in the log.
    handles: ClassVar[tuple[type[Any], ...] | None]

    def __init__(self, tables: Mapping[str, Table] | None = None, name: str | None = None):
        self.tables: dict[str, Table] = dict(tables or self.default_tables())
        self.name = name or self.default_name
        # The live consumer this one copies (itself unless renamed): whose skips it honours.
        self.origin = self.name

    @classmethod
    @abstractmethod
    def default_tables(cls) -> dict[str, Table]:
        """The live tables, by role."""

    @classmethod
    def topics(cls) -> list[str] | None:
        return None if cls.handles is None else [get_topic(c) for c in cls.handles]

    def renamed(self, suffix: str) -> Self:
        copies = {role: renamed_table(table, suffix) for role, table in self.tables.items()}
        copy = type(self)(copies, name=self.name + suffix)
        copy.origin = self.origin
        return copy

    @abstractmethod
    def apply(self, conn: Connection, event: DomainEventProtocol[UUID], position: int) -> None:
        """Apply one event inside the caller's transaction."""

    def apply_batch(
        self, conn: Connection, events: Sequence[tuple[int, DomainEventProtocol[UUID]]]
    ) -> None:
        """Apply a batch in order (one transaction). Projections override it to write a
        batch in fewer statements; the result must equal applying each event in turn."""
        for position, event in events:
            self.apply(conn, event, position)


def renamed_table(table: Table, suffix: str) -> Table:
    """A copy of ``table`` named ``<name><suffix>``, its named indexes renamed alike."""
    copy = table.to_metadata(MetaData(schema=table.schema), name=table.name + suffix)
    for index in copy.indexes:
        index.name = quoted_name(f"{index.name}{suffix}", quote=None)
    return copy


@dataclass(frozen=True)
class ProjectionPosition:
    name: str
    position: int
    head: int
    updated_at: datetime | None
    last_error: str | None
    replayed_since_start: int
    lag_seconds: float
    # The event it cannot apply (None while healthy), since when, and how many tries failed.
    failing_event_id: int | None = None
    failing_topic: str | None = None
    failing_since: datetime | None = None
    failures: int = 0

    @property
    def lag(self) -> int:
        return max(self.head - self.position, 0)


@dataclass(frozen=True)
class Failure:
    """A consumer that cannot apply an event: where it stands and what it met."""

    name: str
    position: int  # its tracked position: the last event it applied (or passed)
    event_id: int | None  # the notification id of the event it cannot apply
    topic: str | None
    error: str


class ProjectionFailed(Exception):
    """A consumer cannot apply an event (not a store outage): ``failure`` says which."""

    def __init__(self, failure: Failure) -> None:
        at = f"event {failure.event_id} ({failure.topic})" if failure.event_id else "its batch"
        super().__init__(f"{failure.name} cannot apply {at}: {failure.error}")
        self.failure = failure


class ProjectionBusy(TimeoutError):
    """Another transaction held a read model's rows longer than the caller would wait (a
    bounded catch-up, see ``ProjectionRunner.catch_up_projection``). Nothing of the waiting
    transaction stays and nothing is recorded against the read model: it is not failing.
    A TimeoutError, so that callers in rooms that may not import the projections can tell
    a wait that ran out from a failure."""

    def __init__(self, name: str, seconds: float) -> None:
        super().__init__(f"{name} is being written by another transaction (waited {seconds:g} s)")
        self.name = name


def _lock_wait_ended(error: BaseException) -> bool:
    """A lock wait ended by the transaction's lock_timeout (SQLSTATE 55P03)."""
    return getattr(getattr(error, "orig", None), "sqlstate", None) == "55P03"


@dataclass(frozen=True)
class Skip:
    """A recorded skip: ``consumer`` passes over event ``event_id`` of the log."""

    consumer: str
    event_id: int
    topic: str
    error: str
    reason: str
    actor: str
    recorded_at: datetime
    position: int  # where the skip itself is in the log


SKIP_TOPICS = [get_topic(ProjectionSkip.Recorded)]


class ProjectionRunner:
    def __init__(
        self,
        engine: Engine,
        reader: LogReader,
        mapper: Mapper[UUID],
        projections: Sequence[Projection],
        *,
        clock: Callable[[], datetime],  # the one clock, given by the bootstrap
        batch_size: int = 500,
        probe: Callable[[], None] = lambda: None,
        retry_after: float = 1.0,
        max_retry_after: float = 60.0,
    ) -> None:
        """``probe`` raises when the store cannot be reached: how a consumer's own failure
        is told from an outage. A failing consumer is retried after ``retry_after`` seconds,
        doubling up to ``max_retry_after``."""
        self.engine = engine
        self.reader = reader
        self.mapper = mapper
        self.projections = list(projections)
        self.batch_size = batch_size
        self.clock = clock
        self.probe = probe
        self.retry_after = retry_after
        self.max_retry_after = max_retry_after
        # name -> (monotonic time of the next try, the delay after the next failure)
        self._retry: dict[str, tuple[float, float]] = {}
        # consumer -> the event ids it skips, read from the log when one fails.
        self._skips: dict[str, set[int]] = {}

    def projection(self, name: str) -> Projection:
        """The projection called ``name``; KeyError if the runner has none."""
        for projection in self.projections:
            if projection.name == name:
                return projection
        raise KeyError(name)

    def catch_up(self, lock_wait: float | None = None) -> int:
        """Apply every committed event each projection has not processed. Returns the count.

        A projection that fails on an event is recorded, waits out its backoff and is
        passed over meanwhile; the others go on (see ``failing``). ``lock_wait``: the
        longest, in seconds, a transaction of this call waits for a lock another holds
        (None: as long as it holds); a projection whose rows stay held is passed over this
        time, not recorded as failing, and the others go on. Raises only what the store
        raises when it cannot be reached."""
        due = [
            p
            for p in self.projections
            if time.monotonic() >= self._retry.get(p.name, (0.0, self.retry_after))[0]
        ]
        applied, rest = self._together(due, lock_wait)
        for projection in rest:
            try:
                applied += self.catch_up_projection(projection, lock_wait=lock_wait)
            except ProjectionBusy as busy:
                log.warning("%s; caught up at a later pass", busy)
                continue
            except ProjectionFailed as failed:
                self._back_off(projection.name, failed)
                continue
            self._retry.pop(projection.name, None)
        return applied

    def _together(
        self, projections: Sequence[Projection], lock_wait: float | None
    ) -> tuple[int, list[Projection]]:
        """The steady state in one transaction: every tracking row locked and the head read
        once, the few events since the slowest position read once, each projection given
        the ones it handles, every position advanced in one statement. Returns (events
        applied, the projections left to the one-by-one path): all of them when a row is
        missing, one is more than a batch behind (at start, after an outage), or anything
        fails (then nothing of this transaction stays, and the path that isolates a failing
        projection runs as before); none otherwise."""
        if not projections:
            return 0, []
        names = [p.name for p in projections]
        try:
            with self.engine.begin() as conn:
                if lock_wait is not None:
                    self._bound_lock_wait(conn, lock_wait)
                positions = {
                    r.name: int(r.position)
                    for r in conn.execute(
                        select(projection_tracking.c.name, projection_tracking.c.position)
                        .where(projection_tracking.c.name.in_(names))
                        .order_by(projection_tracking.c.name)
                        .with_for_update()
                    )
                }
                if len(positions) < len(names):
                    return 0, list(projections)
                head = self.reader.head(conn)
                behind = [p for p in projections if positions[p.name] < head]
                if not behind:
                    return 0, []
                start = min(positions[p.name] for p in behind)
                if head - start > self.batch_size:
                    return 0, list(projections)
                batch = self.reader.read(
                    conn, after=start, upto=head, topics=None, limit=self.batch_size
                )
                decoded: dict[int, DomainEventProtocol[UUID]] = {}
                moves: list[dict[str, Any]] = []
                applied = 0
                for projection in behind:
                    topics = projection.topics()
                    wanted = set(topics) if topics is not None else None
                    mine = [
                        (n, stored)
                        for n, stored in batch
                        if n > positions[projection.name]
                        and (wanted is None or stored.topic in wanted)
                    ]
                    skipped = self._skips.get(projection.origin, set())
                    events = []
                    for n, stored in mine:
                        if n in skipped:
                            continue
                        if n not in decoded:
                            decoded[n] = self.mapper.to_domain_event(stored)
                        events.append((n, decoded[n]))
                    if events:
                        projection.apply_batch(conn, events)
                    applied += len(mine)
                    moves.append({"b_name": projection.name, "b_count": len(mine)})
                t = projection_tracking
                conn.execute(
                    update(t)
                    .where(t.c.name == bindparam("b_name"))
                    .values(**self._advanced(head, bindparam("b_count"))),
                    moves,
                )
        except Exception:
            # An outage too: the one-by-one path meets it, records it and raises it.
            log.debug("joint catch-up failed; each projection on its own", exc_info=True)
            return 0, list(projections)
        for projection in projections:
            self._retry.pop(projection.name, None)
        return applied, []

    @staticmethod
    def _bound_lock_wait(conn: Connection, seconds: float) -> None:
        """Every lock wait of ``conn``'s transaction ends after ``seconds`` (SQLSTATE 55P03)
        instead of lasting as long as the holder holds, which a stopped process does for
        ever. adapters.locks bounds the order-flow lock the same way; the projections may
        not import the adapters."""
        conn.execute(
            text("SELECT set_config('lock_timeout', :ms, true)"),
            {"ms": f"{max(1, int(seconds * 1000))}ms"},
        )

    def failing(self) -> list[str]:
        """The projections this runner is holding back after a failure."""
        return sorted(self._retry)

    def catch_up_projection(
        self,
        projection: Projection,
        *,
        upto: int | None = None,
        progress: Callable[[int, int], None] = lambda position, head: None,
        lock_wait: float | None = None,
    ) -> int:
        """Apply ``projection``'s pending events up to ``upto`` (default: the head), one
        transaction per batch. Returns how many events it applied.

        ``lock_wait``: the longest, in seconds, each batch's transaction waits for a lock
        (its tracking row, its rows) that another transaction holds; None waits as long as
        the holder holds (a stopped holder: for ever).

        Raises ProjectionFailed (recorded in its tracking row) when it cannot apply an
        event, having applied the ones before it; ProjectionBusy when ``lock_wait`` ran
        out (nothing recorded); a store error as it is."""
        applied = 0
        while True:
            try:
                with self.engine.begin() as conn:
                    if lock_wait is not None:
                        self._bound_lock_wait(conn, lock_wait)
                    count, position, target = self.step(conn, projection, upto=upto)
            except Exception as error:
                if lock_wait is not None and _lock_wait_ended(error):
                    raise ProjectionBusy(projection.name, lock_wait) from None
                if self._store_down():
                    self._record_error(projection.name, error)
                    raise
                # Find the event: one at a time, applying those before it.
                count, position, target = self._one_by_one(projection, upto, lock_wait)
            applied += count
            progress(position, target)
            if position >= target:
                return applied

    def apply_pending(self, conn: Connection, projection: Projection, *, upto: int) -> int:
        """Apply pending events up to ``upto`` inside the caller's transaction."""
        applied = 0
        while True:
            count, position, target = self.step(conn, projection, upto=upto)
            applied += count
            if position >= target:
                return applied

    def step(
        self, conn: Connection, projection: Projection, *, upto: int | None = None
    ) -> tuple[int, int, int]:
        """Apply one batch in ``conn``. Returns (events applied, new position, target)."""
        position = self.lock_position(conn, projection.name)
        target = self.reader.head(conn) if upto is None else upto
        if position >= target:
            return 0, position, target
        return self._apply(conn, projection, position, target, self.batch_size)

    def _apply(
        self, conn: Connection, projection: Projection, position: int, target: int, limit: int
    ) -> tuple[int, int, int]:
        batch = self.reader.read(
            conn, after=position, upto=target, topics=projection.topics(), limit=limit
        )
        skipped = self._skips.get(projection.origin, set())
        projection.apply_batch(
            conn,
            [
                (notification_id, self.mapper.to_domain_event(stored))
                for notification_id, stored in batch
                if notification_id not in skipped
            ],
        )
        full = len(batch) == limit
        new_position = batch[-1][0] if full else target
        conn.execute(
            update(projection_tracking)
            .where(projection_tracking.c.name == projection.name)
            .values(**self._advanced(new_position, len(batch)))
        )
        return len(batch), new_position, target

    def mark_started(self) -> None:
        """A worker starts: its 'replayed since start' counters begin at 0."""
        with self.engine.begin() as conn:
            # In name order, as the joint catch-up locks them: two never wait on each other.
            for p in sorted(self.projections, key=lambda p: p.name):
                self.lock_position(conn, p.name)
                conn.execute(
                    update(projection_tracking)
                    .where(projection_tracking.c.name == p.name)
                    .values(replayed_since_start=0, started_at=self.clock())
                )

    def positions(self) -> list[ProjectionPosition]:
        """Each projection's tracked position beside the log's head (one snapshot), with
        how old its oldest unprocessed event is."""
        now = self.clock()
        result = []
        with self.engine.connect() as conn, conn.begin():
            head = self.reader.head(conn)
            rows = {r.name: r for r in conn.execute(select(projection_tracking)).all()}
            for p in self.projections:
                row = rows.get(p.name)
                position = row.position if row else 0
                lag_seconds = 0.0
                if position < head:
                    [(_, stored)] = self.reader.read(
                        conn, after=position, upto=head, topics=None, limit=1
                    )
                    event: Any = self.mapper.to_domain_event(stored)
                    oldest: datetime = event.timestamp
                    lag_seconds = max((now - oldest).total_seconds(), 0.0)
                result.append(
                    ProjectionPosition(
                        name=p.name,
                        position=position,
                        head=head,
                        updated_at=row.updated_at if row else None,
                        last_error=row.last_error if row else None,
                        replayed_since_start=row.replayed_since_start if row else 0,
                        lag_seconds=lag_seconds,
                        failing_event_id=row.failing_event_id if row else None,
                        failing_topic=row.failing_topic if row else None,
                        failing_since=row.failing_since if row else None,
                        failures=row.failures if row else 0,
                    )
                )
        return result

    def run(
        self,
        stop: threading.Event,
        wait_for_events: Callable[[float], None],
        *,
        poll_interval: float = 1.0,
    ) -> None:
        """Catch up, then wait for a notification (or the poll interval) and repeat.

        The poll matters: the library's LISTEN/NOTIFY can miss a notification, and a
        projection that waited only for NOTIFY could then stall (docs/ARCHITECTURE.md, decision 2).
        A failing projection is retried with a backoff of its own while the others go on;
        its event is never skipped unless an operator recorded a skip of it.
        """
        backoff = poll_interval
        while not stop.is_set():
            try:
                self.catch_up()
                backoff = poll_interval
            except Exception:
                log.exception("projection catch-up failed; retrying in %.1fs", backoff)
                stop.wait(backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            wait_for_events(poll_interval)

    def _advanced(self, position: int, applied: Any) -> dict[str, Any]:
        """A tracking row's new values once a batch is applied up to ``position``: its
        failure record cleared, ``applied`` (a count, or a bound parameter holding one) added
        to the events replayed since the start."""
        return {
            "position": position,
            "updated_at": self.clock(),
            "last_error": None,
            "failing_event_id": None,
            "failing_topic": None,
            "failing_since": None,
            "failures": 0,
            "replayed_since_start": projection_tracking.c.replayed_since_start + applied,
        }

    def lock_position(self, conn: Connection, name: str) -> int:
        """The tracked position of ``name``, its row locked until the transaction ends (the
        row created at 0 the first time)."""
        locked = (
            select(projection_tracking.c.position)
            .where(projection_tracking.c.name == name)
            .with_for_update()
        )
        position = conn.execute(locked).scalar()
        if position is None:
            conn.execute(
                insert(projection_tracking)
                .values(name=name, position=0, updated_at=self.clock())
                .on_conflict_do_nothing(index_elements=["name"])
            )
            position = conn.execute(locked).scalar_one()
        return int(position)

    def recorded_skips(self) -> list[Skip]:
        """Every skip recorded in the log, in log order."""
        with self.engine.connect() as conn, conn.begin():
            return self._read_skips(conn)

    # -- internals -----------------------------------------------------------------------------

    def _read_skips(self, conn: Connection) -> list[Skip]:
        head = self.reader.head(conn)
        found = []
        for position, stored in self.reader.read(
            conn, after=0, upto=head, topics=SKIP_TOPICS, limit=1_000_000
        ):
            e: Any = self.mapper.to_domain_event(stored)
            found.append(
                Skip(
                    consumer=e.consumer,
                    event_id=e.notification_id,
                    topic=e.topic,
                    error=e.error,
                    reason=e.reason,
                    actor=e.actor,
                    recorded_at=e.timestamp,
                    position=position,
                )
            )
        return found

    def _load_skips(self) -> None:
        skips: dict[str, set[int]] = {}
        for skip in self.recorded_skips():
            skips.setdefault(skip.consumer, set()).add(skip.event_id)
        self._skips = skips

    def _one_by_one(
        self, projection: Projection, upto: int | None, lock_wait: float | None
    ) -> tuple[int, int, int]:
        """After a failed batch: up to one batch of events, each in a transaction of its
        own, so the event that fails is known (and the ones before it are applied). The
        skips are read afresh first: an operator may have recorded one meanwhile. Returns
        (events applied, position, target); raises ProjectionFailed at the failing event,
        ProjectionBusy when a lock wait outlasts ``lock_wait`` (as catch_up_projection)."""
        self._load_skips()
        skipped = self._skips.get(projection.origin, set())
        applied, position, target = 0, 0, 0
        for _ in range(self.batch_size):
            event: tuple[int, str] | None = None
            try:
                with self.engine.begin() as conn:
                    if lock_wait is not None:
                        self._bound_lock_wait(conn, lock_wait)
                    position = self.lock_position(conn, projection.name)
                    target = self.reader.head(conn) if upto is None else upto
                    if position >= target:
                        break
                    batch = self.reader.read(
                        conn, after=position, upto=target, topics=projection.topics(), limit=1
                    )
                    if batch:
                        event = (batch[0][0], batch[0][1].topic)
                        if event[0] in skipped:
                            log.warning(
                                "%s passes over event %d (%s): a recorded skip",
                                projection.name,
                                *event,
                            )
                    count, position, target = self._apply(conn, projection, position, target, 1)
                    applied += count
            except Exception as error:
                if lock_wait is not None and _lock_wait_ended(error):
                    raise ProjectionBusy(projection.name, lock_wait) from None
                if self._store_down():
                    self._record_error(projection.name, error)
                    raise
                failure = Failure(
                    name=projection.name,
                    position=position,
                    event_id=event[0] if event else None,
                    topic=event[1] if event else None,
                    error=f"{type(error).__name__}: {error}"[:2000],
                )
                self._record_failure(failure)
                raise ProjectionFailed(failure) from error
            if position >= target:
                break
        return applied, position, target

    def _store_down(self) -> bool:
        try:
            self.probe()
        except Exception:  # noqa: BLE001 - whatever the probe raises, the store is not there
            return True
        return False

    def _back_off(self, name: str, failed: ProjectionFailed) -> None:
        _, delay = self._retry.get(name, (0.0, self.retry_after))
        self._retry[name] = (time.monotonic() + delay, min(delay * 2, self.max_retry_after))
        log.error("read model failing, the others go on; retrying in %.0fs: %s", delay, failed)

    def _record_failure(self, failure: Failure) -> None:
        now = self.clock()
        t = projection_tracking
        values = {
            "last_error": failure.error,
            "failing_event_id": failure.event_id,
            "failing_topic": failure.topic,
        }
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    insert(t)
                    .values(
                        name=failure.name,
                        position=0,
                        updated_at=now,
                        failing_since=now,
                        failures=1,
                        **values,
                    )
                    .on_conflict_do_update(
                        index_elements=["name"],
                        set_={
                            **values,
                            "failing_since": func.coalesce(t.c.failing_since, now),
                            "failures": t.c.failures + 1,
                        },
                    )
                )
        except Exception:  # the store may be what failed; the caller still gets the error
            log.debug("could not record the failure of %s", failure.name, exc_info=True)

    def _record_error(self, name: str, error: Exception) -> None:
        try:
            with self.engine.begin() as conn:
                message = f"{type(error).__name__}: {error}"[:2000]
                # An upsert: the failed transaction may have been the one creating the row.
                conn.execute(
                    insert(projection_tracking)
                    .values(name=name, position=0, updated_at=self.clock(), last_error=message)
                    .on_conflict_do_update(index_elements=["name"], set_={"last_error": message})
                )
        except Exception:  # the store may be what failed; the caller still gets the error
            log.debug("could not record the error of projection %s", name, exc_info=True)
