"""The Policy aggregate's rules, without any I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.drawdown import (
    DEFAULT_GLITCH_BOUND,
    DEFAULT_HYSTERESIS,
    BreakerState,
    Thresholds,
    drawdown,
    transition,
)
from domain.errors import InvalidCommand
from domain.policy import (
    DEFAULT_LIMITS,
    NewTradesRefusedDuringEmergency,
    Policy,
    PolicyError,
    RiskLimits,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def new_policy() -> Policy:
    return Policy.create(actor="tester", reason="test", timestamp=T0)


def test_new_policy_has_default_limits_and_new_trades_off_until_allowed() -> None:
    policy = new_policy()
    assert not policy.emergency_mode
    assert not policy.allow_new_trades
    assert policy.limits == DEFAULT_LIMITS
    assert policy.limits.drawdown_soft_threshold == Decimal("-0.05")
    assert policy.limits.drawdown_hard_threshold == Decimal("-0.10")


def test_policy_has_one_well_known_id() -> None:
    assert new_policy().id == new_policy().id


def test_event_timestamps_come_from_the_caller() -> None:
    policy = new_policy()
    later = T0 + timedelta(hours=1)
    policy.update_limits(actor="a", reason="r", timestamp=later, max_leverage="2")
    events = policy.collect_events()
    assert [e.timestamp for e in events] == [T0, later]
    assert policy.updated_at == later


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("drawdown_hard_threshold", "0.2", "between -1 and 0"),
        ("drawdown_hard_threshold", "-1", "between -1 and 0"),
        ("drawdown_soft_threshold", "0", "between -1 and 0"),
        ("drawdown_hard_threshold", "-0.05", "must be below"),
        ("drawdown_hard_threshold", "-0.01", "must be below"),
        ("max_leverage", "0", "max_leverage must be above 0"),
        ("max_leverage", "-3", "max_leverage must be above 0"),
        ("max_leverage", "1e400", "max_leverage is out of range"),
        ("max_position_notional", "0", "max_position_notional must be above 0"),
        ("max_position_notional", "1e30", "max_position_notional is out of range"),
        ("max_leverage", "abc", "max_leverage is not a number"),
        ("max_leverage", "NaN", "finite"),
        ("max_position_notional", "Infinity", "finite"),
    ],
)
def test_invalid_limits_are_refused_and_nothing_is_recorded(
    field: str, value: str, message: str
) -> None:
    policy = new_policy()
    policy.collect_events()
    with pytest.raises(InvalidCommand, match=message):
        policy.update_limits(actor="a", reason="r", timestamp=T0, **{field: value})
    assert policy.collect_events() == []
    assert policy.limits == DEFAULT_LIMITS


@pytest.mark.parametrize(
    ("actor", "reason"), [("", "why"), ("who", ""), ("  ", "why"), ("who", "   ")]
)
def test_empty_actor_or_reason_is_refused(actor: str, reason: str) -> None:
    policy = new_policy()
    with pytest.raises(InvalidCommand, match="must not be empty"):
        policy.set_allow_new_trades(False, actor=actor, reason=reason, timestamp=T0)
    with pytest.raises(InvalidCommand, match="must not be empty"):
        policy.update_limits(actor=actor, reason=reason, timestamp=T0, max_leverage="2")


def test_floats_are_refused_for_money() -> None:
    with pytest.raises(InvalidCommand, match="float"):
        RiskLimits.validated(
            max_leverage=2.5,  # type: ignore[arg-type]
            max_position_notional="1",
            drawdown_soft_threshold="-0.05",
            drawdown_hard_threshold="-0.1",
        )


def test_naive_timestamps_are_refused() -> None:
    with pytest.raises(InvalidCommand, match="timezone"):
        Policy.create(actor="a", reason="r", timestamp=datetime(2026, 1, 1))


def test_unchanged_values_record_nothing() -> None:
    policy = new_policy()
    policy.collect_events()
    assert not policy.set_allow_new_trades(False, actor="a", reason="r", timestamp=T0)
    assert not policy.update_limits(actor="a", reason="r", timestamp=T0, max_leverage="5")
    assert policy.collect_events() == []


def test_emergency_mode_stops_new_trades_and_refuses_reallowing_them() -> None:
    policy = new_policy()
    policy.enter_emergency(
        emergency_reason="drill", actor="a", correlation_id=None, causation_id=None, timestamp=T0
    )
    assert policy.emergency_mode and not policy.allow_new_trades
    assert policy.emergency_reason == "drill" and policy.emergency_activated_at == T0
    with pytest.raises(NewTradesRefusedDuringEmergency):
        policy.set_allow_new_trades(True, actor="a", reason="r", timestamp=T0)


def test_leaving_emergency_does_not_reallow_new_trades() -> None:
    policy = new_policy()
    policy.enter_emergency(
        emergency_reason="drill", actor="a", correlation_id=None, causation_id=None, timestamp=T0
    )
    policy.leave_emergency(
        reason="ok", actor="a", correlation_id=None, causation_id=None, timestamp=T0
    )
    assert not policy.emergency_mode
    assert not policy.allow_new_trades
    assert policy.emergency_reason is None
    assert policy.set_allow_new_trades(True, actor="a", reason="resume", timestamp=T0)
    assert policy.allow_new_trades


thresholds = st.decimals(min_value=Decimal("-0.99"), max_value=Decimal("-0.01"), places=4)


@given(soft=thresholds, hard=thresholds)
def test_accepted_thresholds_always_have_hard_below_soft(soft: Decimal, hard: Decimal) -> None:
    try:
        limits = RiskLimits.validated(
            max_leverage="1",
            max_position_notional="1",
            drawdown_soft_threshold=soft,
            drawdown_hard_threshold=hard,
        )
    except PolicyError:
        assert hard >= soft or soft + DEFAULT_HYSTERESIS >= 0
    else:
        assert Decimal(-1) < limits.drawdown_hard_threshold < limits.drawdown_soft_threshold < 0


# -- thresholds the drawdown breaker can evaluate ----------------------------------------------


def test_a_soft_threshold_inside_the_hysteresis_is_refused_naming_the_constraint() -> None:
    policy = new_policy()
    policy.collect_events()
    with pytest.raises(PolicyError, match=r"soft threshold plus the hysteresis must stay below 0"):
        policy.update_limits(
            actor="a",
            reason="r",
            timestamp=T0,
            drawdown_soft_threshold="-0.005",
            drawdown_hard_threshold="-0.01",
        )
    assert policy.collect_events() == []
    assert policy.limits == DEFAULT_LIMITS


def test_the_configured_hysteresis_is_the_one_in_force() -> None:
    policy = new_policy()
    with pytest.raises(PolicyError, match=r"hysteresis 0\.06"):
        policy.update_limits(
            actor="a", reason="r", timestamp=T0, max_leverage="2", hysteresis=Decimal("0.06")
        )
    assert policy.update_limits(
        actor="a",
        reason="r",
        timestamp=T0,
        drawdown_soft_threshold="-0.005",
        drawdown_hard_threshold="-0.01",
        hysteresis=Decimal("0.001"),
    )


@given(
    soft=thresholds,
    hard=thresholds,
    hysteresis=st.decimals(min_value=Decimal(0), max_value=Decimal("0.2"), places=4),
    equity=st.decimals(min_value=Decimal(0), max_value=Decimal(10**6), places=2),
)
def test_every_accepted_policy_is_one_the_breaker_can_evaluate(
    soft: Decimal, hard: Decimal, hysteresis: Decimal, equity: Decimal
) -> None:
    try:
        limits = RiskLimits.validated(
            max_leverage="1",
            max_position_notional="1",
            drawdown_soft_threshold=soft,
            drawdown_hard_threshold=hard,
            hysteresis=hysteresis,
        )
    except PolicyError:
        return
    rule = Thresholds(
        soft=limits.drawdown_soft_threshold,
        hard=limits.drawdown_hard_threshold,
        hysteresis=hysteresis,
        glitch_bound=DEFAULT_GLITCH_BOUND,
    )
    for state in BreakerState:
        transition(state, drawdown(equity, Decimal(10**5)), rule, emergency_active=False)
