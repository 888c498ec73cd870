"""Runs projections over the one event log, exactly once per event.

Each batch is applied in one transaction that also advances the projection's tracking row,
so a crash leaves either both or neither (P0-03). The tracking row is locked for the batch,
so two runners of the same projection (a CLI command catching up while the worker runs)
take turns instead of applying an event twice. Events a projection does not handle are
skipped without being decoded, but the position still advances past them, so lag reads 0
when the projection has seen everything.
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar, Protocol
from uuid import UUID

from eventsourcing.domain import DomainEventProtocol
from eventsourcing.persistence import Mapper, StoredEvent
from eventsourcing.utils import get_topic
from sqlalchemy import Connection, Engine, select, update
from sqlalchemy.dialects.postgresql import insert

from projections.tables import projection_tracking

log = logging.getLogger(__name__)


class LogReader(Protocol):
    """Reads the event log inside a caller's transaction (implemented in adapters)."""

    def head(self, conn: Connection) -> int: ...

    def read(
        self, conn: Connection, *, after: int, upto: int, topics: Sequence[str], limit: int
    ) -> list[tuple[int, StoredEvent]]: ...


class Projection(ABC):
    """A read model. Subclasses name the event classes they handle and apply them."""

    name: ClassVar[str]
    handles: ClassVar[tuple[type[Any], ...]]

    @classmethod
    def topics(cls) -> list[str]:
        return [get_topic(c) for c in cls.handles]

    @abstractmethod
    def apply(self, conn: Connection, event: DomainEventProtocol[UUID], position: int) -> None:
        """Apply one event inside the caller's transaction."""


@dataclass(frozen=True)
class ProjectionPosition:
    name: str
    position: int
    head: int
    updated_at: datetime | None
    last_error: str | None

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
        batch_size: int = 500,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.engine = engine
        self.reader = reader
        self.mapper = mapper
        self.projections = list(projections)
        self.batch_size = batch_size
        self.clock = clock

    def catch_up(self) -> int:
        """Apply every committed event each projection has not processed. Returns the count."""
        return sum(self._catch_up(p) for p in self.projections)

    def positions(self) -> list[ProjectionPosition]:
        """Each projection's tracked position, beside the log's head (one snapshot)."""
        with self.engine.connect() as conn:
            head = self.reader.head(conn)
            rows = {r.name: r for r in conn.execute(select(projection_tracking)).all()}
        result = []
        for p in self.projections:
            row = rows.get(p.name)
            result.append(
                ProjectionPosition(
                    name=p.name,
                    position=row.position if row else 0,
                    head=head,
                    updated_at=row.updated_at if row else None,
                    last_error=row.last_error if row else None,
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

    # -- internals -----------------------------------------------------------------------------

    def _catch_up(self, projection: Projection) -> int:
        applied = 0
        topics = projection.topics()
        while True:
            try:
                with self.engine.begin() as conn:
                    position = self._lock_position(conn, projection.name)
                    head = self.reader.head(conn)
                    if position >= head:
                        return applied
                    batch = self.reader.read(
                        conn, after=position, upto=head, topics=topics, limit=self.batch_size
                    )
                    for notification_id, stored in batch:
                        event = self.mapper.to_domain_event(stored)
                        projection.apply(conn, event, notification_id)
                    applied += len(batch)
                    full = len(batch) == self.batch_size
                    new_position = batch[-1][0] if full else head
                    conn.execute(
                        update(projection_tracking)
                        .where(projection_tracking.c.name == projection.name)
                        .values(position=new_position, updated_at=self.clock(), last_error=None)
                    )
            except Exception as error:
                self._record_error(projection.name, error)
                raise

    def _lock_position(self, conn: Connection, name: str) -> int:
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
