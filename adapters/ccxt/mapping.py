"""Pure translation between ccxt's unified structures and the exchange port.

No I/O here: numbers, positions, orders and exceptions in, port values out. Every number
becomes a ``Decimal`` through ``str()`` (ccxt parses venue strings into floats; ``str`` of a
float is its shortest round-trip form, so the venue's decimal string comes back exactly).

Quantities: ccxt counts contract markets in *contracts* (``amount``, ``contracts``); the port
counts base currency. ``base = contracts x contractSize`` on the way in and ``contracts =
base / contractSize`` on the way out. Binance USD-M and Bybit linear contracts are 1 base
unit each, so the numbers are unchanged there; OKX-style venues (0.01 BTC per contract) get
the conversion.

Secrets: every message leaving this module goes through ``redact``, and the ccxt logger of
a venue is replaced by ``RedactingLogger``, because ccxt logs request headers (which hold
the API key) at DEBUG.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from domain.venue import (
    Balance,
    CashTransfer,
    Order,
    OrderRequest,
    OrderStatus,
    Position,
    PositionSide,
    TransferKind,
    VenueError,
    VenueUnavailable,
)

_STATUSES: dict[str, OrderStatus] = {
    s: s for s in ("open", "closed", "canceled", "expired", "rejected")
}
_SIGNATURE = re.compile(r"(signature|sign)=[0-9A-Za-z%+/=]+", re.IGNORECASE)
_MESSAGE_LIMIT = 400


# -- numbers -------------------------------------------------------------------------------


def dec(value: object) -> Decimal | None:
    """A ccxt number (float, int, str or Decimal) as a Decimal; None for missing or empty."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, Decimal):
        return value if value.is_finite() else None
    if not isinstance(value, int | float | str):
        return None
    text = str(value).strip()
    if not text:
        return None
    try:
        number = Decimal(text)
    except InvalidOperation:
        return None
    return _tidy(number) if number.is_finite() else None


def _tidy(number: Decimal) -> Decimal:
    # A float's "98000.0" and a venue's "0.01000000" become 98000 and 0.01: equal values,
    # and what lands in an event reads as the venue meant it.
    try:
        if number == number.to_integral_value():
            return number.quantize(Decimal(1))
        return number.normalize()
    except InvalidOperation:  # beyond the context's 28 digits: leave it as it came
        return number


def positive(value: object) -> Decimal | None:
    """``dec`` for prices, where the venues say 0 for 'none' (market orders, no average)."""
    number = dec(value)
    return number if number is not None and number > 0 else None


def contract_size(market: Mapping[str, Any]) -> Decimal:
    """Base units per contract of a ccxt market; spot markets count in base units."""
    if not market.get("contract"):
        return Decimal(1)
    size = positive(market.get("contractSize"))
    if size is None:
        raise VenueError(f"{market.get('symbol')}: the venue gives no contract size")
    return size


# -- positions, orders, balances -----------------------------------------------------------


def position_from_ccxt(raw: Mapping[str, Any], size: Decimal) -> Position | None:
    """A ccxt position as a port Position; None when it holds nothing.

    Raises VenueError when a non-empty position has no side: a position whose direction is
    unknown cannot be closed safely, so it must not be silently skipped either.
    """
    contracts = dec(raw.get("contracts"))
    if contracts is None or contracts == 0:
        return None
    side = raw.get("side")
    if side not in ("long", "short"):
        raise VenueError(f"{raw.get('symbol')}: position of {contracts} contracts has no side")
    own_size = positive(raw.get("contractSize")) or size
    return Position(
        symbol=str(raw["symbol"]),
        side=side,
        quantity=abs(contracts) * own_size,
        entry_price=dec(raw.get("entryPrice")) or Decimal(0),
        mark_price=positive(raw.get("markPrice")),
        unrealized_pnl=dec(raw.get("unrealizedPnl")) or Decimal(0),
        # ccxt derives `hedged` from Binance's positionSide (BOTH/LONG/SHORT) and Bybit's
        # positionIdx (0/1/2); a venue that does not say is taken as one-way.
        mode="hedge" if raw.get("hedged") is True else "one_way",
        leverage=positive(raw.get("leverage")),
    )


def order_from_ccxt(
    raw: Mapping[str, Any],
    size: Decimal,
    *,
    conditional: bool = False,
    position_side: PositionSide | None = None,
    sent: OrderRequest | None = None,
) -> Order:
    """A ccxt order as a port Order.

    ``sent`` is the request that created it: some venues (Bybit) acknowledge a new order
    with its ids only, so what they leave out is taken from the request, and a missing
    status means 'accepted, state not yet known' (``open``).
    """
    order_id = raw.get("id")
    if order_id is None or order_id == "":
        raise VenueError(f"{raw.get('symbol')}: the venue answered without an order id")
    amount = dec(raw.get("amount"))
    quantity = amount * size if amount is not None else (sent.quantity if sent else Decimal(0))
    filled = dec(raw.get("filled"))
    stop_price = positive(raw.get("triggerPrice"))
    conditional = conditional or stop_price is not None
    side = raw.get("side") or (sent.side if sent else None)
    if side not in ("buy", "sell"):
        raise VenueError(f"order {order_id}: the venue gives no side")
    reduce_only = raw.get("reduceOnly")
    if reduce_only is None:
        reduce_only = bool(sent and sent.reduce_only)
    return Order(
        id=str(order_id),
        client_order_id=raw.get("clientOrderId") or (sent.client_order_id if sent else None),
        symbol=str(raw.get("symbol") or (sent.symbol if sent else "")),
        side=side,
        type=_order_type(raw.get("type"), conditional, sent),
        quantity=quantity,
        filled=filled * size if filled is not None else Decimal(0),
        price=positive(raw.get("price")) or (sent.price if sent else None),
        average_price=positive(raw.get("average")),
        status=_status(raw.get("status")),
        reduce_only=bool(reduce_only),
        stop_price=stop_price or (sent.stop_price if sent else None),
        position_side=position_side or (sent.position_side if sent else None),
        conditional=conditional,
        fee=_fee(raw),
    )


