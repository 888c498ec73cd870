"""The Trade aggregate's lifecycle rules, without any I/O."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from uuid import uuid4

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.errors import InvalidCommand
from domain.trade import Trade, TradeClosed, TradeError, trade_id_for
from domain.venue import Order

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def new_trade(side: str = "long", quantity: str = "1") -> Trade:
    return Trade.open(
        trade_id=uuid4(),
        symbol="BTC/USDT:USDT",
        side=side,
        quantity=quantity,
        leverage="2",
        actor="executor",
        reason="signal",
        timestamp=T0,
    )


def test_a_trade_keeps_the_id_it_is_given() -> None:
    trade_id = trade_id_for("legacy:abc")
    trade = Trade.open(
        trade_id=trade_id,
        symbol="BTC/USDT:USDT",
        side="long",
        quantity="1",
        leverage="1",
        actor="import",
        reason="legacy",
        timestamp=T0,
        source="import",
    )
    assert trade.id == trade_id == trade_id_for("legacy:abc")


def test_fills_move_quantity_and_average_entry_then_close_realizes_pnl() -> None:
    trade = new_trade()
    entry = trade.submit_order(order_side="buy", quantity="1", reduce_only=False, timestamp=T0)
    trade.record_fill(client_order_id=entry, quantity="0.4", price="100", fee="0.1", timestamp=T0)
    trade.record_fill(client_order_id=entry, quantity="0.6", price="110", fee="0.1", timestamp=T0)
    assert trade.quantity == Decimal(1) and trade.entry_price == Decimal(106)
    exit_ = trade.submit_order(order_side="sell", quantity="1", reduce_only=True, timestamp=T0)
    trade.record_fill(client_order_id=exit_, quantity="1", price="120", fee="0.2", timestamp=T0)
    trade.close(reason="signal", actor="executor", timestamp=T0)
    assert trade.quantity == 0
    assert trade.realized_pnl == Decimal(14) - Decimal("0.4")
    assert len(exit_) <= 36 and exit_ != entry


def test_a_short_profits_when_the_price_falls() -> None:
    trade = new_trade(side="short")
    entry = trade.submit_order(order_side="sell", quantity="2", reduce_only=False, timestamp=T0)
    trade.record_fill(client_order_id=entry, quantity="2", price="50", timestamp=T0)
    exit_ = trade.submit_order(order_side="buy", quantity="2", reduce_only=True, timestamp=T0)
    trade.record_fill(client_order_id=exit_, quantity="2", price="45", timestamp=T0)
    trade.close(reason="stop", actor="monitor", timestamp=T0)
    assert trade.realized_pnl == Decimal(10)


def test_nothing_happens_to_a_closed_trade() -> None:
    trade = new_trade()
    order = trade.submit_order(order_side="buy", quantity="1", reduce_only=False, timestamp=T0)
    trade.close(reason="emergency", actor="flattener", timestamp=T0)
    with pytest.raises(TradeClosed):
        trade.record_fill(client_order_id=order, quantity="1", price="1", timestamp=T0)
    with pytest.raises(TradeClosed):
        trade.close(reason="signal", actor="x", timestamp=T0)
    with pytest.raises(TradeClosed):
        trade.set_stop(kind="stop_loss", price="1", actor="x", timestamp=T0)


def test_a_fill_cannot_exceed_its_order_or_belong_to_no_order() -> None:
    trade = new_trade()
    order = trade.submit_order(order_side="buy", quantity="1", reduce_only=False, timestamp=T0)
    with pytest.raises(TradeError, match="exceeds"):
        trade.record_fill(client_order_id=order, quantity="1.5", price="1", timestamp=T0)
    with pytest.raises(TradeError, match="no order"):
        trade.record_fill(client_order_id="other", quantity="1", price="1", timestamp=T0)


def test_only_orders_that_reduce_the_trade_are_reduce_only() -> None:
    trade = new_trade()
    with pytest.raises(TradeError, match="reduce-only"):
        trade.submit_order(order_side="sell", quantity="1", reduce_only=False, timestamp=T0)
    with pytest.raises(TradeError, match="reduce-only"):
        trade.submit_order(order_side="buy", quantity="1", reduce_only=True, timestamp=T0)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("side", "up", "side"),
        ("quantity", "-1", "quantity"),
        ("leverage", "0", "leverage"),
        ("symbol", " ", "symbol"),
        ("quantity", "abc", "quantity"),
    ],
)
def test_invalid_trades_are_refused_naming_the_field(field: str, value: str, message: str) -> None:
    values = {"symbol": "BTC/USDT:USDT", "side": "long", "quantity": "1", "leverage": "1"}
    values[field] = value
    with pytest.raises(InvalidCommand, match=message):
        Trade.open(trade_id=uuid4(), actor="a", reason="r", timestamp=T0, **values)  # type: ignore[arg-type]


def test_unknown_close_reasons_are_refused() -> None:
    with pytest.raises(TradeError, match="close reason"):
        new_trade().close(reason="bored", actor="a", timestamp=T0)


@given(
    fills=st.lists(
        st.tuples(
            st.decimals(min_value=Decimal("0.001"), max_value=Decimal(10), places=3),
            st.decimals(min_value=Decimal(1), max_value=Decimal(1000), places=2),
        ),
        min_size=1,
        max_size=8,
    )
)
def test_average_entry_is_the_volume_weighted_price(fills: list[tuple[Decimal, Decimal]]) -> None:
    trade = new_trade(quantity=str(sum(q for q, _ in fills)))
    order = trade.submit_order(
        order_side="buy", quantity=str(sum(q for q, _ in fills)), reduce_only=False, timestamp=T0
    )
    for quantity, price in fills:
        trade.record_fill(client_order_id=order, quantity=quantity, price=price, timestamp=T0)
    total = sum(q for q, _ in fills)
    assert trade.quantity == total
    assert trade.entry_price == sum(q * p for q, p in fills) / total


def test_an_exit_made_by_another_order_takes_its_fee_off_the_realized_pnl() -> None:
    trade = new_trade()
    entry = trade.submit_order(order_side="buy", quantity="1", reduce_only=False, timestamp=T0)
    trade.record_fill(client_order_id=entry, quantity="1", price="100", fee="0.06", timestamp=T0)
    for quantity, price, fee in (("0.5", "104", "0.03"), ("0.5", "98", "0.02")):
        trade.record_exit(
            quantity=quantity,
            price=price,
            price_source="fill",
            fee=fee,
            detail="emergency close",
            timestamp=T0,
        )
    trade.close(reason="emergency", actor="flattener", timestamp=T0)
    # +2 and -1 on the price, less the entry fee AND both exit fees.
    assert trade.realized_pnl == Decimal(1) - Decimal("0.11")
    assert trade.exact


def test_an_exit_priced_at_the_mark_makes_the_record_inexact() -> None:
    trade = new_trade()
    entry = trade.submit_order(order_side="buy", quantity="1", reduce_only=False, timestamp=T0)
    trade.record_fill(client_order_id=entry, quantity="1", price="100", timestamp=T0)
    with pytest.raises(TradeError, match="fee must not be negative"):
        trade.record_exit(
            quantity="1", price="1", price_source="fill", fee="-1", detail="x", timestamp=T0
        )
    trade.record_exit(
        quantity="1", price="101", price_source="mark", detail="vanished", timestamp=T0
    )
    assert not trade.exact


def venue_order(cid: str, *, filled: str, status: str, average: str | None = "100") -> Order:
    return Order(
        id="v1",
        client_order_id=cid,
        symbol="BTC/USDT:USDT",
        side="buy",
        type="market",
        quantity=Decimal(1),
        filled=Decimal(filled),
        price=None,
        average_price=Decimal(average) if average else None,
        status=status,  # type: ignore[arg-type]
        reduce_only=False,
    )


def test_an_entry_the_venue_never_saw_is_settled_not_found_and_closes_the_trade_unfilled() -> None:
    trade = new_trade()
    entry = trade.submit_order(order_side="buy", quantity="1", reduce_only=False, timestamp=T0)
    closed = trade.settle_order(client_order_id=entry, order=None, actor="recon", timestamp=T0)
    assert closed and not trade.is_open and trade.close_reason == "unfilled"
    assert trade.orders[entry]["resolved"] == "not_found"


def test_an_entry_still_open_at_the_venue_leaves_the_trade_open_and_the_order_unresolved() -> None:
    trade = new_trade()
    entry = trade.submit_order(order_side="buy", quantity="1", reduce_only=False, timestamp=T0)
    order = venue_order(entry, filled="0", status="open", average=None)
    assert not trade.settle_order(client_order_id=entry, order=order, actor="x", timestamp=T0)
    assert trade.is_open and trade.unresolved_orders == [entry]


def test_an_entry_that_filled_in_part_is_settled_and_the_trade_stays_open() -> None:
    trade = new_trade()
    entry = trade.submit_order(order_side="buy", quantity="1", reduce_only=False, timestamp=T0)
    order = venue_order(entry, filled="0.4", status="canceled")
    assert not trade.settle_order(client_order_id=entry, order=order, actor="x", timestamp=T0)
    assert trade.is_open and trade.quantity == Decimal("0.4")
    assert trade.orders[entry]["resolved"] == "partially_filled"


def test_a_refused_entry_is_settled_with_the_refusal_as_its_outcome() -> None:
    trade = new_trade()
    entry = trade.submit_order(order_side="buy", quantity="1", reduce_only=False, timestamp=T0)
    closed = trade.settle_order(
        client_order_id=entry,
        order=None,
        missing=("rejected", "insufficient margin"),
        actor="executor",
        timestamp=T0,
    )
    assert closed and trade.orders[entry]["resolved"] == "rejected"
    resolved = [e for e in trade.collect_events() if isinstance(e, Trade.OrderResolved)]
    assert [e.detail for e in resolved] == ["insufficient margin"]
