"""Outages fail writers fast: with the store gone, every writer (and the reads it starts
with) raises StoreUnavailable within the stated bound (adapters.repository.WRITER_BOUND), instead
of waiting out nested retries for minutes."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from uuid import uuid4

import pytest

from adapters.embedded_pg import EmbeddedPostgres
from adapters.errors import StoreUnavailable
from adapters.repository import WRITER_BOUND
from app.bootstrap import bootstrap
from app.commands.trade_records import TradeCommands
from app.config import Settings
from domain.drawdown import Reading
from domain.trade import Trade

# Generous for a loaded machine (2 cores shared by many test sessions).
MEASURED_BOUND = 4 * WRITER_BOUND


def seconds_to_fail(call: Callable[[], object]) -> float:
    started = time.monotonic()
    with pytest.raises(StoreUnavailable):
        call()
    return time.monotonic() - started


def test_writers_fail_within_the_stated_bound_when_the_store_goes_away(
    own_server: EmbeddedPostgres,
) -> None:
    with bootstrap(Settings(database_url=own_server.address.url)) as core:
        core.commands.update_policy(actor="op", reason="open", allow_new_trades=True)
        trades = TradeCommands(core.store)
        trade = Trade.open(
            trade_id=uuid4(),
            symbol="BTC/USDT:USDT",
            side="long",
            quantity=Decimal("0.1"),
            leverage=Decimal(1),
            actor="op",
            reason="outage drill",
            timestamp=core.clock(),
        )
        trades.open(trade)
        breaker = core.drawdown_breaker()
        reading = Reading(
            equity=Decimal(10000),
            wallet=Decimal(10000),
            unrealized=Decimal(0),
            source="test",
            venue_at=datetime.now(UTC),
        )
        own_server.stop(mode="immediate")
        try:
            timings = {
                "breaker reading": seconds_to_fail(lambda: breaker.record(reading)),
                "trade update": seconds_to_fail(
                    lambda: trades.update(trade.id, lambda t: t.quantity)
                ),
                "load the latch": seconds_to_fail(core.commands.load_emergency),
            }
        finally:
            own_server.start()
    print(f"writer failure times in an outage (bound {WRITER_BOUND}s): {timings}")
    for what, seconds in timings.items():
        assert seconds < MEASURED_BOUND, f"{what} took {seconds:.1f}s to fail"
