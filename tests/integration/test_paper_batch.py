"""The paper venue answers a batch of orders or cancels element by element, as a venue's
batch endpoint answers each element of one request: one failure hides no other outcome."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import select

from adapters.paper import tables as t
from adapters.paper.faults import FaultSettings
from adapters.paper.venue import PaperVenue
from app.bootstrap import Core
from domain.venue import (
    DuplicateClientOrderId,
    Order,
    OrderRejected,
    OrderRequest,
    Position,
    VenueError,
    VenueUnavailable,
)
from tests.integration.paper_drill import open_account

BTC, ETH, SOL = "BTC/USDT:USDT", "ETH/USDT:USDT", "SOL/USDT:USDT"


@pytest.fixture
def venue(core: Core) -> PaperVenue:
    venue = core.venue()
    assert isinstance(venue, PaperVenue)
    return venue


def close(position: Position, client_order_id: str) -> OrderRequest:
    return OrderRequest(
        position.symbol,
        position.closing_side,
        position.quantity,
        client_order_id,
        reduce_only=True,
    )


def test_each_order_of_a_batch_gets_its_own_outcome(core: Core, venue: PaperVenue) -> None:
    open_account(venue, symbols=2, resting=0)
    held = {p.symbol: p for p in venue.fetch_positions()}
    resting = OrderRequest(BTC, "buy", Decimal("0.1"), "resting-1", "limit", Decimal(40000))
    venue.admin().create_order(resting)

    btc, sol, duplicate, eth = venue.create_orders(
        [
            close(held[BTC], "tcx1-btc"),
            OrderRequest(SOL, "sell", Decimal(1), "tcx1-sol", reduce_only=True),  # nothing held
            OrderRequest(BTC, "buy", Decimal("0.1"), "resting-1"),
            close(held[ETH], "tcx1-eth"),
        ]
    )

    assert isinstance(btc, Order) and (btc.status, btc.filled) == ("closed", Decimal("0.1"))
    assert isinstance(sol, OrderRejected) and not isinstance(sol, DuplicateClientOrderId)
    assert isinstance(duplicate, DuplicateClientOrderId)
    assert isinstance(eth, Order) and (eth.status, eth.filled) == ("closed", Decimal("0.1"))
    assert btc.fee > 0 and btc.average_price is not None
    assert venue.fetch_positions() == []
    with core.engine.connect() as conn:
        logged = conn.execute(
            select(t.requests.c.client_order_id, t.requests.c.outcome).where(
                t.requests.c.client_order_id.in_(["tcx1-btc", "tcx1-sol", "tcx1-eth"])
            )
        ).all()
    assert sorted(cid for cid, _ in logged) == ["tcx1-btc", "tcx1-eth", "tcx1-sol"]


def test_a_fault_on_one_order_of_a_batch_leaves_the_others_executed(
    core: Core, venue: PaperVenue
) -> None:
    open_account(venue, symbols=8, resting=0)
    positions = venue.fetch_positions()
    venue.admin().set_faults(FaultSettings(error_rate=Decimal("0.5"), seed=11))

    answers = venue.create_orders([close(p, f"tcx1-{i}") for i, p in enumerate(positions)])

    lost = {p.symbol for p, a in zip(positions, answers, strict=True) if isinstance(a, VenueError)}
    done = {p.symbol for p, a in zip(positions, answers, strict=True) if isinstance(a, Order)}
    assert lost and done and lost | done == {p.symbol for p in positions}
    assert all(isinstance(a, VenueUnavailable) for a in answers if not isinstance(a, Order))
    # A network error means the order never arrived: exactly those positions are still open.
    assert {p.symbol for p in venue.admin().fetch_positions()} == lost


def test_cancels_on_several_symbols_are_counted_per_symbol(core: Core, venue: PaperVenue) -> None:
    open_account(venue, symbols=3, resting=4)  # resting: two on BTC, one on ETH, one on SOL

    canceled = venue.cancel_all_orders_on([BTC, ETH, SOL, "XRP/USDT:USDT"])

    assert canceled == {BTC: 2, ETH: 1, SOL: 1, "XRP/USDT:USDT": 0}
    assert venue.fetch_open_orders() == []
