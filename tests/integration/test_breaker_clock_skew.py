"""Readings are ordered without trusting the local clock: a worker whose clock is minutes
behind or ahead of the venue's is neither blinded nor tripped by it, and says so."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal

import pytest

from adapters.clock import utc_now
from adapters.paper.venue import PaperVenue
from app.bootstrap import Core, bootstrap
from app.config import Settings
from app.entrypoints.worker import Worker
from domain.account import Account
from tests.integration.paper_drill import place
from tests.waiting import wait_for

BTC, ETH = "BTC/USDT:USDT", "ETH/USDT:USDT"


def account(core: Core) -> Account:
    found = core.drawdown_breaker().load()
    assert found is not None
    return found


@pytest.fixture
def skewed(settings: Settings, request: pytest.FixtureRequest) -> Iterator[Core]:
    """A second core, as another process would be, whose only clock is ``param`` off."""
    skew = timedelta(seconds=request.param)
    with bootstrap(settings, clock=lambda: utc_now() + skew, pool_size=8) as built:
        yield built


@pytest.mark.parametrize("skewed", [-120, 120], ids=["2min-behind", "2min-ahead"], indirect=True)
def test_a_worker_with_a_skewed_clock_trips_on_a_crash_within_two_seconds_and_records_the_step(
    core: Core, skewed: Core
) -> None:
    venue = core.venue()
    assert isinstance(venue, PaperVenue)
    admin = venue.admin()
    admin.deposit(Decimal(10_000))
    admin.set_price(BTC, Decimal(50_000))
    admin.set_price(ETH, Decimal(3_000))
    place(venue, BTC, "buy", "0.1")  # 8,000 of longs on 10,000: -15 % prices = -12 % equity
    place(venue, ETH, "buy", "1")
    # Readings so far came from a feed on the true clock (an earlier worker).
    core.drawdown_breaker().poll()
    before = account(core)
    assert before.equity is not None and before.equity > Decimal(9_900)

    stop = threading.Event()
    thread = threading.Thread(target=Worker(skewed).run, args=(stop,), daemon=True)
    thread.start()
    try:
        # The skewed worker's own readings are accepted: its feed has taken over.
        wait_for(
            lambda: (
                account(core).feed not in (None, before.feed) and account(core).rejected_count == 0
            ),
            60,
            what="a reading of the skewed worker accepted",
        )
        crashed_at = time.monotonic()
        for symbol, price in ((BTC, 42_500), (ETH, 2_550)):
            admin.set_price(symbol, Decimal(price))

        def tripped() -> bool:
            emergency = core.commands.load_emergency()
            return emergency is not None and emergency.active and emergency.source == "drawdown"

        wait_for(tripped, 2.0, what="the emergency stop by the drawdown breaker")
        reacted = time.monotonic() - crashed_at
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not thread.is_alive()
    state = account(core)
    assert state.rejected_count == 0
    assert state.drawdown <= Decimal("-0.10")
    events = list(core.store.events.get(state.id))
    steps = [e for e in events if isinstance(e, Account.ClockStepDetected)]
    assert steps, "the clock step was not recorded"
    way = "behind" if skewed.clock() < core.clock() else "ahead of"
    moved = re.search(rf"moved ([0-9.]+) s {way} the venue's clock", steps[0].detail)
    assert moved is not None, steps[0].detail
    assert abs(float(moved.group(1)) - 120) < 5
    assert reacted <= 2.0
