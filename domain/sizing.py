"""Position sizing (P0-05): a Q-table agent, the HIGH-volatility fallback, and hard caps.

State = (confidence bucket, recent-PnL bucket, volatility regime); an action is a (size
multiplier, leverage) pair from a fixed grid. Live trading is greedy. Whatever the Q-values
say, two rules sit after the agent and cannot be learned away:

1. **Fallback.** Regime HIGH and the state untrained (every Q-value within ``EPSILON`` of 0)
   gives size 0.3x and leverage 1.0, whatever the grid's default would be.
2. **Hard caps.** In regime HIGH leverage <= 2.0; always leverage <= the policy's
   ``max_leverage`` and notional <= its ``max_position_notional``. A capped decision names
   the caps that applied.

An untrained state outside HIGH takes ``NEUTRAL`` (size 1.0x, leverage 1.0): the intent's
own size at no leverage, until experience says otherwise. Ties between learned values go to
the action with the least exposure (size x leverage).

**Learning** (one trade is one episode, so there is no next state: gamma = 0):
``Q(s, a) <- Q(s, a) + ALPHA * (r - Q(s, a))`` with ``r = clip(pnl / exposure, -1, 1)``,
where ``exposure`` is the trade's entry notional (quantity x entry price), the risk it took.
A win moves the value of the action taken in that state up, a loss moves it down. A
fallback decision is not the agent's choice, so its trade teaches the table nothing: a HIGH
state stays untrained, and sized by the fallback, until trades the agent sized train it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from domain.errors import InvalidCommand

REGIMES = ("LOW", "NORMAL", "HIGH")
CONFIDENCE_EDGES = (0.6, 0.7, 0.8)  # 4 buckets: <0.6, <0.7, <0.8, >=0.8
PNL_BUCKETS = ("loss", "flat", "win")
SIZE_MULTIPLIERS = (Decimal("0.25"), Decimal("0.5"), Decimal("1.0"), Decimal("1.5"))
LEVERAGES = (Decimal("1.0"), Decimal("2.0"), Decimal("3.0"), Decimal("5.0"))
ACTIONS: tuple[tuple[Decimal, Decimal], ...] = tuple(
    (m, lev) for m in SIZE_MULTIPLIERS for lev in LEVERAGES
)
NEUTRAL = (Decimal("1.0"), Decimal("1.0"))
FALLBACK = (Decimal("0.3"), Decimal("1.0"))
HIGH_VOL_MAX_LEVERAGE = Decimal("2.0")
EPSILON = 1e-6
ALPHA = 0.2


class SizingInputInvalid(InvalidCommand):
    """A Q-table, state or figure the agent cannot use."""


@dataclass(frozen=True)
class SizingState:
    confidence_bucket: int
    pnl_bucket: str
    regime: str

    @classmethod
    def of(cls, *, confidence: float, recent_pnl: Decimal, regime: str) -> SizingState:
        if not (math.isfinite(confidence) and 0 <= confidence <= 1):
            raise SizingInputInvalid(f"confidence must be between 0 and 1, got {confidence}")
        if regime not in REGIMES:
            raise SizingInputInvalid(f"regime must be one of {', '.join(REGIMES)}")
        bucket = sum(confidence >= edge for edge in CONFIDENCE_EDGES)
        pnl = "win" if recent_pnl > 0 else "loss" if recent_pnl < 0 else "flat"
        return cls(bucket, pnl, regime)

    @property
    def key(self) -> str:
        return f"c{self.confidence_bucket}|{self.pnl_bucket}|{self.regime}"


@dataclass(frozen=True)
class SizingDecision:
    state: SizingState
    action_index: int | None  # None: the fallback, which is not on the grid
    size_multiplier: Decimal
    leverage: Decimal
    notional: Decimal
    q_values: tuple[float, ...]
    trained: bool
    fallback: bool
    caps_applied: tuple[str, ...] = field(default=())


def q_row(table: Mapping[str, Sequence[float]], state: SizingState) -> list[float]:
    """The state's Q-values, one float per action (zeros when never visited). Raises
    SizingInputInvalid for a row that is not ``len(ACTIONS)`` numbers or holds NaN/inf: a
    corrupt table is refused, never used."""
    try:
        row = [float(v) for v in table.get(state.key, [0.0] * len(ACTIONS))]
    except (TypeError, ValueError):
        row = []
    if len(row) != len(ACTIONS):
        raise SizingInputInvalid(f"Q-values of {state.key} must be {len(ACTIONS)} numbers")
    if not all(math.isfinite(v) for v in row):
        raise SizingInputInvalid(f"Q-values of {state.key} contain NaN or infinity")
    return row


def decide(
    table: Mapping[str, Sequence[float]],
    state: SizingState,
    *,
    base_notional: Decimal,
    max_leverage: Decimal,
    max_notional: Decimal,
) -> SizingDecision:
    """The greedy action for ``state``, then the fallback and the hard caps."""
    if not (base_notional > 0 and max_leverage > 0 and max_notional > 0):
        raise SizingInputInvalid("notional and the policy's caps must be positive")
    row = q_row(table, state)
    trained = any(abs(q) > EPSILON for q in row)
    index: int | None
    if not trained and state.regime == "HIGH":
        (size, leverage), index = FALLBACK, None
    elif not trained:
        index = ACTIONS.index(NEUTRAL)
        size, leverage = NEUTRAL
    else:
        best = max(row)
        ties = [i for i, q in enumerate(row) if q >= best - EPSILON]
        index = min(ties, key=lambda i: ACTIONS[i][0] * ACTIONS[i][1])
        size, leverage = ACTIONS[index]
    caps: list[str] = []
    if state.regime == "HIGH" and leverage > HIGH_VOL_MAX_LEVERAGE:
        leverage, caps = HIGH_VOL_MAX_LEVERAGE, [*caps, "high_volatility_leverage"]
    if leverage > max_leverage:
        leverage, caps = max_leverage, [*caps, "policy_max_leverage"]
    notional = base_notional * size
    if notional > max_notional:
        notional, caps = max_notional, [*caps, "policy_max_position_notional"]
    return SizingDecision(
        state=state,
        action_index=index,
        size_multiplier=size,
        leverage=leverage,
        notional=notional,
        q_values=tuple(float(q) for q in row),
        trained=trained,
        fallback=index is None,
        caps_applied=tuple(caps),
    )


def reward(realized_pnl: Decimal, exposure: Decimal) -> float:
    """PnL relative to the risk taken, clipped to [-1, 1]."""
    if exposure <= 0:
        raise SizingInputInvalid(f"exposure must be positive, got {exposure}")
    return max(-1.0, min(1.0, float(realized_pnl / exposure)))


def updated_value(current: float, r: float) -> float:
    """One Q-learning step towards the reward (gamma = 0: a trade is an episode)."""
    if not (math.isfinite(current) and math.isfinite(r)):
        raise SizingInputInvalid("Q-value and reward must be finite")
    return current + ALPHA * (r - current)
