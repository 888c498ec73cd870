"""Reconciliation: external positions adopted, vanished ones closed as external, and nothing
closed at the venue by reconciliation itself."""

from __future__ import annotations

import threading
import uuid
from decimal import Decimal

from adapters.paper.venue import PaperVenue
from app.bootstrap import Core
from app.commands.executor import Outcome, TradeIntent
from app.entrypoints.worker import Worker
from domain.trade import Trade
from domain.venue import Order, OrderRequest, Side
from tests.integration.paper_drill import breaker_reads
from tests.waiting import wait_for

BTC, ETH = "BTC/USDT:USDT", "ETH/USDT:USDT"


def paper(core: Core) -> PaperVenue:
    venue = core.venue()
    assert isinstance(venue, PaperVenue)
    venue.admin().deposit(Decimal(100_000))
    breaker_reads(core)  # the breaker has seen the account before any entry
    return venue


def by_hand(venue: PaperVenue, symbol: str, side: Side, qty: str, *, reduce: bool = False) -> Order:
    """An order placed outside tradecore (on the venue's own site, say)."""
    return venue.admin().create_order(
        OrderRequest(
            symbol=symbol,
            side=side,
            quantity=Decimal(qty),
            client_order_id=f"web-{uuid.uuid4().hex[:20]}",
            reduce_only=reduce,
        )
    )


def trade(core: Core, trade_id: uuid.UUID) -> Trade:
    found = core.store.repository.get(trade_id)
    assert isinstance(found, Trade)
    return found


def test_a_venue_position_tradecore_does_not_know_is_adopted_once(core: Core) -> None:
    venue = paper(core)
    by_hand(venue, ETH, "sell", "2")

    first = core.reconciler().run()
    second = core.reconciler().run()

    assert len(first.adopted) == 1 and second.adopted == []
    adopted = trade(core, first.adopted[0])
    assert (adopted.source, adopted.side, adopted.quantity) == ("external", "short", Decimal(2))
    assert adopted.entry_price == venue.fetch_positions()[0].entry_price
    events = [type(e).__name__ for e in core.store.events.get(adopted.id)]
    assert events == ["Opened", "ExternalPositionDetected"]
    assert core.open_trade_ids() == [adopted.id]
    assert len(venue.fetch_positions()) == 1  # reconciliation closes nothing at the venue


def test_more_at_the_venue_than_the_trades_hold_adopts_only_the_difference(core: Core) -> None:
    venue = paper(core)
    opened = core.executor().open(
        TradeIntent(symbol=BTC, side="long", notional=Decimal(6000), actor="t", reason="t")
    )
    assert opened.outcome is Outcome.FILLED
    by_hand(venue, BTC, "buy", "0.05")

    report = core.reconciler().run()

    assert len(report.adopted) == 1
    assert trade(core, report.adopted[0]).quantity == Decimal("0.05")


def test_a_trade_whose_position_vanished_is_closed_as_external_at_the_venues_fill(
    core: Core,
) -> None:
    venue = paper(core)
    opened = core.executor().open(
        TradeIntent(symbol=BTC, side="long", notional=Decimal(6000), actor="t", reason="t")
    )
    assert opened.trade_id is not None
    venue.admin().set_price(BTC, Decimal(61_000))
    by_hand_close = by_hand(venue, BTC, "sell", "0.1", reduce=True)  # on the venue's site

    report = core.reconciler().run()

    assert report.closed_external == [opened.trade_id]
    closed = trade(core, opened.trade_id)
    assert closed.close_reason == "external" and closed.quantity == 0
    exit_ = next(e for e in core.store.events.get(closed.id) if isinstance(e, Trade.ExitRecorded))
    # The venue's own record of that fill, not the mark, with its fee.
    assert (exit_.price_source, exit_.price) == ("fill", by_hand_close.average_price)
    assert exit_.fee == by_hand_close.fee > 0
    assert closed.realized_pnl is not None and closed.realized_pnl > 0
    assert core.open_trade_ids() == []


def test_less_at_the_venue_than_the_trades_hold_is_reported_not_guessed(core: Core) -> None:
    venue = paper(core)
    opened = core.executor().open(
        TradeIntent(symbol=BTC, side="long", notional=Decimal(6000), actor="t", reason="t")
    )
    assert opened.trade_id is not None
    held = trade(core, opened.trade_id).quantity
    by_hand(venue, BTC, "sell", str(held / 3), reduce=True)

    report = core.reconciler().run()

    assert report.closed_external == [] and report.adopted == []
    assert len(report.mismatches) == 1 and f"open trades hold {held}" in report.mismatches[0]
    assert trade(core, opened.trade_id).is_open


def test_the_worker_reconciles_on_start_so_an_external_position_is_covered(core: Core) -> None:
    venue = paper(core)
    by_hand(venue, ETH, "buy", "1")
    stop = threading.Event()
    worker = threading.Thread(target=Worker(core).run, args=(stop,))
    worker.start()
    try:
        wait_for(
            lambda: bool(core.trade_store().list_open_trades()),
            10,
            interval=0.05,
            what="the worker adopting the external position",
        )
    finally:
        stop.set()
        worker.join(timeout=10)
    assert not worker.is_alive(), "the worker did not stop within 10 s"
    (adopted,) = core.trade_store().list_open_trades()
    assert (adopted.source, adopted.symbol, adopted.quantity) == ("external", ETH, Decimal(1))
