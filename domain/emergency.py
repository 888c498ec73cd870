"""The Emergency aggregate: the emergency-stop latch (P0-02's first half).

Activation latches; only an operator's reset, with a reason, releases it. Activating an
active latch records nothing (idempotent), resetting an inactive one is refused. Each
activation has a number and a derived ``activation_id``: what the flattener (next issue)
derives its client order ids from, so a replayed activation can never double an order.

Activation and reset are only ever saved together with the Policy's change of
``emergency_mode``, in one transaction (``app.services``), so the two cannot disagree.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID, uuid5

from eventsourcing.domain import event

from domain.base import TradecoreAggregate, require_aware, require_text, trace_ids
from domain.errors import InvalidCommand, RefusedBySafetyRule
from domain.ids import EMERGENCY_ID

SOURCES = ("operator", "drawdown", "system")


class EmergencyNotActive(RefusedBySafetyRule):
    """There is no active emergency to reset."""


class Emergency(TradecoreAggregate):
    """One per installation, id :data:`domain.ids.EMERGENCY_ID`."""

    @staticmethod
    def create_id(*_: Any, **__: Any) -> UUID:
        return EMERGENCY_ID

    class Created(TradecoreAggregate.Created):
        pass

    class Activated(TradecoreAggregate.Event):
        activation_number: int
        reason: str
        actor: str
        source: str
        correlation_id: UUID | None
        causation_id: UUID | None

    class Reset(TradecoreAggregate.Event):
        activation_number: int
        reason: str
        actor: str
        correlation_id: UUID | None
        causation_id: UUID | None

    @event(Created)
    def __init__(self, *, timestamp: datetime) -> None:
        self.active = False
        self.activation_number = 0
        self.reason: str | None = None
        self.source: str | None = None
        self.activated_at: datetime | None = None
        self.activated_by: str | None = None
        self.reset_at: datetime | None = None
        self.reset_by: str | None = None
        self.reset_reason: str | None = None

    @property
    def activation_id(self) -> UUID | None:
        """Stable id of the current (or last) activation, None before the first one."""
        if self.activation_number == 0:
            return None
        return activation_id(self.activation_number)

    def activate(
        self,
        *,
        reason: str,
        actor: str,
        source: str,
        timestamp: datetime,
        correlation_id: UUID | None = None,
        causation_id: UUID | None = None,
    ) -> bool:
        """Latch the emergency stop. Returns False, recording nothing, if already latched."""
        reason, actor = require_text(reason, "reason"), require_text(actor, "actor")
        if source not in SOURCES:
            raise InvalidCommand(f"source must be one of {', '.join(SOURCES)}, got {source!r}")
        trace_ids(correlation_id, causation_id)
        if self.active:
            return False
        self._activate(
            activation_number=self.activation_number + 1,
            reason=reason,
            actor=actor,
            source=source,
            correlation_id=correlation_id,
            causation_id=causation_id,
            timestamp=require_aware(timestamp),
        )
        return True

    @event(Activated)
    def _activate(
        self,
        *,
        activation_number: int,
        reason: str,
        actor: str,
        source: str,
        correlation_id: UUID | None,
        causation_id: UUID | None,
        timestamp: datetime,
    ) -> None:
        self.active = True
        self.activation_number = activation_number
        self.reason, self.source = reason, source
        self.activated_at, self.activated_by = timestamp, actor
        self.reset_at = self.reset_by = self.reset_reason = None

    def reset(
        self,
        *,
        reason: str,
        actor: str,
        timestamp: datetime,
        correlation_id: UUID | None = None,
        causation_id: UUID | None = None,
    ) -> None:
        """Release the latch. Raises EmergencyNotActive if it is not latched."""
        reason, actor = require_text(reason, "reason"), require_text(actor, "actor")
        trace_ids(correlation_id, causation_id)
        if not self.active:
            raise EmergencyNotActive("the emergency stop is not active; nothing to reset")
        self._reset(
            activation_number=self.activation_number,
            reason=reason,
            actor=actor,
            correlation_id=correlation_id,
            causation_id=causation_id,
            timestamp=require_aware(timestamp),
        )

    @event(Reset)
    def _reset(
        self,
        *,
        activation_number: int,
        reason: str,
        actor: str,
        correlation_id: UUID | None,
        causation_id: UUID | None,
        timestamp: datetime,
    ) -> None:
        self.active = False
        self.reset_at, self.reset_by, self.reset_reason = timestamp, actor, reason


def activation_id(activation_number: int) -> UUID:
    """The id of activation number ``activation_number`` (1-based), stable across replays."""
    return uuid5(EMERGENCY_ID, f"activation/{activation_number}")
