"""A test-only poison event: one the policy view cannot store, written past the domain's
checks (as an event committed before the input validation existed would be)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from app.bootstrap import Core

# Postgres' numeric cannot hold it: the view's insert fails with NumericValueOutOfRange.
UNSTORABLE = Decimal("1e-999999999")


def poison_policy_view(core: Core) -> int:
    """Commit a ``Policy.LimitsUpdated`` whose leverage no numeric column can hold.
    Returns its notification id."""
    policy = core.commands.load_policy()
    assert policy is not None
    limits = policy.limits
    # The event method itself, not ``update_limits``: the domain's checks are what a poison
    # event from an older release never went through.
    policy._update_limits(
        max_leverage=UNSTORABLE,
        max_position_notional=limits.max_position_notional,
        drawdown_soft_threshold=limits.drawdown_soft_threshold,
        drawdown_hard_threshold=limits.drawdown_hard_threshold,
        actor="test",
        reason="a poison event",
        correlation_id=None,
        causation_id=None,
        timestamp=datetime.now(UTC),
    )
    [recording] = core.store.save(policy)
    assert recording.notification is not None
    return int(recording.notification.id)
