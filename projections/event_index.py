"""The timestamp index of the log: one row per event, every topic."""

from __future__ import annotations

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
        e: Any = event
        conn.execute(
            self.tables["index"]
            .insert()
            .values(
                notification_id=position,
                recorded_at=e.timestamp,
                topic=get_topic(type(e)),
                originator_id=e.originator_id,
                originator_version=e.originator_version,
                actor=getattr(e, "actor", None),
                correlation_id=getattr(e, "correlation_id", None),
                causation_id=getattr(e, "causation_id", None),
            )
        )
