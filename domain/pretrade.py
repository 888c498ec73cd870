"""Pre-trade controls: pure checks an opening order must pass before it is sent.

They sit between the policy gate and the venue (the executor calls them once, inside the
order flow, after the gate said yes). Each refusal has its own code:

- ``PRICE_COLLAR``: a limit or stop price further from the mark than ``price_collar`` (a
  fraction of the mark: 0.05 is 5 %). A market order has no price and is not collared.
- ``ORDER_QUANTITY_LIMIT`` / ``ORDER_NOTIONAL_LIMIT``: one order larger than
  ``max_order_quantity`` (base units) or ``max_order_notional`` (quote currency).
- ``ORDER_RATE_LIMIT``: ``max_orders_per_second`` opening orders of the account were already
  admitted in the last second (reduce-only orders never pass here: never throttled).
- ``DUPLICATE_ORDER``: an opening order of the same symbol, side and quantity was admitted
  less than ``duplicate_window_s`` seconds ago (under another intent key: the same key is
  one trade, ever, and is answered DUPLICATE before any of this).
- ``LOSS_STREAK_STOP``: the last ``loss_streak_losses`` closes within
  ``loss_streak_window_s`` seconds all lost; entries stop for ``loss_streak_cooldown_s``
  seconds or until an operator re-allows them (``Policy.LossStreakStopped`` / ``Cleared``).

Nothing here reads a clock or a store: callers pass ``now`` and what was recorded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from domain.errors import InvalidCommand
from domain.validation import decimal_value
from domain.venue import OrderRequest

ONE_SECOND = timedelta(seconds=1)
MAX_QUANTITY = Decimal(10) ** 12  # a typo of a few extra digits is refused, not the policy
MAX_RATE = 10_000  # orders per second: no venue takes more from one account
MAX_WINDOW_S = 7 * 24 * 3600  # a week


class PreTradeLimitsError(InvalidCommand):
    """A pre-trade control was given a value outside its rule."""


def _number(value: Any, name: str) -> Decimal:
    try:
        return decimal_value(value, name)
    except InvalidCommand as e:
        raise PreTradeLimitsError(str(e)) from None


def _whole(value: Any, name: str, low: int, high: int) -> int:
    number = _number(value, name)
    if number != number.to_integral_value() or not low <= number <= high:
        raise PreTradeLimitsError(
            f"{name} must be a whole number from {low} to {high:,}, got {value}"
        )
    return int(number)


@dataclass(frozen=True)
class PreTradeLimits:
    """The pre-trade controls of the policy. Construct with :meth:`validated`.

    Units: ``price_collar`` a fraction of the mark (0.05 = 5 %); ``max_order_quantity``
    base-currency units; ``max_order_notional`` the quote (settlement) currency;
    ``max_orders_per_second`` opening orders per second per account; the ``*_s`` fields
    seconds (``duplicate_window_s`` 0 turns the duplicate check off);
    ``loss_streak_losses`` a count of losing closes.
    """

    price_collar: Decimal
    max_order_quantity: Decimal
    max_order_notional: Decimal
    max_orders_per_second: int
    duplicate_window_s: Decimal
    loss_streak_losses: int
    loss_streak_window_s: int
    loss_streak_cooldown_s: int

    @classmethod
    def validated(cls, **values: Any) -> PreTradeLimits:
        """Every field, each checked; raises PreTradeLimitsError naming the field and rule."""
        missing = {f.name for f in fields(cls)} - values.keys()
        unknown = values.keys() - {f.name for f in fields(cls)}
        if missing or unknown:
            raise PreTradeLimitsError(
                f"pre-trade controls: missing {sorted(missing)}, unknown {sorted(unknown)}"
            )
        collar = _number(values["price_collar"], "price_collar")
        if not 0 < collar <= 1:
            raise PreTradeLimitsError(
                f"price_collar must be a fraction of the mark above 0 and at most 1 "
                f"(0.05 = 5 %), got {collar}"
            )
        quantity = _number(values["max_order_quantity"], "max_order_quantity")
        notional = _number(values["max_order_notional"], "max_order_notional")
        for name, value in (("max_order_quantity", quantity), ("max_order_notional", notional)):
            if not 0 < value <= MAX_QUANTITY:
                raise PreTradeLimitsError(
                    f"{name} must be above 0 and at most {MAX_QUANTITY:,}, got {value}"
                )
        rate = _whole(values["max_orders_per_second"], "max_orders_per_second", 1, MAX_RATE)
        window = _number(values["duplicate_window_s"], "duplicate_window_s")
        if not 0 <= window <= 3600:
            raise PreTradeLimitsError(
                f"duplicate_window_s must be between 0 (off) and 3600 seconds, got {window}"
            )
        losses = _whole(values["loss_streak_losses"], "loss_streak_losses", 1, 1000)
        streak_window = _whole(
            values["loss_streak_window_s"], "loss_streak_window_s", 1, MAX_WINDOW_S
        )
        cooldown = _whole(
            values["loss_streak_cooldown_s"], "loss_streak_cooldown_s", 1, MAX_WINDOW_S
        )
        return cls(collar, quantity, notional, rate, window, losses, streak_window, cooldown)

    def changed(self, **asked: Any) -> PreTradeLimits:
        """These limits with the fields given (not None) replaced, validated as a whole."""
        current = {f.name: getattr(self, f.name) for f in fields(self)}
        return self.validated(**(current | {k: v for k, v in asked.items() if v is not None}))

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


# A per-order notional well above the default position cap (10,000): the position cap binds
# first; this one stops a fat finger once an operator raises the position cap. The quantity
# bound is a last resort against a mistyped size whatever the asset's price.
DEFAULT_PRETRADE = PreTradeLimits.validated(
    price_collar="0.05",
    max_order_quantity="1000000",
    max_order_notional="100000",
    max_orders_per_second=10,
    duplicate_window_s="2",
    loss_streak_losses=5,
    loss_streak_window_s=3600,
    loss_streak_cooldown_s=3600,
)
PRETRADE_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(PreTradeLimits))


@dataclass(frozen=True)
class LossStop:
    """The loss-streak stop as the policy records it: entries stop until ``until`` (None:
    no stop recorded or it was cleared); closes at or before ``count_from`` never count
    again (they made a stop already, or an operator re-allowed entries after them)."""

    until: datetime | None = None
    count_from: datetime | None = None
    reason: str | None = None

    def active(self, now: datetime) -> bool:
        return self.until is not None and now < self.until


@dataclass(frozen=True)
class PreTradeState:
    """What the controls need from the policy, of one policy version."""

    limits: PreTradeLimits
    loss_stop: LossStop = LossStop()


@dataclass(frozen=True)
class ProposedOrder:
    """An opening order the executor is about to send. ``price``: a limit price;
    ``stop_price``: a stop's trigger price; both None for a market order."""

    symbol: str
    side: str  # buy | sell
    quantity: Decimal
    mark: Decimal
    price: Decimal | None = None
    stop_price: Decimal | None = None

    @classmethod
    def of(cls, request: OrderRequest, mark: Decimal) -> ProposedOrder:
        """The order ``request`` would place, against ``mark``."""
        return cls(
            request.symbol,
            request.side,
            request.quantity,
            mark,
            request.price,
            request.stop_price,
        )

    @property
    def notional(self) -> Decimal:
        """Quantity times the order's own price (limit, else trigger, else the mark)."""
        return self.quantity * (self.price or self.stop_price or self.mark)


