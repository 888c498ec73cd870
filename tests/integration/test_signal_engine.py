"""The rule-based signal source drives the executor: one trade per signal, exits on the
opposite signal, and a replayed bar is never a second trade."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from adapters.paper.venue import PaperVenue
from app.bootstrap import Core
from app.executor import Outcome
from app.signal_engine import SignalEngine
from domain.signals import MovingAverageCrossover
from tests.integration.paper_drill import breaker_reads

ETH = "ETH/USDT:USDT"


class Bars:
    """A clock that moves one bar per ``next()``."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def next(self) -> None:
        self.now += timedelta(minutes=1)


def engine(core: Core, bars: Bars, fence: Callable[[], bool] = lambda: True) -> SignalEngine:
    return SignalEngine(
        core.venue(),
        core.executor(),
        core.trade_store(),
        bars,
        symbols=[ETH],
        notional=Decimal(300),
        bar_seconds=60,
        rule=MovingAverageCrossover(fast=2, slow=4),
        fence=fence,
    )


def play(core: Core, signals: SignalEngine, bars: Bars, prices: list[int]) -> list[Outcome]:
    venue = core.venue()
    assert isinstance(venue, PaperVenue)
    outcomes = []
    for price in prices:
        venue.admin().set_price(ETH, Decimal(price))
        outcomes += [e.outcome for e in signals.step()]
        core.runner.catch_up()
        bars.next()
    return outcomes


def test_a_cross_up_opens_a_long_and_a_cross_down_closes_it_and_opens_a_short(
    core: Core,
) -> None:
    venue = core.venue()
    assert isinstance(venue, PaperVenue)
    venue.admin().deposit(Decimal(10_000))
    breaker_reads(core)  # the breaker has seen the account before any entry
    bars = Bars()
    signals = engine(core, bars)

    up = play(core, signals, bars, [3000, 3000, 3000, 3000, 3100])
    (long_trade,) = core.trade_store().list_open_trades()
    down = play(core, signals, bars, [3100, 3100, 2900, 2800])

    assert up == [Outcome.FILLED]
    assert down == [Outcome.FILLED, Outcome.FILLED]  # the exit, then the short
    closed = core.trade_store().get(long_trade.trade_id)
    assert closed is not None and closed.close_reason == "signal"
    (short_trade,) = core.trade_store().list_open_trades()
    assert short_trade.side == "short"
    assert [p.side for p in venue.fetch_positions()] == ["short"]


def test_a_bar_replayed_after_a_restart_is_not_a_second_trade(core: Core) -> None:
    venue = core.venue()
    assert isinstance(venue, PaperVenue)
    venue.admin().deposit(Decimal(10_000))
    breaker_reads(core)  # the breaker has seen the account before any entry
    bars = Bars()
    play(core, engine(core, bars), bars, [3000, 3000, 3000, 3000, 3100])
    (first,) = core.trade_store().list_open_trades()
    core.executor().close(first.trade_id, reason="manual", actor="operator")
    core.runner.catch_up()
    bars.now -= timedelta(minutes=5)  # a restarted engine sees the same bars again

    replayed = play(core, engine(core, bars), bars, [3000, 3000, 3000, 3000, 3100])

    assert replayed == [Outcome.DUPLICATE]
    assert core.trade_store().list_open_trades() == []
    assert [t.trade_id for t in core.trade_store().history()] == [first.trade_id]


def test_a_worker_that_no_longer_holds_its_lock_acts_on_no_signal(core: Core) -> None:
    venue = core.venue()
    assert isinstance(venue, PaperVenue)
    venue.admin().deposit(Decimal(10_000))
    breaker_reads(core)  # the breaker has seen the account before any entry
    bars = Bars()
    holds_lock = [True]
    signals = engine(core, bars, fence=lambda: holds_lock[0])
    assert play(core, signals, bars, [3000, 3000, 3000, 3000, 3100]) == [Outcome.FILLED]

    holds_lock[0] = False  # the lock session was lost; a standby may be trading already
    down = play(core, signals, bars, [3100, 3100, 2900, 2800])

    assert down == []  # neither the exit nor the short
    (still_open,) = core.trade_store().list_open_trades()
    assert still_open.side == "long"
    assert [p.side for p in venue.fetch_positions()] == ["long"]
