"""Commands on trades: load, apply one domain method, save; a concurrency conflict is
reloaded and retried (bounded), so several writers (executor, position monitor, learning
manager) never lose an update and never apply one twice."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError

from adapters.eventstore import TradecoreEventStore
from app.services import ConcurrencyExhausted
from domain.errors import InvalidCommand
from domain.trade import Trade

T = TypeVar("T")


class TradeNotFound(InvalidCommand):
    """No trade has this id."""


class TradeCommands:
    def __init__(self, store: TradecoreEventStore, *, max_attempts: int = 100) -> None:
        self.store = store
        self.max_attempts = max_attempts

    def open(self, trade: Trade) -> UUID:
        """Record a new trade (its Opened event)."""
        self.store.save(trade)
        return trade.id

    def load(self, trade_id: UUID) -> Trade:
        try:
            trade: object = self.store.repository.get(trade_id)
        except AggregateNotFoundError:
            raise TradeNotFound(f"no trade {trade_id}") from None
        assert isinstance(trade, Trade)
        return trade

    def update(self, trade_id: UUID, change: Callable[[Trade], T]) -> T:
        """Apply ``change`` to the latest version of the trade and save it, retrying on a
        concurrent writer's conflict. ``change`` must be a pure function of the trade."""
        for attempt in range(self.max_attempts):
            trade = self.load(trade_id)
            result = change(trade)
            try:
                self.store.save(trade)
            except IntegrityError:
                time.sleep(random.uniform(0, min(0.001 * 2**attempt, 0.05)))  # noqa: S311
                continue
            return result
        raise ConcurrencyExhausted(
            f"trade {trade_id}: gave up after {self.max_attempts} concurrent-update conflicts"
        )
