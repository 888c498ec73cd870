"""The gate knows whether the drawdown breaker can see: no accepted equity reading, one older
than the bound, or readings being rejected -> an opening intent is refused BREAKER_BLIND and
the refusal recorded; a reduce-only exit stays allowed."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from adapters.clock import utc_now
from adapters.database import DatabaseAddress
from adapters.paper.venue import PaperVenue
from app.bootstrap import Core, bootstrap
from app.commands.executor import Outcome, TradeIntent
from app.config import Settings
from app.processes.drawdown_breaker import DrawdownBreaker
from app.queries.gate import GateCode
from domain.refusal import RefusedIntent
from domain.venue import Balance

BTC = "BTC/USDT:USDT"


class MovableClock:
    """The one clock of a core, moved forward by a test instead of waiting."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return utc_now() + self.offset


@pytest.fixture
def clock() -> MovableClock:
    return MovableClock()


@pytest.fixture
def blind_core(database: DatabaseAddress, clock: MovableClock) -> Iterator[Core]:
    """A core with the default freshness bound (max(5 s, 3 x the 1 s equity interval))."""
    settings = Settings(database_url=database.url)
    assert settings.breaker_sight_bound == 5.0
    with bootstrap(settings, clock=clock, pool_size=8) as built:
        built.commands.update_policy(actor="operator", reason="open", allow_new_trades=True)
        venue = built.venue()
        assert isinstance(venue, PaperVenue)
        venue.admin().deposit(Decimal(10_000))
        venue.admin().set_price(BTC, Decimal(50_000))
        yield built


def intent() -> TradeIntent:
    return TradeIntent(symbol=BTC, side="long", notional=Decimal(1000), actor="t", reason="t")


def refusal_codes(core: Core) -> list[str]:
    notifications = core.store.recorder.select_notifications(start=1, limit=100_000)
    events = [core.store.mapper.to_domain_event(n) for n in notifications]
    return [e.code for e in events if isinstance(e, RefusedIntent.Refused)]


def test_an_entry_before_any_equity_reading_is_refused_breaker_blind_and_recorded(
    blind_core: Core,
) -> None:
    refused = blind_core.executor().open(intent())
    assert refused.outcome is Outcome.REFUSED and refused.code == GateCode.BREAKER_BLIND.value
    assert "no equity reading" in refused.reason
    assert refusal_codes(blind_core) == ["BREAKER_BLIND"]
    decision = blind_core.gate.can_open_new_trades()
    assert not decision.allowed and not decision.emergency_mode  # blind, not an emergency

    blind_core.drawdown_breaker().poll()
    assert blind_core.executor().open(intent()).outcome is Outcome.FILLED


def test_a_stale_reading_refuses_entries_but_a_reduce_only_exit_is_allowed(
    blind_core: Core, clock: MovableClock
) -> None:
    blind_core.drawdown_breaker().poll()
    executor = blind_core.executor()
    opened = executor.open(intent())
    assert opened.outcome is Outcome.FILLED and opened.trade_id is not None

    clock.offset += timedelta(seconds=6)  # the worker stopped reading 6 s ago (bound 5 s)
    refused = executor.open(intent())
    assert refused.outcome is Outcome.REFUSED and refused.code == "BREAKER_BLIND"
    assert "s old (bound 5 s" in refused.reason
    assert blind_core.gate.check_order(reduce_only=True).allowed
    closed = executor.close(opened.trade_id, reason="manual", actor="t")
    assert closed.outcome is Outcome.FILLED
    assert refusal_codes(blind_core) == ["BREAKER_BLIND"]


class NaNEquity:
    """The paper venue, except that its equity reads NaN: every reading is rejected."""

    def __init__(self, venue: PaperVenue) -> None:
        self._venue = venue
        self.name = "nan"

    def fetch_balance(self) -> Balance:
        return Balance("USDT", Decimal("NaN"), Decimal(0))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._venue, name)


def test_readings_being_rejected_refuse_entries_at_once(blind_core: Core) -> None:
    blind_core.drawdown_breaker().poll()
    assert blind_core.gate.can_open_new_trades().allowed
    venue = blind_core.venue()
    assert isinstance(venue, PaperVenue)
    breaker = DrawdownBreaker(
        blind_core.store,
        blind_core.commands,
        NaNEquity(venue),  # type: ignore[arg-type]
        blind_core.clock,
    )
    assert breaker.poll().last is not None
    decision = blind_core.gate.can_open_new_trades()
    assert not decision.allowed and decision.code is GateCode.BREAKER_BLIND
    assert "rejected" in decision.reason and "not a finite number" in decision.reason
    blind_core.drawdown_breaker().poll()  # an honest reading again: the breaker sees
    assert blind_core.gate.can_open_new_trades().allowed


def test_the_default_bound_follows_the_equity_interval() -> None:
    assert Settings(equity_interval=4).breaker_sight_bound == 12.0
    assert Settings(equity_interval=0.5).breaker_sight_bound == 5.0
    assert Settings(breaker_blind_after=30).breaker_sight_bound == 30.0
