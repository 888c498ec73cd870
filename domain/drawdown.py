"""The drawdown rule (P0-07): pure arithmetic and decisions, no I/O and no clock.

Drawdown is measured against the high-water mark of accepted equity readings since the last
reset: ``drawdown = equity / peak - 1``, in [-1, 0]. Equity includes unrealized PnL, so an
open losing position counts before it is closed.

States: ``normal`` -> ``soft_breach`` (new entries stopped) -> ``hard_breach`` (emergency
stop). Recovery from a soft breach needs the drawdown back above the soft threshold by a
hysteresis margin, so a reading that hovers at the threshold does not flap the policy. A
hard breach is left only by an operator's reset of the peak.

The glitch guard: a reading that moves more than ``glitch_bound`` from the last accepted
one is held as *pending* and acted on only when the next reading lands within the bound of
it (it confirms) — the feed re-reads the venue at once when it sees a pending reading, so a
real crash is confirmed within milliseconds, or at the next poll if the re-read fails. A
next reading that contradicts the pending one discards it (recorded as unconfirmed) and is
itself judged against the last accepted reading. A glitch upward is held the same way, so a
spike can never raise the peak and make the next honest reading look like a crash. The
first reading is a jump from nothing and is confirmed the same way.

Ordering never trusts the local clock: within one feed (one breaker process) readings are
ordered by the feed's own sequence counter, and across feeds by the venue's clock when the
venue dates its figures. The local clock only dates what is recorded; when it moves apart
from the venue's clock (or runs backwards) by more than ``CLOCK_STEP_BOUND`` the account
records a clock step, and the reading is judged all the same.

Transfers are not losses: drawdown is measured on transfer-adjusted equity. A cash transfer
(``domain.venue.CashTransfer``) moves the peak and the last accepted equity by its signed
amount — a withdrawal of W lowers both by W, a deposit of D raises both by D — so a
withdrawal with no loss leaves the drawdown where it was, a deposit cannot hide a loss, and
the next reading (which shows the wallet after the transfer) is judged against a reference
that already includes it, so the glitch guard does not hold it as a jump.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from enum import Enum

from domain.errors import InvalidCommand

# The actor of everything the breaker records, and of the policy changes it makes.
BREAKER_ACTOR = "drawdown-breaker"
ZERO = Decimal(0)
ONE = Decimal(1)
# Local clock and venue clock may drift apart by this much between two readings (network
# latency, a slow poll) before it is called a clock step.
CLOCK_STEP_BOUND = timedelta(seconds=5)
# The configuration's defaults (``TRADECORE_DRAWDOWN_HYSTERESIS`` / ``_GLITCH_BOUND``).
DEFAULT_HYSTERESIS = Decimal("0.01")
DEFAULT_GLITCH_BOUND = Decimal("0.03")


class BreakerState(Enum):
    NORMAL = "normal"
    SOFT_BREACH = "soft_breach"
    HARD_BREACH = "hard_breach"


class Transition(Enum):
    NONE = "none"
    SOFT_BREACH = "soft_breach"
    HARD_BREACH = "hard_breach"
    RECOVERED = "recovered"


@dataclass(frozen=True)
class Thresholds:
    """From the policy (soft, hard) and the configuration (hysteresis, glitch bound)."""

    soft: Decimal
    hard: Decimal
    hysteresis: Decimal = DEFAULT_HYSTERESIS
    glitch_bound: Decimal = DEFAULT_GLITCH_BOUND

    def __post_init__(self) -> None:
        if not Decimal(-1) < self.hard < self.soft < 0:
            raise InvalidCommand(
                f"drawdown thresholds must satisfy -1 < hard < soft < 0, "
                f"got hard {self.hard}, soft {self.soft}"
            )
        if self.hysteresis < ZERO:
            raise InvalidCommand(
                f"the drawdown hysteresis must be at least 0, got {self.hysteresis}"
            )
        if self.soft + self.hysteresis >= ZERO:
            # A soft breach recovers only above soft + hysteresis; at or above 0 it never
            # could, and the rule refuses to judge (every reading would raise).
            raise InvalidCommand(
                f"the soft threshold plus the hysteresis must stay below 0 (a soft breach "
                f"recovers above it): soft {self.soft} + hysteresis {self.hysteresis} = "
                f"{self.soft + self.hysteresis}"
            )
        if not ZERO < self.glitch_bound < ONE:
            raise InvalidCommand(
                f"the glitch bound must be between 0 and 1 (exclusive), got {self.glitch_bound}"
            )


@dataclass(frozen=True)
class Reading:
    """One equity reading as the venue gave it (values may be anything: NaN, negative).

    ``venue_at`` is the venue's time of the figures when ``venue_clock`` is True, else the
    local clock's time of the read (the venue did not say). ``feed`` names the feed that read
    it and ``sequence`` is that feed's counter, strictly increasing within the feed.
    """

    equity: Decimal
    wallet: Decimal
    unrealized: Decimal
    source: str
    venue_at: datetime
    venue_clock: bool = True
    feed: str | None = None
    sequence: int | None = None


def rejection(
    reading: Reading,
    *,
    last_at: datetime | None,
    positions_open: bool,
    last_feed: tuple[str, int] | None = None,
) -> str | None:
    """Why ``reading`` cannot be used, or None when it can.

    ``last_at``: the venue's time of the last usable reading the venue dated (never a local
    clock's); ``last_feed``: (feed, sequence) of the last usable reading.
    """
    for name in ("equity", "wallet", "unrealized"):
        value = getattr(reading, name)
        if not isinstance(value, Decimal) or not value.is_finite():
            return f"{name} is not a finite number ({value})"
    if reading.equity < 0:
        return f"equity is negative ({reading.equity})"
    if reading.equity == 0 and positions_open:
        return "equity is zero while positions are open"
    if (
        last_feed is not None
        and reading.feed == last_feed[0]
        and reading.sequence is not None
        and reading.sequence <= last_feed[1]
    ):
        return (
            f"out of order: sequence {reading.sequence} of feed {reading.feed} "
            f"is not after {last_feed[1]}"
        )
    if reading.venue_clock and last_at is not None and reading.venue_at < last_at:
        return (
            f"older than the last reading by the venue's clock "
            f"({reading.venue_at.isoformat()} < {last_at.isoformat()})"
        )
    return None


def clock_step(
    *,
    local_at: datetime,
    offset: timedelta | None,
    last_local_at: datetime | None,
    last_offset: timedelta | None,
    bound: timedelta = CLOCK_STEP_BOUND,
) -> str | None:
    """How the local clock stepped since the last reading, or None.

    ``offset``/``last_offset``: local time minus the venue's time of this and the last
    reading, when the venue dated them. A step is the offset moving by more than ``bound``,
    or the local clock running backwards by more than ``bound``.
    """
    if offset is not None and last_offset is not None and abs(offset - last_offset) > bound:
        moved = (offset - last_offset).total_seconds()
        way = "ahead of" if moved > 0 else "behind"
        return (
            f"the local clock moved {abs(moved):.3f} s {way} the venue's clock "
            f"(offset {last_offset.total_seconds():.3f} s -> {offset.total_seconds():.3f} s)"
        )
    if last_local_at is not None and local_at < last_local_at - bound:
        back = (last_local_at - local_at).total_seconds()
        return (
            f"the local clock ran {back:.3f} s backwards "
            f"({last_local_at.isoformat()} -> {local_at.isoformat()})"
        )
    return None


def drawdown(equity: Decimal, peak: Decimal) -> Decimal:
    """``equity / peak - 1``, clamped to [-1, 0]; 0 when there is no peak yet."""
    if peak <= 0:
        return ZERO
    return min(max(equity / peak - ONE, Decimal(-1)), ZERO)


def next_peak(peak: Decimal, equity: Decimal) -> Decimal:
    """The high-water mark after an accepted reading: never lower than before."""
    return max(peak, equity)


def shifted(figure: Decimal, net_transfer: Decimal) -> Decimal:
    """A peak or an equity after a transfer of ``net_transfer`` (signed: + in, - out),
    never below zero (a withdrawal cannot take out more than there was)."""
    return max(figure + net_transfer, ZERO)


def is_jump(reference: Decimal, equity: Decimal, bound: Decimal) -> bool:
    """Did equity move more than ``bound`` (a fraction) from ``reference``?"""
    if reference <= 0:
        return equity > 0
    return abs(equity / reference - ONE) > bound


def transition(
    state: BreakerState,
    dd: Decimal,
    thresholds: Thresholds,
    *,
    emergency_active: bool,
) -> Transition:
    """What an accepted reading with drawdown ``dd`` does in ``state``.

    In a hard breach a reading still past the hard threshold while the emergency stop is no
    longer active (an operator reset the latch without resetting the peak) trips it again:
    the breaker is never silently disarmed.
    """
    if dd <= thresholds.hard:
        if state is not BreakerState.HARD_BREACH or not emergency_active:
            return Transition.HARD_BREACH
        return Transition.NONE
    if state is BreakerState.NORMAL and dd <= thresholds.soft:
        return Transition.SOFT_BREACH
    if state is BreakerState.SOFT_BREACH and dd > thresholds.soft + thresholds.hysteresis:
        return Transition.RECOVERED
    return Transition.NONE
