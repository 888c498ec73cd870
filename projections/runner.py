"""Runs projections over the one event log, exactly once per event.

Each batch is applied in one transaction that also advances the projection's tracking row,
so a crash leaves either both or neither (P0-03). The tracking row is locked for the batch,
so two runners of the same projection (a CLI command catching up while the worker runs)
take turns instead of applying an event twice. Events a projection does not handle are
skipped without being decoded, but the position still advances past them, so lag reads 0
when the projection has seen everything. Batches are bounded, so memory is too, however
long the log.
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Protocol, Self
from uuid import UUID

from eventsourcing.domain import DomainEventProtocol
from eventsourcing.persistence import Mapper, StoredEvent
from eventsourcing.utils import get_topic
from sqlalchemy import Connection, Engine, MetaData, Table, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.sql.elements import quoted_name

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

    @classmethod
    @abstractmethod
    def default_tables(cls) -> dict[str, Table]:
        """The live tables, by role."""

    @classmethod
    def topics(cls) -> list[str] | None:
        return None if cls.handles is None else [get_topic(c) for c in cls.handles]

    def renamed(self, suffix: str) -> Self:
        copies = {role: renamed_table(table, suffix) for role, table in self.tables.items()}
        return type(self)(copies, name=self.name + suffix)

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

    @property
    def lag(self) -> int:
        return max(self.head - self.position, 0)


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
    ) -> None:
        self.engine = engine
        self.reader = reader
        self.mapper = mapper
        self.projections = list(projections)
        self.batch_size = batch_size
        self.clock = clock

    def projection(self, name: str) -> Projection:
        """The projection called ``name``; KeyError if the runner has none."""
        for projection in self.projections:
            if projection.name == name:
                return projection
        raise KeyError(name)

    def catch_up(self) -> int:
        """Apply every committed event each projection has not processed. Returns the count."""
        return sum(self.catch_up_projection(p) for p in self.projections)

    def catch_up_projection(
        self,
        projection: Projection,
        *,
        upto: int | None = None,
        progress: Callable[[int, int], None] = lambda position, head: None,
    ) -> int:
        """Apply ``projection``'s pending events up to ``upto`` (default: the head), one
        transaction per batch. Returns how many events it applied."""
        applied = 0
        while True:
            try:
                with self.engine.begin() as conn:
                    count, position, target = self.step(conn, projection, upto=upto)
            except Exception as error:
                self._record_error(projection.name, error)
                raise
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
        batch = self.reader.read(
            conn, after=position, upto=target, topics=projection.topics(), limit=self.batch_size
        )
        projection.apply_batch(
            conn,
            [
                (notification_id, self.mapper.to_domain_event(stored))
                for notification_id, stored in batch
            ],
        )
        full = len(batch) == self.batch_size
        new_position = batch[-1][0] if full else target
        conn.execute(
            update(projection_tracking)
            .where(projection_tracking.c.name == projection.name)
            .values(
                position=new_position,
                updated_at=self.clock(),
                last_error=None,
                replayed_since_start=projection_tracking.c.replayed_since_start + len(batch),
            )
        )
        return len(batch), new_position, target

    def mark_started(self) -> None:
        """A worker starts: its 'replayed since start' counters begin at 0."""
        with self.engine.begin() as conn:
            for p in self.projections:
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
        projection that waited only for NOTIFY could then stall (DESIGN.md decision 2).
        A failing projection is retried with a bounded backoff; its event is never skipped.
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

    def lock_position(self, conn: Connection, name: str) -> int:
        """The tracked position of ``name``, its row locked until the transaction ends."""
        conn.execute(
            insert(projection_tracking)
            .values(name=name, position=0, updated_at=self.clock())
            .on_conflict_do_nothing(index_elements=["name"])
        )
        position = conn.execute(
            select(projection_tracking.c.position)
            .where(projection_tracking.c.name == name)
            .with_for_update()
        ).scalar_one()
        return int(position)

    # -- internals -----------------------------------------------------------------------------

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
