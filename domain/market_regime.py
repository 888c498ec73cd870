"""A symbol's volatility regime as an aggregate: each change is a ``RegimeChanged`` event
(symbol, old, new, the volatility figure), and the current regime is what the detector's
hysteresis starts from."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.domain import event

from domain.base import TradecoreAggregate, require_aware
from domain.errors import InvalidCommand
from domain.ids import market_regime_id
from domain.validation import symbol_value

REGIMES = ("LOW", "NORMAL", "HIGH")


class MarketRegime(TradecoreAggregate):
    class Created(TradecoreAggregate.Created):
        symbol: str

    class RegimeChanged(TradecoreAggregate.Event):
        symbol: str
        old: str | None
        new: str
        volatility: float

    @staticmethod
    def create_id(*_: Any, symbol: str, **__: Any) -> UUID:
        return market_regime_id(symbol)

    @event(Created)
    def __init__(self, *, symbol: str) -> None:
        self.symbol = symbol
        self.regime: str | None = None
        self.volatility: float | None = None
        self.changed_at: datetime | None = None

    @classmethod
    def start(cls, *, symbol: str, timestamp: datetime) -> MarketRegime:
        return cls._create(
            cls.Created, symbol=symbol_value(symbol), timestamp=require_aware(timestamp)
        )

    def observe(self, *, regime: str, volatility: float, timestamp: datetime) -> bool:
        """Record the regime if it changed; True when it did."""
        if regime not in REGIMES:
            raise InvalidCommand(f"regime must be one of {', '.join(REGIMES)}, got {regime!r}")
        if not (math.isfinite(volatility) and volatility >= 0):
            raise InvalidCommand(f"volatility must be finite and non-negative, got {volatility}")
        if regime == self.regime:
            return False
        self._changed(
            symbol=self.symbol,
            old=self.regime,
            new=regime,
            volatility=volatility,
            timestamp=require_aware(timestamp),
        )
        return True

    @event(RegimeChanged)
    def _changed(
        self, *, symbol: str, old: str | None, new: str, volatility: float, timestamp: datetime
    ) -> None:
        self.regime, self.volatility, self.changed_at = new, volatility, timestamp
