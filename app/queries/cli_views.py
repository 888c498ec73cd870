"""Read-side answers for the CLI (and later the HTTP API): plain dicts from the read models."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from app.bootstrap import Core
from domain.account import Account
from domain.drawdown import BreakerState
from domain.emergency import Emergency
from domain.policy import DEFAULT_LIMITS, Policy
from projections.policy_view import EmergencyRow, PolicyRow, PolicySnapshot, read_policy_snapshot
from projections.tables import worker_status


def current_snapshot(core: Core) -> tuple[PolicySnapshot, int]:
    """The policy and the latch as committed, and the log's head.

    The view and the head are read in one snapshot; when the view is behind the head (no
    worker, or a policy view failing on an event) both rows come from the aggregates
    instead, so the answer is current either way. A read never runs a projection or a
    process manager: one they cannot apply must not break a read. Raises StoreUnavailable.
    """
    connection = core.engine.connect().execution_options(isolation_level="REPEATABLE READ")
    with connection as conn, conn.begin():
        head = core.reader.head(conn)
        snapshot = read_policy_snapshot(conn)
    if snapshot.position >= head:
        return snapshot, head
    policy, emergency = core.commands.load_policy(), core.commands.load_emergency()
    return PolicySnapshot(
        policy=policy_row(policy) if policy else None,
        emergency=emergency_row(emergency) if emergency else None,
        position=head,
        source="aggregate",
    ), head


def policy_row(policy: Policy) -> PolicyRow:
    """The policy view's row as the aggregate has it."""
    limits = policy.limits
    return PolicyRow(
        emergency_mode=policy.emergency_mode,
        allow_new_trades=policy.allow_new_trades,
        emergency_reason=policy.emergency_reason,
        emergency_activated_at=policy.emergency_activated_at,
        max_leverage=limits.max_leverage,
        max_position_notional=limits.max_position_notional,
        drawdown_soft_threshold=limits.drawdown_soft_threshold,
        drawdown_hard_threshold=limits.drawdown_hard_threshold,
        version=policy.version,
        updated_by=policy.updated_by,
        updated_at=policy.updated_at,
        **policy.pretrade.as_dict(),
        loss_stop_until=policy.loss_stop_until,
        loss_count_from=policy.loss_count_from,
        loss_stop_reason=policy.loss_stop_reason,
    )


def emergency_row(e: Emergency) -> EmergencyRow:
    """The emergency view's row as the aggregate has it."""
    return EmergencyRow(
        active=e.active,
        activation_number=e.activation_number,
        reason=e.reason,
        source=e.source,
        activated_at=e.activated_at,
        activated_by=e.activated_by,
        reset_at=e.reset_at,
        reset_by=e.reset_by,
        reset_reason=e.reset_reason,
        version=e.version,
        flat=e.flat,
        positions_closed=e.positions_closed,
        orders_canceled=e.orders_canceled,
        time_to_flat_ms=e.time_to_flat_ms,
        flatten_attempts=e.flatten_attempts,
        forced_reset=e.forced_reset,
    )


def policy_dict(snapshot: PolicySnapshot, head: int) -> dict[str, Any]:
    if snapshot.policy is None:
        raise LookupError("no policy recorded")
    data = asdict(snapshot.policy)
    data["position"] = snapshot.position
    data["fresh"] = snapshot.position >= head
    data["source"] = snapshot.source
    return data


def emergency_dict(snapshot: PolicySnapshot) -> dict[str, Any]:
    if snapshot.emergency is None:
        raise LookupError("no emergency latch recorded")
    e = snapshot.emergency
    return {
        "active": e.active,
        "reason": e.reason,
        "activated_at": e.activated_at,
        "activated_by": e.activated_by,
        "source": e.source,
        "reset_at": e.reset_at,
        "reset_by": e.reset_by,
        "reset_reason": e.reset_reason,
        "activation_number": e.activation_number,
        "forced_reset": e.forced_reset,
        "flat": e.flat,
        "positions_closed": e.positions_closed,
        "orders_canceled": e.orders_canceled,
        "time_to_flat_ms": e.time_to_flat_ms,
        "flatten_attempts": e.flatten_attempts,
        "version": e.version,
    }


