"""The request budget the ccxt venue's threads share (adapters/ccxt/limits.py)."""

from __future__ import annotations

import ccxt

from adapters.ccxt.limits import RateRule, SlidingWindowLimiter, install_limiter


class FakeTime:
    """A clock that only moves when someone sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_a_burst_within_the_window_goes_at_once_and_the_next_waits_for_room() -> None:
    time = FakeTime()
    limiter = SlidingWindowLimiter(50, 1.0, clock=time.clock, sleep=time.sleep)  # fake: no wait

    for _ in range(10):
        limiter.acquire("", 5)  # ten requests of cost 5: the whole second's 50 at once
    assert time.slept == []

    limiter.acquire("", 5)  # the eleventh waits until the first leaves the window
    assert time.now == 1.0


def test_no_window_ever_holds_more_than_the_limit() -> None:
    time = FakeTime()
    limiter = SlidingWindowLimiter(50, 1.0, clock=time.clock, sleep=time.sleep)  # fake: no wait
    sent: list[tuple[float, float]] = []

    for cost in [20, 20, 20, 5, 50, 1, 30, 30]:
        limiter.acquire("", cost)
        sent.append((time.now, cost))
        time.now += 0.1

    for start, _ in sent:
        in_window = sum(c for at, c in sent if start <= at < start + 1.0)
        assert in_window <= 50, (start, in_window)


def test_endpoints_with_budgets_of_their_own_do_not_wait_for_each_other() -> None:
    time = FakeTime()
    limiter = SlidingWindowLimiter(50, 1.0, clock=time.clock, sleep=time.sleep)  # fake: no wait

    limiter.acquire("POST /v5/order/cancel-all", 50)
    limiter.acquire("POST /v5/order/create-batch", 5)
    assert time.slept == []
    limiter.acquire("POST /v5/order/cancel-all", 50)
    assert time.now == 1.0


def test_the_venue_budget_is_ccxt_rate_over_the_venue_window_with_ccxt_costs() -> None:
    exchange = ccxt.bybit({"apiKey": "k", "secret": "s"})
    costs: list[float] = []
    exchange.fetch2 = lambda path, api, method, params, config: costs.append(
        exchange.calculate_rate_limiter_cost(api, method, path, params, config)
    )

    limiter = install_limiter(exchange, RateRule(window=1.0, per_endpoint=True))
    exchange.privatePostV5OrderCancelAll({"category": "linear", "settleCoin": "USDT"})

    assert limiter.limit == 50  # ccxt's 20 ms a unit over Bybit's one-second window
    assert costs == [50]  # ccxt's cost for cancel-all: the endpoint's whole second
    assert exchange.enableRateLimit is False  # ccxt's own limiter no longer also waits
