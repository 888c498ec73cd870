"""What the venue holds decides how much an entry may add: the exposure caps, and the
leverage the venue applies. Used by the executor only, inside the order flow, right before
an order that opens or grows risk is sent (reduce-only orders never come here).

- ``max_position_notional`` caps the (symbol, side) position: its notional at the mark, plus
  the resting opening (not reduce-only) orders of that symbol and side, plus the new order.
- ``max_leverage`` caps the account: every position's notional at its mark, plus every
  resting opening order, plus the new order, at most ``max_leverage`` x equity (the equity
  the new order leaves after its entry cost, ``ENTRY_COST``).

An entry over a cap is sized down to what is left, naming the cap; with nothing (less than
``MIN_ENTRY``) left it is refused (``NOTIONAL_CAP``, ``ACCOUNT_LEVERAGE_CAP``). Resting
orders are valued at their limit (or trigger) price; a non-reduce-only order counts as
opening even where, in one-way mode, it would reduce the other side: the caps err towards
less exposure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal

from adapters.venues import retry_transient
from domain.venue import ExchangePort, Order, Position, PositionSide, VenueError

QUANTITY_STEP = Decimal("0.00000001")
POSITION_CAP = "max_position_notional"
ACCOUNT_CAP = "max_leverage"
# Taker fee and slippage of an entry, as a fraction of its notional, on the side of caution
# (Binance USD-M and Bybit take 0.05 % and 0.055 %; the paper venue 0.04 % + 0.05 %).
ENTRY_COST = Decimal("0.002")
# The least a cut entry may be, settlement currency: the smallest order Binance USD-M and
# Bybit take (5 USDT on most linear contracts). Less than this left is nothing left.
MIN_ENTRY = Decimal(5)
CODES = {POSITION_CAP: "NOTIONAL_CAP", ACCOUNT_CAP: "ACCOUNT_LEVERAGE_CAP"}


@dataclass(frozen=True)
class Exposure:
    """The venue's exposure as read for one entry, settlement currency."""

    position: Decimal  # the (symbol, side) position at the mark, with its resting openings
    account: Decimal  # every position at the mark, with every resting opening order
    equity: Decimal


@dataclass(frozen=True)
class Room:
    """What an entry may have: ``notional`` (<= asked) and ``quantity`` at the mark, the
    caps that cut it, or ``refusal`` (code, reason) when nothing is left."""

    notional: Decimal
    quantity: Decimal
    capped_by: tuple[str, ...]
    exposure: Exposure
    refusal: tuple[str, str] | None = None


def read_exposure(venue: ExchangePort, symbol: str, side: PositionSide) -> Exposure:
    """The venue's positions, resting orders and equity now. Raises VenueError."""
    positions = retry_transient(venue.fetch_positions)
    orders = [o for o in retry_transient(venue.fetch_open_orders) if not o.reduce_only]
    equity = retry_transient(venue.fetch_balance).equity
    marks = {p.symbol: p.mark_price or p.entry_price for p in positions}
    resting = [(o, _order_notional(venue, o, marks)) for o in orders]
    return Exposure(
        position=_held(positions, symbol, side)
        + sum((n for o, n in resting if o.symbol == symbol and _side(o) == side), Decimal(0)),
        account=sum((p.notional for p in positions), Decimal(0))
        + sum((n for _, n in resting), Decimal(0)),
        equity=equity,
    )


def room(
    exposure: Exposure,
    *,
    asked: Decimal,
    mark: Decimal,
    max_position_notional: Decimal | None,
    max_leverage: Decimal | None,
) -> Room:
    """``asked`` (settlement currency) cut to what the caps leave, at ``mark``."""
    left: dict[str, Decimal] = {}
    if max_position_notional is not None:
        left[POSITION_CAP] = max_position_notional - exposure.position
    if max_leverage is not None:
        # The order's own entry cost lowers equity as it fills: keep room for it, so the
        # account is within the cap after the fill too (and a venue at 1x has the margin).
        left[ACCOUNT_CAP] = (max_leverage * exposure.equity - exposure.account) / (
            1 + max_leverage * ENTRY_COST
        )
    notional = min([asked, *left.values()])
    capped = tuple(name for name, value in left.items() if value < asked)
    quantity = (max(notional, Decimal(0)) / mark).quantize(QUANTITY_STEP, rounding=ROUND_DOWN)
    if capped and quantity * mark < MIN_ENTRY:
        quantity = Decimal(0)  # what is left is dust: no venue takes it
    if quantity > 0:
        if capped:  # the order's own notional: what is left, rounded down to the step
            notional = quantity * mark
        return Room(notional, quantity, capped, exposure)
    if not capped:  # the executor refuses an intent that buys nothing before it asks
        raise ValueError(f"notional {asked} buys nothing at {mark}")
    binding = min(capped, key=lambda name: left[name])
    code = CODES[binding]
    reason = (
        f"{binding} leaves nothing for this entry: position {exposure.position:.2f} "
        f"(with resting orders) of cap {max_position_notional}"
        if binding == POSITION_CAP
        else f"{binding} leaves nothing for this entry: open notional {exposure.account:.2f} "
        f"(with resting orders) of {max_leverage} x equity {exposure.equity:.2f}"
    )
    return Room(Decimal(0), Decimal(0), capped, exposure, (code, reason))


def set_venue_leverage(venue: ExchangePort, symbol: str, leverage: Decimal) -> str | None:
    """Make the venue's leverage for ``symbol`` equal ``leverage`` and read it back: None
    when it is, else why not (the venue refused or could not be reached, or it reads back
    another value). Setting is idempotent, so transient failures are retried."""
    try:
        retry_transient(lambda: venue.set_leverage(symbol, leverage))
        now = retry_transient(lambda: venue.fetch_leverage(symbol))
    except VenueError as e:
        return f"the venue did not set leverage {leverage} on {symbol}: {e}"
    if now != leverage:
        return f"the venue's leverage on {symbol} reads {now} after setting {leverage}"
    return None


def _held(positions: Sequence[Position], symbol: str, side: PositionSide) -> Decimal:
    return sum((p.notional for p in positions if (p.symbol, p.side) == (symbol, side)), Decimal(0))


def _side(order: Order) -> PositionSide:
    if order.position_side is not None:
        return order.position_side
    return "long" if order.side == "buy" else "short"


def _order_notional(venue: ExchangePort, order: Order, marks: dict[str, Decimal]) -> Decimal:
    price = order.price or order.stop_price or marks.get(order.symbol)
    if price is None:
        price = retry_transient(lambda: venue.fetch_mark_price(order.symbol))
    return order.remaining * price
