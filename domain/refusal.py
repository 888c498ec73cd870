"""A trade intent the executor refused: recorded, with the gate's code and reason, so an
audit can say what was wanted, when, and why it did not reach the venue.

One aggregate per refusal (it is a fact, not a thing that changes), so refusals from many
threads never contend with each other or with the trades.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from eventsourcing.domain import event

from domain.base import TradecoreAggregate, require_aware, require_text, trace_ids
from domain.validation import evidence_text


class RefusedIntent(TradecoreAggregate):
    class Refused(TradecoreAggregate.Created):
        refusal_id: UUID
        symbol: str
        side: str
        notional: Decimal
        leverage: Decimal
        confidence: Decimal | None
        code: str
        gate_reason: str
        policy_version: int | None
        actor: str
        reason: str
        correlation_id: UUID | None

    @staticmethod
    def create_id(*_: Any, refusal_id: UUID, **__: Any) -> UUID:
        return refusal_id

    @classmethod
    def record(
        cls,
        *,
        refusal_id: UUID,
        symbol: str,
        side: str,
        notional: Decimal,
        leverage: Decimal,
        confidence: Decimal | None,
        code: str,
        gate_reason: str,
        policy_version: int | None,
        actor: str,
        reason: str,
        timestamp: datetime,
        correlation_id: UUID | None = None,
    ) -> RefusedIntent:
        trace_ids(correlation_id, None)
        return cls(
            refusal_id=refusal_id,
            symbol=require_text(symbol, "symbol"),
            side=side,
            notional=notional,
            leverage=leverage,
            confidence=confidence,
            code=require_text(code, "code"),
            gate_reason=evidence_text(gate_reason),
            policy_version=policy_version,
            actor=require_text(actor, "actor"),
            reason=require_text(reason, "reason"),
            correlation_id=correlation_id,
            timestamp=require_aware(timestamp),
        )

    @event(Refused)
    def __init__(
        self,
        *,
        refusal_id: UUID,
        symbol: str,
        side: str,
        notional: Decimal,
        leverage: Decimal,
        confidence: Decimal | None,
        code: str,
        gate_reason: str,
        policy_version: int | None,
        actor: str,
        reason: str,
        correlation_id: UUID | None,
        timestamp: datetime,
    ) -> None:
        self.symbol, self.side, self.code, self.gate_reason = symbol, side, code, gate_reason