def status_dict(core: Core) -> dict[str, Any]:
    """Policy, emergency, gate and every projection's position, head, lag and failure.

    Nothing is caught up: the lag shown is the one the worker left, and the policy shown is
    the committed one (from the aggregates when the view is behind), as the gate says.
    """
    positions = core.runner.positions()
    snapshot, _ = current_snapshot(core)
    decision = core.gate.can_open_new_trades()
    return {
        "store": {
            "database": core.address.display,
            "embedded": core.embedded is not None,
        },
        "gate": {
            "allowed": decision.allowed,
            "code": decision.code,
            "reason": decision.reason,
            "emergency_mode": decision.emergency_mode,
            "policy_version": decision.policy_version,
            "source": decision.source,
        },
        "worker": worker_dict(core),
        "policy": asdict(snapshot.policy) if snapshot.policy else None,
        "emergency": emergency_dict(snapshot) if snapshot.emergency else None,
        "projections": [
            {
                "name": p.name,
                "position": p.position,
                "head": p.head,
                "lag": p.lag,
                "updated_at": p.updated_at,
                "last_error": p.last_error,
                "failing_event_id": p.failing_event_id,
                "failing_topic": p.failing_topic,
                "failing_since": p.failing_since,
            }
            for p in positions
        ],
    }


def projections_dict(core: Core) -> list[dict[str, Any]]:
    """Every consumer's position, the head, lag in events and seconds, errors, replays."""
    return [
        {
            "name": p.name,
            "position": p.position,
            "head": p.head,
            "lag_events": p.lag,
            "lag_seconds": round(p.lag_seconds, 3),
            "last_error": p.last_error,
            "replayed_since_start": p.replayed_since_start,
            "updated_at": p.updated_at,
            "failing_event_id": p.failing_event_id,
            "failing_topic": p.failing_topic,
            "failing_since": p.failing_since,
            "failures": p.failures,
        }
        for p in core.runner.positions()
    ]


def worker_dict(core: Core) -> dict[str, Any] | None:
    """The worker's liveness and its last outage and catch-up, or None if none ever ran."""
    with core.engine.connect() as conn:
        row = conn.execute(select(worker_status)).first()
    if row is None:
        return None
    data = row._asdict()
    data["heartbeat_age_seconds"] = round((core.clock() - row.heartbeat_at).total_seconds(), 3)
    return data


def risk_dict(
    account: Account | None, policy: Policy | None, now: datetime | None
) -> dict[str, Any]:
    """The drawdown breaker as the log has it: figures, thresholds, state, and the reading's
    age at ``now`` (None: not asked)."""
    limits = policy.limits if policy is not None else DEFAULT_LIMITS
    last = account.last_reading_at if account is not None else None
    return {
        "account": account.account if account is not None else None,
        "equity": account.equity if account is not None else None,
        "peak": account.peak if account is not None and account.equity is not None else None,
        "drawdown": account.drawdown if account is not None else Decimal(0),
        "soft_threshold": limits.drawdown_soft_threshold,
        "hard_threshold": limits.drawdown_hard_threshold,
        "state": account.state if account is not None else BreakerState.NORMAL.value,
        "last_reading_at": last,
        "reading_age_seconds": round((now - last).total_seconds(), 3) if last and now else None,
        "last_accepted_at": account.last_accepted_at if account is not None else None,
        "peak_since": account.peak_reset_at if account is not None else None,
        "pending_confirmation": account.pending is not None if account is not None else False,
        # Cash moved in (+) or out (-) of the wallet by every recorded transfer: not a gain or
        # a loss (the peak moved with each one made after it was set).
        "net_transfers": account.net_transfers if account is not None else Decimal(0),
        "last_transfer_at": account.last_transfer_at if account is not None else None,
        "rejected_readings": account.rejected_count if account is not None else 0,
        "version": account.version if account is not None else 0,
    }
