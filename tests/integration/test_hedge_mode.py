"""Hedge mode: the executor names the position side every order is for, so a long and a short
on one symbol open, close and are flattened side by side, each trade booked at its own fill."""

from __future__ import annotations

from decimal import Decimal
from uuid import UUID

import pytest

from adapters.paper.venue import PaperVenue
from app.bootstrap import Core
from app.commands.executor import Outcome, TradeIntent
from app.commands.trade_records import TradeCommands
from domain.emergency import Emergency
from domain.ids import EMERGENCY_ID
from domain.trade import Trade
from tests.integration.paper_drill import breaker_reads, funded

BTC = "BTC/USDT:USDT"


@pytest.fixture
def venue(core: Core) -> PaperVenue:
    venue = funded(core, {BTC: "50000"})
    venue.admin().set_position_mode("hedge")
    breaker_reads(core)
    return venue


def open_both(core: Core) -> tuple[Trade, Trade]:
    """A long of 1,000 and a short of 600 notional on BTC; the trades as recorded."""
    executor = core.executor()
    opened = [
        executor.open(
            TradeIntent(symbol=BTC, side=side, notional=Decimal(n), actor="t", reason="hedge")
        )
        for side, n in (("long", 1000), ("short", 600))
    ]
    assert [o.outcome for o in opened] == [Outcome.FILLED] * 2, [o.reason for o in opened]
    long_id, short_id = (o.trade_id for o in opened)
    assert long_id is not None and short_id is not None
    return trade(core, long_id), trade(core, short_id)


def trade(core: Core, trade_id: UUID) -> Trade:
    return TradeCommands(core.store).load(trade_id)


def held(venue: PaperVenue) -> dict[str, Decimal]:
    return {p.side: p.quantity for p in venue.fetch_positions() if p.symbol == BTC}


def test_a_long_and_a_short_open_side_by_side_and_close_one_at_a_time(
    core: Core, venue: PaperVenue
) -> None:
    long, short = open_both(core)

    assert held(venue) == {"long": long.quantity, "short": short.quantity}
    closed = core.executor().close(long.id, reason="manual", actor="operator")
    assert closed.outcome is Outcome.FILLED, closed.reason
    assert held(venue) == {"short": short.quantity}
    assert not trade(core, long.id).is_open and trade(core, short.id).is_open


def test_the_hedge_mode_drill_ends_flat_with_both_trades_closed_at_their_own_fills(
    core: Core, venue: PaperVenue
) -> None:
    long, short = open_both(core)
    venue.admin().set_price(BTC, Decimal(50500))

    core.commands.activate_emergency(reason="hedge drill", actor="alice")
    report = core.flattener().run()

    assert report is not None and report.flat and report.positions_closed == 2
    assert venue.fetch_positions() == []
    closes = {
        c["side"]: c
        for e in core.store.events.get(EMERGENCY_ID)
        if isinstance(e, Emergency.PositionsClosed)
        for c in e.closes
    }
    for before in (long, short):
        after = trade(core, before.id)
        fill = closes[before.side]
        assert (after.is_open, after.close_reason) == (False, "emergency")
        assert Decimal(fill["quantity"]) == before.quantity  # its own side, all of it
        assert after.exit_quantity == before.quantity and after.quantity == 0
        assert after.exit_proceeds / after.exit_quantity == Decimal(fill["average_price"])
        direction = 1 if before.side == "long" else -1
        entry = before.entry_cost / before.entry_quantity
        price_pnl = (Decimal(fill["average_price"]) - entry) * before.quantity * direction
        assert after.realized_pnl == price_pnl - after.fees
