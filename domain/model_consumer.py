"""A module that uses a model (P0-06), as an aggregate: which version it loaded and when, or
why it could not, so anyone can see which version each consumer runs — now or at any past
instant. After a failed load a consumer keeps the model it had and says so."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID, uuid5

from eventsourcing.domain import event

from domain.base import TradecoreAggregate, require_aware, require_text
from domain.ids import NAMESPACE


def consumer_id(consumer: str, model: str) -> UUID:
    return uuid5(NAMESPACE, f"tradecore/model-consumer/{consumer}/{model}")


class ModelConsumer(TradecoreAggregate):
    class Created(TradecoreAggregate.Created):
        consumer: str
        model: str

    class ModelLoaded(TradecoreAggregate.Event):
        consumer: str
        name: str
        version: int

    class ModelLoadFailed(TradecoreAggregate.Event):
        consumer: str
        name: str
        version: int
        error: str
        kept_version: int | None  # what it keeps running (None: it had nothing yet)

    @staticmethod
    def create_id(*_: Any, consumer: str, model: str, **__: Any) -> UUID:
        return consumer_id(consumer, model)

    @event(Created)
    def __init__(self, *, consumer: str, model: str) -> None:
        self.consumer, self.model = consumer, model
        self.model_version: int | None = None
        self.loaded_at: datetime | None = None
        self.last_error: str | None = None

    @classmethod
    def start(cls, *, consumer: str, model: str, timestamp: datetime) -> ModelConsumer:
        return cls._create(
            cls.Created,
            consumer=require_text(consumer, "consumer"),
            model=require_text(model, "model"),
            timestamp=require_aware(timestamp),
        )

    def loaded(self, *, version: int, timestamp: datetime) -> None:
        self._loaded(consumer=self.consumer, name=self.model, version=version, timestamp=timestamp)

    @event(ModelLoaded)
    def _loaded(self, *, consumer: str, name: str, version: int, timestamp: datetime) -> None:
        self.model_version, self.loaded_at, self.last_error = version, timestamp, None

    def load_failed(self, *, version: int, error: str, timestamp: datetime) -> None:
        self._failed(
            consumer=self.consumer,
            name=self.model,
            version=version,
            error=error.strip()[:500] or "unknown error",
            kept_version=self.model_version,
            timestamp=timestamp,
        )

    @event(ModelLoadFailed)
    def _failed(
        self,
        *,
        consumer: str,
        name: str,
        version: int,
        error: str,
        kept_version: int | None,
        timestamp: datetime,
    ) -> None:
        self.last_error = f"v{version}: {error}"
