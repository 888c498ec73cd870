"""Which model version each consumer runs (P0-06), for `model status` and the dashboards."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from eventsourcing.domain import DomainEventProtocol
from sqlalchemy import Connection, Table
from sqlalchemy.dialects.postgresql import insert

from domain.model_consumer import ModelConsumer
from projections.runner import Projection
from projections.tables import model_consumers


class ModelStatusProjection(Projection):
    default_name = "model_status"
    handles = (ModelConsumer.ModelLoaded, ModelConsumer.ModelLoadFailed)

    @classmethod
    def default_tables(cls) -> dict[str, Table]:
        return {"consumers": model_consumers}

    def apply(self, conn: Connection, event: DomainEventProtocol[UUID], position: int) -> None:
        e: Any = event
        table = self.tables["consumers"]
        if isinstance(e, ModelConsumer.ModelLoaded):
            values = {
                "version": e.version,
                "loaded_at": e.timestamp,
                "last_error": None,
                "updated_at": e.timestamp,
            }
        else:
            values = {"last_error": f"v{e.version}: {e.error}", "updated_at": e.timestamp}
        conn.execute(
            insert(table)
            .values(consumer=e.consumer, model=e.name, **values)
            .on_conflict_do_update(index_elements=["consumer", "model"], set_=values)
        )
