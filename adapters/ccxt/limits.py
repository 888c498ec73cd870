"""A venue's request budget, shared by the threads that send requests at once.

ccxt's own synchronous limiter spaces requests one ``rateLimit`` apart after the previous
one, which serializes everything and does not hold across threads. Here the budget keeps
ccxt's rules — its per-endpoint costs (``calculate_rate_limiter_cost``, the venue's request
weights) and its rate (one cost unit per ``rateLimit`` milliseconds) — counted over the
venue's own published window, so a burst the venue allows goes out at once:

- Binance USD-M counts request weight per IP over a minute; ccxt's 50 ms per unit makes
  1,200 units a minute, half the published 2,400, so other clients on the same address keep
  room. One budget for every endpoint.
- Bybit v5 counts each endpoint per UID over a rolling second; ccxt's costs express each
  endpoint's share of 50 units a second (``cost = 50 / limit``). One budget per endpoint.

The window is a sliding log (the costs of the requests of the last ``window`` seconds), so no
window of that length ever holds more than the limit, whichever way the venue aligns its own.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class RateRule:
    """How a venue counts requests: over ``window`` seconds, per endpoint or all together."""

    window: float = 1.0
    per_endpoint: bool = False


class SlidingWindowLimiter:
    """At most ``limit`` cost units in any ``window`` seconds, per key; thread-safe.

    ``acquire`` blocks (sleeping, never spinning) until the request fits. A request dearer
    than the whole limit waits for an empty window and then goes alone.
    """

    def __init__(
        self,
        limit: float,
        window: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if limit <= 0 or window <= 0:
            raise ValueError("a rate limit needs a positive limit and window")
        self.limit = limit
        self.window = window
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._spent: dict[str, deque[tuple[float, float]]] = {}
        self.waited = 0.0  # seconds spent waiting, summed over every caller

    def acquire(self, key: str, cost: float) -> None:
        while True:
            with self._lock:
                now = self._clock()
                log = self._spent.setdefault(key, deque())
                while log and log[0][0] <= now - self.window:
                    log.popleft()
                used = sum(c for _, c in log)
                if not log or used + cost <= self.limit:
                    log.append((now, cost))
                    return
                # Wait until enough of the oldest requests leave the window.
                freed, wake = used, log[0][0]
                for at, c in log:
                    freed -= c
                    wake = at
                    if freed + cost <= self.limit:
                        break
                delay = max(wake + self.window - now, 0.0005)
                self.waited += delay
            self._sleep(delay)


class RoundTrips:
    """The durations of a venue's most recent requests (seconds, each from the moment it was
    sent to its answer, after any rate-limit wait); thread-safe."""

    def __init__(self, keep: int = 64) -> None:
        self._lock = threading.Lock()
        self._recent: deque[float] = deque(maxlen=keep)

    def add(self, seconds: float) -> None:
        with self._lock:
            self._recent.append(seconds)

    def shortest(self) -> float:
        """The shortest of the recent requests in seconds; 0.0 before any request."""
        with self._lock:
            return min(self._recent, default=0.0)


def time_requests(exchange: Any) -> RoundTrips:
    """Record how long each of ``exchange``'s requests takes on the network (wrap it before
    ``install_limiter``, so a request's wait for the budget is not counted)."""
    round_trips = RoundTrips()
    send = exchange.fetch2

    def fetch2(*args: Any, **kwargs: Any) -> Any:
        start = time.monotonic()
        try:
            return send(*args, **kwargs)
        finally:
            round_trips.add(time.monotonic() - start)

    exchange.fetch2 = fetch2
    return round_trips


def install_limiter(exchange: Any, rule: RateRule) -> SlidingWindowLimiter:
    """Put ``exchange``'s requests under one ``SlidingWindowLimiter`` of ``rule``, in place
    of ccxt's own (``enableRateLimit`` is turned off so the two never both wait).

    Costs come from ccxt's endpoint tables; the limit is ``window x 1000 / rateLimit`` units.
    Returns the limiter (its ``waited`` says how long requests were held back).
    """
    limiter = SlidingWindowLimiter(rule.window * 1000 / float(exchange.rateLimit), rule.window)
    send = exchange.fetch2

    def fetch2(
        path: str,
        api: Any = "public",
        method: str = "GET",
        params: Any = None,
        config: Any = None,
    ) -> Any:
        params = {} if params is None else params
        config = {} if config is None else config
        cost = float(exchange.calculate_rate_limiter_cost(api, method, path, params, config))
        key = f"{api}:{method}:{path}" if rule.per_endpoint else ""
        limiter.acquire(key, cost)
        return send(path, api, method, params, config)

    exchange.fetch2 = fetch2
    exchange.enableRateLimit = False
    return limiter
