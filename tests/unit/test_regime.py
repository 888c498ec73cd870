"""The volatility regime detector: known paths give known regimes; no flapping."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.regime import Regime, RegimeInputInvalid, RegimeThresholds, classify, detect

T = RegimeThresholds()


def path(sigma: float, *, drift: float = 0.0, points: int = 40, seed: int = 7) -> list[float]:
    rng = np.random.default_rng(seed)
    returns = rng.normal(drift, sigma, points - 1)
    return list(60_000 * np.exp(np.concatenate([[0.0], np.cumsum(returns)])))


def test_a_calm_path_is_low() -> None:
    assert detect(path(0.0005), None, T)[0] is Regime.LOW


def test_a_steady_trend_with_little_noise_is_low_the_trend_is_not_volatility() -> None:
    assert detect(path(0.0005, drift=0.003), None, T)[0] is Regime.LOW


def test_a_moderately_noisy_path_is_normal() -> None:
    assert detect(path(0.005), None, T)[0] is Regime.NORMAL


def test_a_crash_is_high() -> None:
    calm = path(0.0005, points=15)
    crash = calm + [calm[-1] * f for f in (0.95, 0.88, 0.80, 0.83, 0.76)]
    regime, volatility = detect(crash, Regime.LOW, T)
    assert regime is Regime.HIGH and volatility > T.high


def test_volatility_wandering_around_the_high_threshold_does_not_flap() -> None:
    regimes, previous = [], Regime.NORMAL
    for figure in [T.high * f for f in (1.05, 0.95, 1.04, 0.9, 1.02, 0.85)]:
        previous = classify(figure, previous, T)
        regimes.append(previous)
    assert regimes == [Regime.HIGH] * 6
    assert classify(T.high * 0.5, Regime.HIGH, T) is Regime.NORMAL  # a clear drop leaves
    assert classify(T.low * 0.5, Regime.HIGH, T) is Regime.LOW


def test_volatility_wandering_around_the_low_threshold_does_not_flap() -> None:
    regimes, previous = [], Regime.NORMAL
    for figure in [T.low * f for f in (0.95, 0.9, 1.05, 0.85, 0.99)]:
        previous = classify(figure, previous, T)
        regimes.append(previous)
    assert set(regimes) == {Regime.NORMAL}  # never far enough below to relax into LOW
    assert classify(T.low * 0.5, Regime.NORMAL, T) is Regime.LOW
    assert classify(T.low * 1.01, Regime.LOW, T) is Regime.NORMAL  # caution comes at once


@pytest.mark.parametrize(
    ("prices", "message"),
    [
        ([1.0, 2.0, 3.0], "too few points"),
        ([1.0, 2.0, math.nan, 3.0, 4.0], "finite and positive"),
        ([1.0, 2.0, math.inf, 3.0, 4.0], "finite and positive"),
        ([1.0, 2.0, 0.0, 3.0, 4.0], "finite and positive"),
        ([1.0, 2.0, -3.0, 3.0, 4.0], "finite and positive"),
    ],
)
def test_invalid_prices_are_an_error_never_a_regime(prices: list[float], message: str) -> None:
    with pytest.raises(RegimeInputInvalid, match=message):
        detect(prices, None, T)


@pytest.mark.parametrize(
    "kwargs",
    [{"min_points": 1}, {"window": 3}, {"low": 0.02}, {"low": 0}, {"hysteresis": 1.0}],
)
def test_impossible_thresholds_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(RegimeInputInvalid):
        RegimeThresholds(**kwargs)  # type: ignore[arg-type]


def test_a_negative_or_nan_volatility_is_refused() -> None:
    for figure in (-0.1, math.nan):
        with pytest.raises(RegimeInputInvalid):
            classify(figure, None, T)


@given(
    st.lists(st.floats(min_value=1e-6, max_value=1e9), min_size=5, max_size=60),
    st.sampled_from([None, *Regime]),
)
def test_any_positive_prices_give_a_regime_and_a_finite_volatility(
    prices: list[float], previous: Regime | None
) -> None:
    regime, volatility = detect(prices, previous, T)
    assert regime in Regime and math.isfinite(volatility) and volatility >= 0
