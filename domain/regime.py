"""The volatility regime detector (P0-05): realized volatility of log returns, classified
LOW / NORMAL / HIGH with hysteresis.

Volatility is the sample standard deviation (ddof=1) of the log returns of the last
``window`` prices, per sample (not annualised): with one-minute closes, 0.01 is a 1 %
typical move per minute.

Hysteresis, asymmetric on purpose: a move towards caution happens at the threshold, a move
away from it needs the figure to cross the threshold by the ``hysteresis`` fraction.

- HIGH is entered as soon as volatility > ``high``; it is left only below
  ``high * (1 - hysteresis)``.
- LOW is left as soon as volatility > ``low``; it is entered only below
  ``low * (1 - hysteresis)`` (with no previous regime: below ``low``).

So a figure wandering around a threshold keeps the more cautious regime instead of
flapping, and a real jump in volatility is never delayed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from domain.errors import InvalidCommand


class Regime(StrEnum):
    LOW = "LOW"
    NORMAL = "NORMAL"
    HIGH = "HIGH"


class RegimeInputInvalid(InvalidCommand):
    """Prices or thresholds no regime can be read from."""


@dataclass(frozen=True)
class RegimeThresholds:
    window: int = 20
    min_points: int = 5
    low: float = 0.002
    high: float = 0.01
    hysteresis: float = 0.2

    def __post_init__(self) -> None:
        if not 2 <= self.min_points <= self.window:
            raise RegimeInputInvalid(
                f"need 2 <= min_points ({self.min_points}) <= window ({self.window})"
            )
        if not (math.isfinite(self.low) and math.isfinite(self.high) and 0 < self.low < self.high):
            raise RegimeInputInvalid(f"need 0 < low ({self.low}) < high ({self.high})")
        if not 0 <= self.hysteresis < 1:
            raise RegimeInputInvalid(f"hysteresis must be in [0, 1), got {self.hysteresis}")


def realized_volatility(prices: Sequence[Decimal | float], thresholds: RegimeThresholds) -> float:
    """Standard deviation (ddof=1) of the log returns of the last ``window`` prices.
    Raises RegimeInputInvalid for fewer than ``min_points`` prices, or a NaN, infinite or
    non-positive price."""
    recent = list(prices)[-thresholds.window :]
    if len(recent) < thresholds.min_points:
        raise RegimeInputInvalid(
            f"too few points: {len(recent)} price(s), at least {thresholds.min_points} needed"
        )
    import numpy as np  # noqa: PLC0415 - loaded when volatility is computed, not by every command

    values = np.array([float(p) for p in recent], dtype=np.float64)
    if not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise RegimeInputInvalid("prices must be finite and positive")
    return float(np.std(np.diff(np.log(values)), ddof=1))


def classify(volatility: float, previous: Regime | None, thresholds: RegimeThresholds) -> Regime:
    """The regime for ``volatility`` coming from ``previous`` (see the module's rule).
    Raises RegimeInputInvalid for a NaN, infinite or negative figure."""
    if not (math.isfinite(volatility) and volatility >= 0):
        raise RegimeInputInvalid(f"volatility must be finite and non-negative, got {volatility}")
    t = thresholds
    if volatility > t.high:
        return Regime.HIGH
    if previous is Regime.HIGH and volatility >= t.high * (1 - t.hysteresis):
        return Regime.HIGH
    if previous is Regime.LOW and volatility <= t.low:
        return Regime.LOW
    entry = t.low if previous is None else t.low * (1 - t.hysteresis)
    return Regime.LOW if volatility < entry else Regime.NORMAL


def detect(
    prices: Sequence[Decimal | float], previous: Regime | None, thresholds: RegimeThresholds
) -> tuple[Regime, float]:
    """(regime, volatility) of ``prices`` coming from ``previous``."""
    volatility = realized_volatility(prices, thresholds)
    return classify(volatility, previous, thresholds), volatility