def _fee(raw: Mapping[str, Any]) -> Decimal:
    """The order's fee in the settlement currency when the venue reports one; a fee paid in
    another currency (a BNB discount) is not convertible here and counts as unknown (0)."""
    fee = raw.get("fee")
    if not isinstance(fee, Mapping):
        return Decimal(0)
    symbol = str(raw.get("symbol") or "")
    settle = symbol.partition(":")[2]
    cost = dec(fee.get("cost"))
    if cost is None or (settle and fee.get("currency") not in (None, settle)):
        return Decimal(0)
    return abs(cost)


def _order_type(unified: object, conditional: bool, sent: OrderRequest | None) -> str:
    # ccxt folds Binance's STOP_MARKET into "market" and STOP into "limit" and keeps the
    # trigger price apart; the port calls a triggered market order "stop".
    kind = str(unified).lower() if unified else (sent.type if sent else "market")
    if conditional and kind in ("market", "stop"):
        return "stop"
    if conditional and kind == "limit":
        return "stop_limit"
    return kind


def _status(raw: object) -> OrderStatus:
    # None (an acknowledgement without state) and ccxt's transient "canceling": still there.
    return _STATUSES.get(str(raw), "open")


def balance_from_rows(
    rows: Iterable[Mapping[str, Any]],
    currency: str,
    *,
    currency_key: str,
    wallet_key: str,
    unrealized_key: str,
) -> Balance:
    """The settlement currency's row of a venue's raw balance answer.

    A row whose figures are missing or not numbers is a failed read (VenueUnavailable), never
    a balance of 0: the drawdown breaker would take a made-up zero for a crash. An account
    with no row for the currency holds none of it, which is a true 0.
    """
    for row in rows:
        if row.get(currency_key) == currency:
            wallet, unrealized = dec(row.get(wallet_key)), dec(row.get(unrealized_key))
            if wallet is None or unrealized is None:
                raise VenueUnavailable(
                    f"balance answer for {currency} lacks a number in {wallet_key!r} or "
                    f"{unrealized_key!r}: {dict(row)!r}"[:300]
                )
            return Balance(currency=currency, wallet=wallet, unrealized_pnl=unrealized)
    return Balance(currency=currency, wallet=Decimal(0), unrealized_pnl=Decimal(0))


# -- transfers -----------------------------------------------------------------------------


def transfer_from_ledger(
    entry: Mapping[str, Any],
    currency: str,
    kinds: Mapping[str, tuple[TransferKind, TransferKind]],
) -> CashTransfer | None:
    """The cash transfer a ccxt ledger entry records, or None when it records something else
    (a trade, a fee, funding, another currency).

    ``kinds`` maps the venue's own entry type (``info``'s ``incomeType`` / ``type``; ccxt's
    unified types mean different things per venue) to the kind for money in and money out;
    which way it went is ccxt's unified ``direction``. Raises VenueUnavailable for an entry
    of a transfer type without a usable amount or time: a transfer must never be guessed.
    """
    info = entry.get("info") or {}
    raw_type = str(info.get("incomeType", info.get("type")))
    if raw_type not in kinds or entry.get("currency") != currency:
        return None
    amount, millis = dec(entry.get("amount")), entry.get("timestamp")
    direction = entry.get("direction")
    if (
        amount is None
        or amount <= 0
        or not isinstance(millis, int)
        or direction not in ("in", "out")
    ):
        raise VenueUnavailable(
            f"ledger entry without amount, time or direction: {dict(info)!r}"[:300]
        )
    inflow, outflow = kinds[raw_type]
    venue_id = entry.get("id") or f"{raw_type}:{millis}:{amount}"
    return CashTransfer(
        venue_id=str(venue_id),
        kind=inflow if direction == "in" else outflow,
        amount=amount,
        currency=currency,
        at=datetime.fromtimestamp(millis / 1000, UTC),
    )


def refused(raw: Mapping[str, Any]) -> bool:
    """A refused element of a batch answer: ccxt marks it "rejected", with the venue's code."""
    return raw.get("status") == "rejected" and (raw.get("info") or {}).get("code") is not None


def match_batch_answer(raws: list[dict[str, Any]], sent: list[str]) -> list[dict[str, Any] | None]:
    """The batch answer's elements in the order of ``sent``, the client order ids of the
    orders sent (None where one cannot be told).

    ccxt sorts the parsed orders by time, so an accepted order is found by its client order
    id. A refusal carries neither id nor time, and a stable sort keeps the refusals in their
    order, so they fill the places left, in turn. An answer that does not add up tells
    nothing of any order in it."""
    accepted = {r.get("clientOrderId"): r for r in raws if not refused(r)}
    refusals = [r for r in raws if refused(r)]
    left = [cid for cid in sent if cid not in accepted]
    # Every element accounted for once: no id answered twice or that was not sent.
    if (
        len(raws) != len(sent)
        or len(left) != len(refusals)
        or len(accepted) != len(sent) - len(left)
    ):
        return [None] * len(sent)
    in_turn = dict(zip(left, refusals, strict=True))
    return [accepted.get(cid) or in_turn[cid] for cid in sent]


def plain(number: Decimal) -> str:
    """``number`` in positional notation, as venues take it (never ``1E+3``)."""
    return format(number, "f")
