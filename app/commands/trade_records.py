"""Commands on trades: load, apply one domain method, save; a concurrency conflict is
reloaded and retried through the one retry policy (``adapters.repository``), so several writers
(executor, position monitor, learning manager) never lose an update and never apply one
twice."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar
from uuid import UUID

from adapters.eventstore import TradecoreEventStore
from adapters.repository import WRITER, Repository, RetryPolicy
from domain.errors import InvalidCommand
from domain.trade import Trade

T = TypeVar("T")


class TradeNotFound(InvalidCommand):
    """No trade has this id."""


class TradeCommands:
    def __init__(self, store: TradecoreEventStore, *, retry: RetryPolicy = WRITER) -> None:
        self.store = store
        self.repository = Repository(store)
        self.retry = retry

    def open(self, trade: Trade) -> UUID:
        """Record a new trade (its Opened event). Raises Conflict if the id is taken,
        StoreUnavailable if the store cannot record it."""
        self.repository.save(trade)
        return trade.id

    def load(self, trade_id: UUID) -> Trade:
        """The trade as committed. Raises TradeNotFound, StoreUnavailable."""
        trade = self.repository.find(Trade, trade_id)
        if trade is None:
            raise TradeNotFound(f"no trade {trade_id}")
        return trade

    def update(self, trade_id: UUID, change: Callable[[Trade], T]) -> T:
        """Apply ``change`` to the latest version of the trade and save it, retrying on a
        concurrent writer's conflict. ``change`` must be a pure function of the trade.
        Raises TradeNotFound, StoreUnavailable (within the policy's bound),
        ConcurrencyExhausted."""

        def attempt() -> T:
            trade = self.load(trade_id)
            result = change(trade)
            self.repository.save(trade)
            return result

        return self.retry.run(attempt, what=f"trade {trade_id}")