@dataclass(frozen=True)
class RecentOrder:
    """An opening order admitted earlier (by any process) for the same account."""

    at: datetime
    symbol: str
    side: str
    quantity: Decimal


@dataclass(frozen=True)
class Close:
    """A closed trade as the loss-streak rule sees it."""

    closed_at: datetime
    realized_pnl: Decimal


@dataclass(frozen=True)
class PreTradeRefusal:
    code: str
    reason: str


def price_collar(order: ProposedOrder, collar: Decimal) -> PreTradeRefusal | None:
    """A limit or stop price more than ``collar`` (a fraction) away from the mark."""
    for name, price in (("limit", order.price), ("stop", order.stop_price)):
        if price is None:
            continue
        if price <= 0 or order.mark <= 0 or abs(price / order.mark - 1) > collar:
            return PreTradeRefusal(
                "PRICE_COLLAR",
                f"{name} price {price} is more than {collar:%} from the mark {order.mark}",
            )
    return None


def order_size(order: ProposedOrder, limits: PreTradeLimits) -> PreTradeRefusal | None:
    """One order above the per-order quantity or notional limit."""
    if order.quantity > limits.max_order_quantity:
        return PreTradeRefusal(
            "ORDER_QUANTITY_LIMIT",
            f"order quantity {order.quantity} exceeds the per-order limit "
            f"{limits.max_order_quantity}",
        )
    notional = order.notional
    if notional > limits.max_order_notional:
        return PreTradeRefusal(
            "ORDER_NOTIONAL_LIMIT",
            f"order notional {notional:.2f} exceeds the per-order limit "
            f"{limits.max_order_notional}",
        )
    return None


def order_rate_and_duplicate(
    order: ProposedOrder, recent: Sequence[RecentOrder], now: datetime, limits: PreTradeLimits
) -> PreTradeRefusal | None:
    """The duplicate check, then the rate throttle, against the account's ``recent`` opening
    orders. An order stamped after ``now`` (another process's clock ahead) counts as recent."""
    window = timedelta(seconds=float(limits.duplicate_window_s))
    for r in recent:
        if (
            window
            and now - r.at < window
            and (r.symbol, r.side, r.quantity) == (order.symbol, order.side, order.quantity)
        ):
            return PreTradeRefusal(
                "DUPLICATE_ORDER",
                f"an order {order.side} {order.quantity} {order.symbol} was sent "
                f"{max((now - r.at).total_seconds(), 0):.3f} s ago "
                f"(duplicate window {limits.duplicate_window_s} s)",
            )
    last_second = sum(1 for r in recent if now - r.at < ONE_SECOND)
    if last_second >= limits.max_orders_per_second:
        return PreTradeRefusal(
            "ORDER_RATE_LIMIT",
            f"{last_second} opening orders in the last second "
            f"(limit {limits.max_orders_per_second}/s)",
        )
    return None


def kept_for(limits: PreTradeLimits) -> timedelta:
    """How long an admitted order matters to the rate and duplicate checks."""
    return max(ONE_SECOND, timedelta(seconds=float(limits.duplicate_window_s)))


def loss_streak(
    closes: Sequence[Close], now: datetime, limits: PreTradeLimits, stop: LossStop
) -> Close | None:
    """The last close of a losing streak that stops entries, or None.

    A streak: the latest ``loss_streak_losses`` closes within ``loss_streak_window_s`` of
    ``now`` (and after ``stop.count_from``) all lost (realized PnL below 0). ``closes``:
    any order; closes without a figure are left out by the caller.
    """
    since = now - timedelta(seconds=limits.loss_streak_window_s)
    if stop.count_from is not None:
        since = max(since, stop.count_from)
    counted = sorted((c for c in closes if c.closed_at > since), key=lambda c: c.closed_at)
    latest = counted[-limits.loss_streak_losses :]
    if len(latest) < limits.loss_streak_losses or any(c.realized_pnl >= 0 for c in latest):
        return None
    return latest[-1]
