"""Every sizing decision, recorded: why a position had the size it had (P0-05).

One aggregate per decision, its id derived from the id of the trade it sized
(:func:`decision_id_for`), so the trade and the decision find each other and concurrent
decisions never contend. Each records the confidence it was sized on and the model (name and
version) that produced it; ``model`` None means no model did (an operator's intent).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid5

from eventsourcing.domain import event

from domain.base import TradecoreAggregate, require_aware, require_text
from domain.errors import InvalidCommand
from domain.sizing import SizingDecision


def decision_id_for(trade_id: UUID) -> UUID:
    """The id of the sizing decision of the trade ``trade_id``."""
    return uuid5(trade_id, "sizing-decision")


class SizingRecord(TradecoreAggregate):
    class SizingDecided(TradecoreAggregate.Created):
        decision_id: UUID
        symbol: str
        state: dict[str, Any]
        regime_known: bool
        regime_note: str | None
        volatility: float | None
        action_index: int | None
        size_multiplier: Decimal
        leverage: Decimal
        base_notional: Decimal
        notional: Decimal
        q_values: list[float]
        trained: bool
        fallback: bool
        caps_applied: list[str]
        # Version 2: the confidence the state was built from and the model behind it.
        class_version = 2
        confidence: float | None
        model: str | None
        model_version: int | None

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            # Decisions recorded before version 2: which model (if any) is unknown.
            state.update(confidence=None, model=None, model_version=None)

    @staticmethod
    def create_id(*_: Any, decision_id: UUID, **__: Any) -> UUID:
        return decision_id

    @classmethod
    def record(
        cls,
        *,
        decision_id: UUID,
        symbol: str,
        decision: SizingDecision,
        base_notional: Decimal,
        regime_known: bool,
        regime_note: str | None,
        volatility: float | None,
        timestamp: datetime,
        confidence: float | None = None,
        model: str | None = None,
        model_version: int | None = None,
    ) -> SizingRecord:
        """``confidence``: what the intent carried (None: none, sized as no opinion);
        ``model``/``model_version``: the model that produced it. Raises InvalidCommand when a
        version is given without a model."""
        if model_version is not None and model is None:
            raise InvalidCommand("a model version needs the model's name")
        state = decision.state
        return cls(
            decision_id=decision_id,
            symbol=symbol,
            state={
                "confidence_bucket": state.confidence_bucket,
                "pnl_bucket": state.pnl_bucket,
                "regime": state.regime,
                "key": state.key,
            },
            regime_known=regime_known,
            regime_note=regime_note,
            volatility=volatility,
            action_index=decision.action_index,
            size_multiplier=decision.size_multiplier,
            leverage=decision.leverage,
            base_notional=base_notional,
            notional=decision.notional,
            q_values=list(decision.q_values),
            trained=decision.trained,
            fallback=decision.fallback,
            caps_applied=list(decision.caps_applied),
            confidence=confidence,
            model=None if model is None else require_text(model, "model"),
            model_version=model_version,
            timestamp=require_aware(timestamp),
        )

    @event(SizingDecided)
    def __init__(
        self,
        *,
        decision_id: UUID,
        symbol: str,
        state: dict[str, Any],
        regime_known: bool,
        regime_note: str | None,
        volatility: float | None,
        action_index: int | None,
        size_multiplier: Decimal,
        leverage: Decimal,
        base_notional: Decimal,
        notional: Decimal,
        q_values: list[float],
        trained: bool,
        fallback: bool,
        caps_applied: list[str],
        confidence: float | None,
        model: str | None,
        model_version: int | None,
        timestamp: datetime,
    ) -> None:
        self.symbol, self.state, self.fallback = symbol, state, fallback
        self.size_multiplier, self.leverage, self.notional = size_multiplier, leverage, notional
        self.caps_applied = caps_applied
        self.confidence, self.model, self.model_version = confidence, model, model_version
