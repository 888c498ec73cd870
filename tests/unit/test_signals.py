"""The rule-based signal source: a signal only on the bar the averages cross."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.signals import MovingAverageCrossover, SignalInputInvalid, evaluate

RULE = MovingAverageCrossover(fast=2, slow=4, min_separation=0.001)
BAR = datetime(2026, 1, 1, tzinfo=UTC)


def test_fast_average_crossing_above_the_slow_one_gives_a_long_signal() -> None:
    signal = evaluate(RULE, "BTC/USDT:USDT", [100, 100, 100, 100, 110], BAR)
    assert signal is not None and signal.side == "long"
    assert "crossed above" in signal.reason


def test_fast_average_crossing_below_gives_a_short_signal() -> None:
    signal = evaluate(RULE, "BTC/USDT:USDT", [100, 100, 100, 100, 90], BAR)
    assert signal is not None and signal.side == "short"


def test_no_cross_on_this_bar_gives_no_signal() -> None:
    # The fast average was already above the slow one on the previous bar.
    assert evaluate(RULE, "X/USDT:USDT", [100, 100, 100, 110, 120], BAR) is None


def test_a_cross_within_the_minimum_separation_is_noise() -> None:
    assert evaluate(RULE, "X/USDT:USDT", [100, 100, 100, 100, 100.1], BAR) is None


def test_confidence_grows_with_the_separation_and_stays_between_half_and_one() -> None:
    weak = evaluate(RULE, "X/USDT:USDT", [100, 100, 100, 100, 100.5], BAR)
    strong = evaluate(RULE, "X/USDT:USDT", [100, 100, 100, 100, 130], BAR)
    assert weak is not None and strong is not None
    assert 0.5 <= weak.confidence < strong.confidence <= 1.0


def test_the_key_is_stable_for_a_bar_and_differs_for_another() -> None:
    closes = [100, 100, 100, 100, 110]
    first = evaluate(RULE, "X/USDT:USDT", closes, BAR)
    again = evaluate(RULE, "X/USDT:USDT", closes, BAR)
    later = evaluate(RULE, "X/USDT:USDT", closes, BAR + timedelta(minutes=1))
    assert first is not None and again is not None and later is not None
    assert first.key == again.key != later.key


@pytest.mark.parametrize(
    ("closes", "when", "message"),
    [
        ([100, 100, 100], BAR, "need 5 closes"),
        ([100, 100, float("nan"), 100, 110], BAR, "finite and positive"),
        ([100, 100, 0, 100, 110], BAR, "finite and positive"),
        ([100, 100, -1, 100, 110], BAR, "finite and positive"),
        ([100, 100, 100, 100, 110], datetime(2026, 1, 1), "timezone"),
    ],
)
def test_invalid_input_is_refused_never_a_signal(
    closes: list[float], when: datetime, message: str
) -> None:
    with pytest.raises(SignalInputInvalid, match=message):
        evaluate(RULE, "X/USDT:USDT", closes, when)


@pytest.mark.parametrize(
    ("fast", "slow", "separation"), [(0, 4, 0.001), (4, 4, 0.001), (2, 4, -0.1)]
)
def test_a_rule_with_impossible_parameters_is_refused(
    fast: int, slow: int, separation: float
) -> None:
    with pytest.raises(SignalInputInvalid):
        MovingAverageCrossover(fast=fast, slow=slow, min_separation=separation)


@given(
    st.lists(
        st.floats(min_value=1e-6, max_value=1e9, allow_nan=False, allow_infinity=False),
        min_size=5,
        max_size=60,
    )
)
def test_any_positive_series_gives_nothing_or_a_signal_in_range(closes: list[float]) -> None:
    signal = evaluate(RULE, "X/USDT:USDT", closes, BAR)
    assert signal is None or 0.5 <= signal.confidence <= 1.0
