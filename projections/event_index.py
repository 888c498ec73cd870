"""The timestamp index of the log: one row per event, every topic."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from eventsourcing.domain import DomainEventProtocol
from eventsourcing.utils import get_topic
from sqlalchemy import Connection, Table

from projections.runner import Projection
from projections.tables import event_index


class EventIndexProjection(Projection):
    default_name = "event_index"
    handles = None  # every event

    @classmethod
    def default_tables(cls) -> dict[str, Table]:
        return {"index": event_index}

    def apply(self, conn: Connection, event: DomainEventProtocol[UUID], position: int) -> None:
        self.apply_batch(conn, [(position, event)])

    def apply_batch(
        self, conn: Connection, events: Sequence[tuple[int, DomainEventProtocol[UUID]]]
    ) -> None:
        # One multi-row insert per batch: a rebuild writes a row for every event in the log.
        conn.execute(self.tables["index"].insert(), [_row(p, e) for p, e in events])


def _row(position: int, event: Any) -> dict[str, Any]:
    return {
        "notification_id": position,
        "recorded_at": event.timestamp,
        "topic": get_topic(type(event)),
        "originator_id": event.originator_id,
        "originator_version": event.originator_version,
        "actor": getattr(event, "actor", None),
        "correlation_id": getattr(event, "correlation_id", None),
        "causation_id": getattr(event, "causation_id", None),
    }
