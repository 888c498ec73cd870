"""The policy and emergency view: what the gate, the CLI and the dashboards read.

It is a projection of the Policy and Emergency aggregates' events. Readers that must act on
it (the gate) also compare its tracked position with the log's head, so a stale row is
never mistaken for the current policy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from eventsourcing.domain import DomainEventProtocol
from sqlalchemy import Connection, Table, func, select, update

from domain.emergency import Emergency
from domain.policy import Policy
from domain.pretrade import (
    DEFAULT_PRETRADE,
    PRETRADE_FIELDS,
    LossStop,
    PreTradeLimits,
    PreTradeState,
)
from projections.runner import Projection
from projections.tables import emergency_view, policy_view, projection_tracking

POLICY_CHANGES = (
    Policy.NewTradesAllowanceChanged,
    Policy.LimitsUpdated,
    Policy.PreTradeLimitsUpdated,
    Policy.LossStreakStopped,
    Policy.LossStreakCleared,
    Policy.EmergencyModeEntered,
    Policy.EmergencyModeLeft,
)


class PolicyProjection(Projection):
    default_name = "policy_view"
    handles = (
        Policy.Created,
        Policy.NewTradesAllowanceChanged,
        Policy.LimitsUpdated,
        Policy.PreTradeLimitsUpdated,
        Policy.LossStreakStopped,
        Policy.LossStreakCleared,
        Policy.EmergencyModeEntered,
        Policy.EmergencyModeLeft,
        Emergency.Created,
        Emergency.Activated,
        Emergency.Reset,
        Emergency.FlattenAttempted,
        Emergency.AccountFlat,
        Emergency.FlattenIncomplete,
        Emergency.Triggered,
    )

    @classmethod
    def default_tables(cls) -> dict[str, Table]:
        return {"policy": policy_view, "emergency": emergency_view}

    def apply_batch(
        self, conn: Connection, events: Sequence[tuple[int, DomainEventProtocol[UUID]]]
    ) -> None:
        # A run of policy changes collapses into one UPDATE per policy (each change sets
        # plain values, so the last one of each column wins, as applying them in turn would).
        pending: dict[UUID, dict[str, Any]] = {}
        for position, event in events:
            if isinstance(event, POLICY_CHANGES):
                pending.setdefault(event.originator_id, {}).update(_policy_values(event))
            else:
                self._flush(conn, pending)
                self.apply(conn, event, position)
        self._flush(conn, pending)

    def _flush(self, conn: Connection, pending: dict[UUID, dict[str, Any]]) -> None:
        policy = self.tables["policy"]
        for policy_id, values in pending.items():
            conn.execute(update(policy).where(policy.c.policy_id == policy_id).values(**values))
        pending.clear()

    def apply(self, conn: Connection, event: DomainEventProtocol[UUID], position: int) -> None:
        e: Any = event
        policy, emergency = self.tables["policy"], self.tables["emergency"]
        version = e.originator_version
        if isinstance(e, Policy.Created):
            conn.execute(
                policy.insert().values(
                    policy_id=e.originator_id,
                    emergency_mode=False,
                    allow_new_trades=e.allow_new_trades,
                    max_leverage=e.max_leverage,
                    max_position_notional=e.max_position_notional,
                    drawdown_soft_threshold=e.drawdown_soft_threshold,
                    drawdown_hard_threshold=e.drawdown_hard_threshold,
                    version=version,
                    updated_by=e.actor,
                    updated_at=e.timestamp,
                    # Created carries no controls: a new policy has the defaults.
                    **DEFAULT_PRETRADE.as_dict(),
                )
            )
        elif isinstance(e, Emergency.Created):
            conn.execute(
                emergency.insert().values(
                    emergency_id=e.originator_id,
                    active=False,
                    activation_number=0,
                    version=version,
                )
            )
        elif isinstance(e, Emergency.Event):
            self._apply_emergency(conn, emergency, e, version)
        else:
            self._flush(conn, {e.originator_id: _policy_values(e)})

    @staticmethod
    def _apply_emergency(conn: Connection, emergency: Table, e: Any, version: int) -> None:
        if isinstance(e, Emergency.Activated):
            values: dict[str, Any] = {
                "active": True,
                "activation_number": e.activation_number,
                "reason": e.reason,
                "source": e.source,
                "activated_at": e.timestamp,
                "activated_by": e.actor,
                "reset_at": None,
                "reset_by": None,
                "reset_reason": None,
                "forced_reset": None,
                "flat": None,
                "positions_closed": None,
                "orders_canceled": None,
                "time_to_flat_ms": None,
                "flatten_attempts": 0,
            }
        elif isinstance(e, Emergency.Reset):
            values = {
                "active": False,
                "reset_at": e.timestamp,
                "reset_by": e.actor,
                "reset_reason": e.reason,
                "forced_reset": e.forced,
            }
        elif isinstance(e, Emergency.FlattenAttempted):
            values = {"flatten_attempts": e.attempt}
        elif isinstance(e, Emergency.AccountFlat):
            values = {
                "flat": True,
                # The first time to flat of the activation stays; later re-flattens keep it.
                "time_to_flat_ms": func.coalesce(emergency.c.time_to_flat_ms, e.time_to_flat_ms),
                "positions_closed": func.greatest(
                    func.coalesce(emergency.c.positions_closed, 0), e.positions_closed
                ),
                "orders_canceled": func.greatest(
                    func.coalesce(emergency.c.orders_canceled, 0), e.orders_canceled
                ),
            }
        elif isinstance(e, Emergency.FlattenIncomplete):
            values = {"flat": False}
        elif isinstance(e, Emergency.Triggered):
            values = {
                "positions_closed": func.greatest(
                    func.coalesce(emergency.c.positions_closed, 0), e.positions_closed
                ),
                "orders_canceled": func.greatest(
                    func.coalesce(emergency.c.orders_canceled, 0), e.orders_canceled
                ),
            }
        else:
            values = {}
        conn.execute(
            update(emergency)
            .where(emergency.c.emergency_id == e.originator_id)
            .values(version=version, **values)
        )


def _policy_values(e: Any) -> dict[str, Any]:
    """The columns a policy change (any Policy event but Created) sets."""
    values: dict[str, Any] = {
        "version": e.originator_version,
        "updated_at": e.timestamp,
        "updated_by": e.actor,
    }
    if isinstance(e, Policy.NewTradesAllowanceChanged):
        values["allow_new_trades"] = e.allowed
    elif isinstance(e, Policy.LimitsUpdated):
        values.update(
            max_leverage=e.max_leverage,
            max_position_notional=e.max_position_notional,
            drawdown_soft_threshold=e.drawdown_soft_threshold,
            drawdown_hard_threshold=e.drawdown_hard_threshold,
        )
    elif isinstance(e, Policy.PreTradeLimitsUpdated):
        values.update({name: getattr(e, name) for name in PRETRADE_FIELDS})
    elif isinstance(e, Policy.LossStreakStopped):
        values.update(
            loss_stop_until=e.until, loss_count_from=e.last_loss_at, loss_stop_reason=e.reason
        )
    elif isinstance(e, Policy.LossStreakCleared):
        values.update(loss_stop_until=None, loss_count_from=e.timestamp, loss_stop_reason=None)
    elif isinstance(e, Policy.EmergencyModeEntered):
        values.update(
            emergency_mode=True,
            allow_new_trades=False,
            emergency_reason=e.emergency_reason,
            emergency_activated_at=e.timestamp,
        )
    elif isinstance(e, Policy.EmergencyModeLeft):
        values.update(emergency_mode=False, emergency_reason=None, emergency_activated_at=None)
    return values


@dataclass(frozen=True)
class PolicyRow:
    emergency_mode: bool
    allow_new_trades: bool
    emergency_reason: str | None
    emergency_activated_at: datetime | None
    max_leverage: Decimal
    max_position_notional: Decimal
    drawdown_soft_threshold: Decimal
    drawdown_hard_threshold: Decimal
    version: int
    updated_by: str
    updated_at: datetime
    price_collar: Decimal
    max_order_quantity: Decimal
    max_order_notional: Decimal
    max_orders_per_second: int
    duplicate_window_s: Decimal
    loss_streak_losses: int
    loss_streak_window_s: int
    loss_streak_cooldown_s: int
    loss_stop_until: datetime | None
    loss_count_from: datetime | None
    loss_stop_reason: str | None

    @property
    def pretrade_state(self) -> PreTradeState:
        """The pre-trade controls and loss-streak stop of this row."""
        return PreTradeState(
            PreTradeLimits(*(getattr(self, name) for name in PRETRADE_FIELDS)),
            LossStop(self.loss_stop_until, self.loss_count_from, self.loss_stop_reason),
        )


@dataclass(frozen=True)
class EmergencyRow:
    active: bool
    activation_number: int
    reason: str | None
    source: str | None
    activated_at: datetime | None
    activated_by: str | None
    reset_at: datetime | None
    reset_by: str | None
    reset_reason: str | None
    version: int
    flat: bool | None
    positions_closed: int | None
    orders_canceled: int | None
    time_to_flat_ms: int | None
    flatten_attempts: int | None
    forced_reset: bool | None


@dataclass(frozen=True)
class PolicySnapshot:
    """The view's rows and the position they reflect, read in one transaction."""

    policy: PolicyRow | None
    emergency: EmergencyRow | None
    position: int
    source: str = "view"  # or "aggregate": the rows as the aggregates have them


def read_policy_snapshot(conn: Connection) -> PolicySnapshot:
    """Read both rows and the view's tracked position (call inside one transaction)."""
    p = conn.execute(select(*[c for c in policy_view.c if c.name != "policy_id"])).first()
    e = conn.execute(select(*[c for c in emergency_view.c if c.name != "emergency_id"])).first()
    position = conn.execute(
        select(projection_tracking.c.position).where(
            projection_tracking.c.name == PolicyProjection.default_name
        )
    ).scalar()
    return PolicySnapshot(
        policy=PolicyRow(**p._asdict()) if p else None,
        emergency=EmergencyRow(**e._asdict()) if e else None,
        position=int(position or 0),
    )
