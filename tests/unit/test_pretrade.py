"""The pre-trade controls' rules (domain/pretrade.py) and their policy fields: each control
refuses what it must and passes what it must; bad values never become the policy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from domain.errors import InvalidCommand
from domain.policy import Policy
from domain.pretrade import (
    DEFAULT_PRETRADE,
    Close,
    LossStop,
    PreTradeLimits,
    ProposedOrder,
    RecentOrder,
    loss_streak,
    order_rate_and_duplicate,
    order_size,
    price_collar,
)
from domain.venue import OrderRequest

BTC = "BTC/USDT:USDT"
NOW = datetime(2026, 11, 30, 6, 0, tzinfo=UTC)
MARK = Decimal(50_000)


def limits(**changes: Any) -> PreTradeLimits:
    return DEFAULT_PRETRADE.changed(**changes)


def order(quantity: str = "0.01", **kwargs: Any) -> ProposedOrder:
    return ProposedOrder(BTC, "buy", Decimal(quantity), MARK, **kwargs)


def ago(seconds: float) -> datetime:
    return NOW - timedelta(seconds=seconds)


# -- price collar ------------------------------------------------------------------------------


def test_a_limit_price_beyond_the_collar_is_refused() -> None:
    request = OrderRequest(BTC, "buy", Decimal("0.01"), "c1", "limit", price=Decimal(47_000))

    refusal = price_collar(ProposedOrder.of(request, MARK), Decimal("0.05"))

    assert refusal is not None and refusal.code == "PRICE_COLLAR"
    assert "47000" in refusal.reason


def test_a_stop_price_beyond_the_collar_is_refused() -> None:
    refusal = price_collar(order(stop_price=Decimal(53_000)), Decimal("0.05"))
    assert refusal is not None and refusal.code == "PRICE_COLLAR"


def test_prices_within_the_collar_and_market_orders_pass() -> None:
    request = OrderRequest(BTC, "buy", Decimal("0.01"), "c1", "limit", price=Decimal(47_600))
    assert price_collar(ProposedOrder.of(request, MARK), Decimal("0.05")) is None
    assert price_collar(order(stop_price=Decimal(52_400)), Decimal("0.05")) is None
    assert price_collar(order(), Decimal("0.05")) is None  # market: no price to collar


# -- order size --------------------------------------------------------------------------------


def test_an_order_above_the_quantity_limit_is_refused_and_one_at_it_passes() -> None:
    rule = limits(max_order_quantity="0.5")
    refused = order_size(order("0.50000001"), rule)
    assert refused is not None and refused.code == "ORDER_QUANTITY_LIMIT"
    assert order_size(order("0.5"), rule) is None


def test_an_order_above_the_notional_limit_is_refused_and_one_below_it_passes() -> None:
    rule = limits(max_order_notional="1000")
    refused = order_size(order("0.021"), rule)  # 1,050 at the mark
    assert refused is not None and refused.code == "ORDER_NOTIONAL_LIMIT"
    assert order_size(order("0.019"), rule) is None  # 950
    # A limit order's notional is at its own price.
    assert order_size(order("0.021", price=Decimal(47_000)), rule) is None  # 987


# -- duplicate and rate ------------------------------------------------------------------------


def test_the_same_symbol_side_and_quantity_within_the_window_is_a_duplicate() -> None:
    recent = [RecentOrder(ago(1.5), BTC, "buy", Decimal("0.01"))]

    refusal = order_rate_and_duplicate(order(), recent, NOW, DEFAULT_PRETRADE)

    assert refusal is not None and refusal.code == "DUPLICATE_ORDER"


def test_a_repeat_after_the_window_or_of_another_size_or_side_is_not_a_duplicate() -> None:
    old = [RecentOrder(ago(2.5), BTC, "buy", Decimal("0.01"))]
    other = [
        RecentOrder(ago(0.5), BTC, "buy", Decimal("0.02")),
        RecentOrder(ago(0.5), BTC, "sell", Decimal("0.01")),
        RecentOrder(ago(0.5), "ETH/USDT:USDT", "buy", Decimal("0.01")),
    ]
    assert order_rate_and_duplicate(order(), old, NOW, DEFAULT_PRETRADE) is None
    assert order_rate_and_duplicate(order(), other, NOW, DEFAULT_PRETRADE) is None
    off = limits(duplicate_window_s="0")
    assert order_rate_and_duplicate(order(), old[:0] + other[:0], NOW, off) is None
    assert (
        order_rate_and_duplicate(order(), [RecentOrder(NOW, BTC, "buy", Decimal("0.01"))], NOW, off)
        is None
    )


def test_the_throttle_refuses_once_the_last_second_is_full_and_passes_after_it() -> None:
    full = [RecentOrder(ago(0.05 * i), BTC, "buy", Decimal(i + 1)) for i in range(10)]
    refusal = order_rate_and_duplicate(order(), full, NOW, DEFAULT_PRETRADE)
    assert refusal is not None and refusal.code == "ORDER_RATE_LIMIT"
    assert "10/s" in refusal.reason

    assert order_rate_and_duplicate(order(), full[:9], NOW, DEFAULT_PRETRADE) is None
    aged = [RecentOrder(ago(1.0 + 0.01 * i), BTC, "buy", Decimal(i + 1)) for i in range(10)]
    assert order_rate_and_duplicate(order(), aged, NOW, DEFAULT_PRETRADE) is None


def test_an_order_stamped_by_a_clock_ahead_still_counts() -> None:
    ahead = [RecentOrder(NOW + timedelta(seconds=0.3), BTC, "buy", Decimal("0.01"))]
    refusal = order_rate_and_duplicate(order(), ahead, NOW, DEFAULT_PRETRADE)
    assert refusal is not None and refusal.code == "DUPLICATE_ORDER"


# -- loss streak -------------------------------------------------------------------------------


def test_n_losing_closes_in_a_row_within_the_window_make_a_streak() -> None:
    closes = [Close(ago(60 * i), Decimal(-1)) for i in range(1, 6)]
    last = loss_streak(closes, NOW, DEFAULT_PRETRADE, LossStop())
    assert last == closes[0]


def test_a_win_among_the_last_n_or_a_loss_outside_the_window_is_no_streak() -> None:
    four = [Close(ago(60 * i), Decimal(-1)) for i in range(1, 5)]
    won = [*four, Close(ago(30), Decimal("0.5"))]
    old = [*four, Close(ago(3601), Decimal(-1))]
    assert loss_streak(won, NOW, DEFAULT_PRETRADE, LossStop()) is None
    assert loss_streak(old, NOW, DEFAULT_PRETRADE, LossStop()) is None
    assert loss_streak(four, NOW, DEFAULT_PRETRADE, LossStop()) is None


def test_closes_before_the_stop_or_the_operators_reallowance_never_count_again() -> None:
    closes = [Close(ago(60 * i), Decimal(-1)) for i in range(1, 6)]
    assert loss_streak(closes, NOW, DEFAULT_PRETRADE, LossStop(count_from=ago(60))) is None


# -- the policy fields -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("price_collar", "0", "price_collar must be a fraction"),
        ("price_collar", "5", "price_collar must be a fraction"),
        ("max_order_quantity", "-1", "max_order_quantity must be above 0"),
        ("max_order_notional", "1e13", "max_order_notional must be above 0"),
        ("max_orders_per_second", "0", "max_orders_per_second must be a whole number"),
        ("max_orders_per_second", "2.5", "max_orders_per_second must be a whole number"),
        ("duplicate_window_s", "-1", "duplicate_window_s must be between 0"),
        ("loss_streak_losses", "abc", "loss_streak_losses"),
        ("loss_streak_window_s", "0", "loss_streak_window_s must be a whole number"),
        ("loss_streak_cooldown_s", "999999999", "loss_streak_cooldown_s must be a whole"),
    ],
)
def test_a_bad_control_value_is_refused_naming_the_field(field: str, value: str, says: str) -> None:
    policy = Policy.create(actor="op", reason="r", timestamp=NOW)
    version = policy.version

    with pytest.raises(InvalidCommand, match=says):
        policy.update_pretrade({field: value}, actor="op", reason="r", timestamp=NOW)

    assert policy.pretrade == DEFAULT_PRETRADE and policy.version == version


def test_a_control_change_is_one_event_and_an_unchanged_one_records_nothing() -> None:
    policy = Policy.create(actor="op", reason="r", timestamp=NOW)

    assert policy.update_pretrade(
        {"price_collar": "0.02", "max_orders_per_second": "3"},
        actor="op",
        reason="tighten",
        timestamp=NOW,
    )
    assert not policy.update_pretrade(
        {"price_collar": "0.020"}, actor="op", reason="same", timestamp=NOW
    )

    events = policy.collect_events()
    assert [type(e).__name__ for e in events] == ["Created", "PreTradeLimitsUpdated"]
    assert (policy.pretrade.price_collar, policy.pretrade.max_orders_per_second) == (
        Decimal("0.02"),
        3,
    )


def test_a_loss_streak_stop_is_recorded_once_and_an_operator_clears_it() -> None:
    policy = Policy.create(actor="op", reason="r", timestamp=NOW)
    last_loss = ago(10)

    assert policy.stop_for_loss_streak(
        losses=5, last_loss_at=last_loss, actor="loss-streak-stop", timestamp=NOW
    )
    assert not policy.stop_for_loss_streak(
        losses=5, last_loss_at=last_loss, actor="loss-streak-stop", timestamp=NOW
    )
    stop = policy.pretrade_state.loss_stop
    assert stop.active(NOW + timedelta(seconds=3599)) and not stop.active(NOW + timedelta(hours=1))
    assert stop.reason is not None and "policy reallow-entries" in stop.reason

    assert policy.clear_loss_streak_stop(actor="op", reason="looked", timestamp=NOW)
    assert not policy.pretrade_state.loss_stop.active(NOW)
    assert policy.loss_count_from == NOW
    assert not policy.clear_loss_streak_stop(actor="op", reason="again", timestamp=NOW)
