"""A simple rule-based signal source: a moving-average crossover on closing prices.

It stands where the LightGBM model will (issue 7), with the same shape: a side and a
confidence for a symbol at a bar, or nothing. Pure: prices in, a signal out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Literal

from domain.errors import InvalidCommand

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray


class SignalInputInvalid(InvalidCommand):
    """Prices or rule parameters a signal cannot be computed from."""


@dataclass(frozen=True)
class MovingAverageCrossover:
    fast: int = 5  # bars
    slow: int = 20  # bars, > fast
    # Below this relative separation of the averages a cross is noise, not a signal.
    min_separation: float = 0.001

    def __post_init__(self) -> None:
        if self.fast < 1:
            raise SignalInputInvalid(f"fast must be at least 1 bar, got {self.fast}")
        if self.slow <= self.fast:
            raise SignalInputInvalid(f"slow ({self.slow}) must be longer than fast ({self.fast})")
        if not (self.min_separation >= 0 and math.isfinite(self.min_separation)):
            raise SignalInputInvalid(f"min_separation must be >= 0, got {self.min_separation}")

    @property
    def name(self) -> str:
        return f"ma{self.fast}x{self.slow}"


@dataclass(frozen=True)
class Signal:
    symbol: str
    side: Literal["long", "short"]
    confidence: float  # in [0.5, 1.0]
    reason: str
    key: str  # one signal per rule, symbol, bar and side: the executor's idempotency key


def evaluate(
    rule: MovingAverageCrossover,
    symbol: str,
    closes: Sequence[Decimal | float],
    bar_time: datetime,
) -> Signal | None:
    """The signal at the last bar of ``closes`` (oldest first): only on the bar where the
    fast average crosses the slow one, and only past ``min_separation``; None otherwise.

    Confidence maps the relative separation s = fast/slow - 1 linearly from 0.5 at the
    threshold to 1.0 at ten times it (and stays at 1.0 beyond).

    Raises SignalInputInvalid for fewer than ``slow + 1`` points, a NaN, infinite or
    non-positive price, or a naive ``bar_time``.
    """
    if bar_time.tzinfo is None or bar_time.utcoffset() is None:
        raise SignalInputInvalid("bar_time must carry a timezone")
    if len(closes) < rule.slow + 1:
        raise SignalInputInvalid(f"{symbol}: need {rule.slow + 1} closes, got {len(closes)}")
    import numpy as np  # noqa: PLC0415 - loaded when a signal is evaluated, not by every command

    prices = np.array([float(c) for c in closes], dtype=np.float64)
    if not np.all(np.isfinite(prices)) or np.any(prices <= 0):
        raise SignalInputInvalid(f"{symbol}: prices must be finite and positive")
    now_fast, now_slow = _mean(prices, rule.fast, 0), _mean(prices, rule.slow, 0)
    was_fast, was_slow = _mean(prices, rule.fast, 1), _mean(prices, rule.slow, 1)
    separation = now_fast / now_slow - 1
    if abs(separation) <= rule.min_separation:
        return None
    side: Literal["long", "short"]
    if separation > 0 and was_fast <= was_slow:
        side, direction = "long", "above"
    elif separation < 0 and was_fast >= was_slow:
        side, direction = "short", "below"
    else:
        return None  # no cross on this bar
    scale = 10 * rule.min_separation if rule.min_separation > 0 else 0.01
    strength = min(1.0, max(0.0, (abs(separation) - rule.min_separation) / scale))
    return Signal(
        symbol=symbol,
        side=side,
        confidence=0.5 + 0.5 * strength,
        reason=f"MA{rule.fast} crossed {direction} MA{rule.slow} ({separation:+.2%})",
        key=f"{rule.name}:{symbol}:{bar_time.isoformat()}:{side}",
    )


def _mean(prices: NDArray[np.float64], window: int, bars_ago: int) -> float:
    end = len(prices) - bars_ago
    return float(prices[end - window : end].mean())
