"""P0-05 in the pure domain: for every Q-table, state and policy, the sizing stays inside the
caps; HIGH and untrained gives the fallback; learning moves values the documented way."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from decimal import Decimal
from uuid import uuid4

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.sizing import (
    ACTIONS,
    ALPHA,
    FALLBACK,
    HIGH_VOL_MAX_LEVERAGE,
    NEUTRAL,
    REGIMES,
    SizingInputInvalid,
    SizingState,
    decide,
    reward,
)
from domain.sizing_agent import SizingAgent

T0 = datetime(2026, 1, 1, tzinfo=UTC)

states = st.builds(
    SizingState,
    st.integers(min_value=0, max_value=3),
    st.sampled_from(["loss", "flat", "win"]),
    st.sampled_from(REGIMES),
)
q_values = st.lists(
    st.floats(min_value=-10, max_value=10) | st.sampled_from([math.nan, math.inf, -math.inf]),
    min_size=16,
    max_size=16,
)
money = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("1e9"), places=2)
leverages = st.decimals(min_value=Decimal("0.1"), max_value=Decimal(125), places=1)


@given(states, q_values, money, leverages, money)
def test_no_decision_exceeds_the_caps_whatever_the_q_values(
    state: SizingState, row: list[float], base: Decimal, max_lev: Decimal, max_notional: Decimal
) -> None:
    table = {state.key: row}
    if not all(math.isfinite(q) for q in row):
        with pytest.raises(SizingInputInvalid):
            decide(
                table, state, base_notional=base, max_leverage=max_lev, max_notional=max_notional
            )
        return
    d = decide(table, state, base_notional=base, max_leverage=max_lev, max_notional=max_notional)
    assert d.leverage <= max_lev and d.notional <= max_notional
    if state.regime == "HIGH":
        assert d.leverage <= HIGH_VOL_MAX_LEVERAGE


@given(
    st.integers(min_value=0, max_value=3),
    st.sampled_from(["loss", "flat", "win"]),
    st.lists(st.floats(min_value=-1e-7, max_value=1e-7), min_size=16, max_size=16),
    money,
    leverages,
)
def test_high_volatility_and_an_untrained_state_give_exactly_the_fallback(
    bucket: int, pnl: str, tiny: list[float], base: Decimal, max_lev: Decimal
) -> None:
    state = SizingState(bucket, pnl, "HIGH")
    for table in ({}, {state.key: tiny}):
        d = decide(
            table, state, base_notional=base, max_leverage=max_lev, max_notional=Decimal("1e12")
        )
        assert d.fallback and not d.trained
        assert d.size_multiplier == Decimal("0.3") == FALLBACK[0]
        # 1.0, unless the policy allows less leverage than that (the caps come last).
        assert d.leverage == min(Decimal("1.0"), max_lev)
        assert d.notional == base * Decimal("0.3")


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_a_q_table_with_nan_or_infinity_is_refused(bad: float) -> None:
    state = SizingState(2, "flat", "NORMAL")
    row = [0.0] * len(ACTIONS)
    row[3] = bad
    with pytest.raises(SizingInputInvalid, match="NaN or infinity"):
        decide(
            {state.key: row},
            state,
            base_notional=Decimal(100),
            max_leverage=Decimal(5),
            max_notional=Decimal(1000),
        )


def test_an_untrained_state_outside_high_takes_the_neutral_action() -> None:
    state = SizingState(1, "win", "LOW")
    d = decide(
        {}, state, base_notional=Decimal(100), max_leverage=Decimal(10), max_notional=Decimal(10**6)
    )
    assert (d.size_multiplier, d.leverage) == NEUTRAL and not d.fallback


def test_a_trained_state_takes_its_best_action_and_names_the_caps_it_hit() -> None:
    state = SizingState(3, "win", "HIGH")
    row = [0.0] * len(ACTIONS)
    best = ACTIONS.index((Decimal("1.5"), Decimal("5.0")))
    row[best] = 0.4
    d = decide(
        {state.key: row},
        state,
        base_notional=Decimal(1000),
        max_leverage=Decimal("1.5"),
        max_notional=Decimal(1200),
    )
    assert d.action_index == best and d.trained and not d.fallback
    assert (d.leverage, d.notional) == (Decimal("1.5"), Decimal(1200))
    assert d.caps_applied == (
        "high_volatility_leverage",
        "policy_max_leverage",
        "policy_max_position_notional",
    )


def test_confidence_and_pnl_map_to_buckets() -> None:
    assert (
        SizingState.of(confidence=0.55, recent_pnl=Decimal(-3), regime="LOW").key == "c0|loss|LOW"
    )
    assert (
        SizingState.of(confidence=0.75, recent_pnl=Decimal(0), regime="HIGH").key == "c2|flat|HIGH"
    )
    assert (
        SizingState.of(confidence=0.95, recent_pnl=Decimal(1), regime="NORMAL").key
        == "c3|win|NORMAL"
    )
    with pytest.raises(SizingInputInvalid):
        SizingState.of(confidence=1.5, recent_pnl=Decimal(0), regime="LOW")


def test_wins_raise_and_losses_lower_the_value_of_the_action_taken() -> None:
    agent = SizingAgent.new(timestamp=T0)
    key, action = "c2|flat|NORMAL", 5
    agent.learn(
        trade_id=uuid4(),
        state_key=key,
        action_index=action,
        reward=reward(Decimal(50), Decimal(1000)),
        timestamp=T0,
    )
    after_win = agent.table[key][action]
    agent.learn(
        trade_id=uuid4(),
        state_key=key,
        action_index=action,
        reward=reward(Decimal(-200), Decimal(1000)),
        timestamp=T0,
    )
    after_loss = agent.table[key][action]
    assert after_win == pytest.approx(ALPHA * 0.05)
    assert after_loss == pytest.approx(after_win + ALPHA * (-0.2 - after_win))
    assert after_loss < 0 < after_win
    assert all(q == 0 for i, q in enumerate(agent.table[key]) if i != action)


def test_a_trade_teaches_the_table_once() -> None:
    agent = SizingAgent.new(timestamp=T0)
    trade = uuid4()
    assert agent.learn(trade_id=trade, state_key="k", action_index=0, reward=0.5, timestamp=T0)
    assert not agent.learn(trade_id=trade, state_key="k", action_index=0, reward=0.5, timestamp=T0)
    assert len(agent.pending_events) == 2  # created + one lesson


def test_the_reward_is_clipped_and_needs_exposure() -> None:
    assert reward(Decimal(5000), Decimal(1000)) == 1.0
    assert reward(Decimal(-5000), Decimal(1000)) == -1.0
    with pytest.raises(SizingInputInvalid):
        reward(Decimal(1), Decimal(0))
