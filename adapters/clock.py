"""The one clock: what every part of tradecore asks for the time.

Live it is the wall clock. A replay (``app.entrypoints.replay``) runs the same chain on a
:class:`MarketClock`, the replayed market's time, which the replay advances candle by
candle: the worker's timers (its duties, the equity interval, reconciliation, the signal
bars), the breaker's readings and every time the domain takes as an argument are then
market time, while the store still records each event's commit in its own order (the log's
position), and wall-clock durations that measure the machine (time to flat in wall time,
deadlines for a venue's answer) stay on ``time.monotonic``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime


def utc_now() -> datetime:
    """The wall clock, aware UTC. Only :class:`WallClock` and one-shot CLI defaults read it."""
    return datetime.now(UTC)


class Clock:
    """``clock()`` (or ``clock.now()``): aware UTC datetime; ``clock.monotonic()``: seconds
    on a scale whose differences are durations of this clock (never goes back).
    ``simulated``: True when the time is a replayed market's, not the machine's."""

    simulated = False

    def __call__(self) -> datetime:
        return self.now()

    def now(self) -> datetime:
        raise NotImplementedError

    def monotonic(self) -> float:
        raise NotImplementedError


class WallClock(Clock):
    """The machine's time; ``now`` may be replaced (a skewed clock in a drill)."""

    def __init__(self, now: Callable[[], datetime] = utc_now) -> None:
        self._now = now

    def now(self) -> datetime:
        return self._now()

    def monotonic(self) -> float:
        return time.monotonic()


class MarketClock(Clock):
    """A replayed market's time: it stands still until :meth:`advance_to` moves it."""

    simulated = True

    def __init__(self, start: datetime) -> None:
        _aware(start)
        self._at = start
        self._lock = threading.Lock()

    def now(self) -> datetime:
        return self._at

    def monotonic(self) -> float:
        return self._at.timestamp()

    def advance_to(self, at: datetime) -> None:
        """Move to ``at``. Raises ValueError when ``at`` is naive or before the current time
        (a market's time never goes back)."""
        _aware(at)
        with self._lock:
            if at < self._at:
                raise ValueError(f"market time cannot go back: {at} < {self._at}")
            self._at = at


WALL = WallClock()


def as_clock(clock: Clock | Callable[[], datetime]) -> Clock:
    """``clock`` itself, or a wall clock reading time from a plain callable."""
    return clock if isinstance(clock, Clock) else WallClock(clock)


def _aware(at: datetime) -> None:
    if at.tzinfo is None:
        raise ValueError(f"a clock's time must be timezone-aware, got {at}")
