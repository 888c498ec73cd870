"""How trades whose position is gone from the venue are booked: the one mechanism behind the
emergency closer (after flat), reconciliation (after a restart, perhaps mid-flatten) and the
flattener's look-up of close orders whose answer was lost.

Each open trade of a (symbol, side) records exits for exactly what it held, from the venue's
evidence, oldest trade first:

1. closes made outside tradecore (the venue's fills of orders that are not tradecore's own,
   where the venue lists them: ``FillHistory``), for what the flattener did not close;
2. the emergency flattener's closes of the activation (``PositionsClosed``, and close orders
   whose answer was lost, looked up by their client order id), with their fill price and
   fee;
3. what neither explains, at the mark (``price_source`` says so; the trade is then not
   ``exact`` and the sizing agent does not learn from it).

A trade closed by any part of the flattener's closes has reason ``emergency``, else
``external``. So whichever of them observes the vanished position first books the same
figures, and none of them books an emergency close as ``external`` at the mark.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import partial
from typing import Any
from uuid import UUID

from adapters.eventstore import TradecoreEventStore
from adapters.repository import guard
from adapters.venues import retry_transient
from app.commands.trade_records import TradeCommands
from domain.base import event_id
from domain.emergency import Emergency
from domain.ids import EMERGENCY_ID
from domain.trade import Trade
from domain.venue import ExchangePort, FillHistory, VenueError

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (symbol, position side)
# Client order ids tradecore gives its own orders (a trade's, the flattener's): a fill of any
# other order on the account was made outside tradecore.
OWN_ORDER_PREFIXES = ("tct-", "tcx")


@dataclass(frozen=True)
class Piece:
    """One closing execution: ``quantity`` at ``price`` with its ``fee`` (settlement
    currency). ``emergency``: the flattener's; ``cause``: the event that recorded it."""

    quantity: Decimal
    price: Decimal
    fee: Decimal
    emergency: bool
    detail: str
    cause: UUID | None = None


# -- the emergency's record ------------------------------------------------------------------


def activation_events(store: TradecoreEventStore, activation_number: int) -> list[Any]:
    """The emergency's events of one activation, oldest first (one read of the store).
    Raises StoreUnavailable."""

    def read() -> list[Any]:
        found: list[Any] = []
        for event in store.events.get(EMERGENCY_ID, desc=True):
            if isinstance(event, Emergency.Activated):
                if event.activation_number == activation_number:
                    break
                continue
            if getattr(event, "activation_number", None) == activation_number:
                found.append(event)
        return found[::-1]

    return guard(read)


def emergency_pieces(record: list[Any]) -> dict[Key, list[Piece]]:
    """The flattener's recorded closes in an activation's ``record``, by (symbol, side)."""
    pieces: dict[Key, list[Piece]] = {}
    for event in record:
        if not isinstance(event, Emergency.PositionsClosed):
            continue
        cause = event_id(event.originator_id, event.originator_version)
        for close in event.closes:
            piece = _piece(close, event.activation_number, cause)
            if piece is not None:
                pieces.setdefault((str(close["symbol"]), str(close["side"])), []).append(piece)
    return pieces


def closed_positions(record: list[Any]) -> set[Key]:
    """The (symbol, side) positions the flattener's recorded closes in ``record`` hit."""
    return set(emergency_pieces(record))


def lost_close_orders(record: list[Any]) -> list[dict[str, Any]]:
    """Close orders of an activation's ``record`` whose fill is not on record, each with the
    ``attempt`` that sent it: those whose outcome was recorded as unknown, and those whose
    outcome was never recorded at all (the run that sent them lost the store, or died,
    before it could say; a close refused before it reached the venue is among them too, and
    its look-up finds nothing). Unknown is not "none": each is asked for."""
    planned: dict[str, dict[str, Any]] = {}
    recorded: set[str] = set()
    for event in record:
        if isinstance(event, Emergency.FlattenAttempted):
            for order in event.close_orders:
                planned[str(order["client_order_id"])] = {**order, "attempt": event.attempt}
        elif isinstance(event, Emergency.PositionsClosed):
            recorded |= {str(c["client_order_id"]) for c in event.closes if "client_order_id" in c}
    return [planned[cid] for cid in sorted(set(planned) - recorded)]


def look_up_lost_closes(record: list[Any], venue: ExchangePort) -> list[dict[str, Any]]:
    """Each lost close order of ``record`` (``lost_close_orders``) as the venue shows it
    now, when it filled: close entries for ``Emergency.record_looked_up_closes``. An order
    the venue cannot show now is left for the next look."""
    found = []
    for order in lost_close_orders(record):
        cid, symbol = str(order["client_order_id"]), str(order["symbol"])
        try:
            at_venue = retry_transient(partial(venue.fetch_order_by_client_id, cid, symbol))
        except VenueError as e:
            log.warning("close order %s still unknown: %s", cid, e)
            continue
        if at_venue is None or at_venue.filled <= 0 or at_venue.average_price is None:
            continue
        found.append(
            {
                "attempt": order["attempt"],
                "symbol": symbol,
                "side": order["side"],
                "quantity": at_venue.filled,
                "average_price": at_venue.average_price,
                "fee": at_venue.fee,
                "complete": at_venue.filled >= Decimal(order["quantity"]),
                "client_order_id": cid,
            }
        )
    return found


def _piece(close: dict[str, Any], activation_number: int, cause: UUID | None) -> Piece | None:
    if close.get("average_price") is None or Decimal(close["quantity"]) <= 0:
        return None
    return Piece(
        quantity=Decimal(close["quantity"]),
        price=Decimal(close["average_price"]),
        fee=Decimal(close.get("fee") or 0),
        emergency=True,
        detail=(
            f"closed by the emergency flattener (activation {activation_number}, "
            f"order {close.get('client_order_id', 'unknown')})"
        ),
        cause=cause,
    )


# -- the booking -----------------------------------------------------------------------------


class CloseBooker:
    """Books the open trades of a (symbol, side) the venue no longer holds."""

    def __init__(
        self, store: TradecoreEventStore, venue: ExchangePort, clock: Callable[[], datetime]
    ) -> None:
        self.store = store
        self.trades = TradeCommands(store)
        self.venue = venue
        self.clock = clock

    def book(
        self,
        key: Key,
        trades: Sequence[Trade],
        *,
        activation_number: int | None,
        actor: str,
        cause: UUID | None = None,
        look_up_lost: bool = False,
        reason: str = "external",
    ) -> list[UUID]:
        """Close ``trades`` (open, of ``key``) from the evidence; returns those it closed.

        ``activation_number``: the emergency whose flatten closes count (None: none);
        ``look_up_lost``: also ask the venue for its close orders whose answer was lost
        (read only: the flattener records them); ``cause``: the closes' causation id when
        not the flatten record of the close itself; ``reason``: the close reason of a trade
        that held nothing to exit. Raises StoreUnavailable."""
        trades = sorted((t for t in trades if t.is_open), key=lambda t: t.opened_at)
        if not trades:
            return []
        emergency: list[Piece] = []
        if activation_number is not None:
            record = activation_events(self.store, activation_number)
            emergency = emergency_pieces(record).get(key, [])
            if look_up_lost:
                lost = look_up_lost_closes(record, self.venue)
                emergency += [
                    p
                    for c in lost
                    if (c["symbol"], c["side"]) == key
                    and (p := _piece(c, activation_number, None)) is not None
                ]
        held = sum((t.quantity for t in trades), Decimal(0))
        unexplained = held - sum((p.quantity for p in emergency), Decimal(0))
        outside = (
            self._outside(key, unexplained, min(t.opened_at for t in trades))
            if unexplained > 0
            else []
        )
        shares = allocate(trades, [*outside, *emergency])
        mark: list[tuple[Decimal, str]] = []  # fetched once, if some quantity needs it
        closed = []
        for trade in trades:
            pieces = shares.get(trade.id, [])
            rest = trade.quantity - sum((p.quantity for p in pieces), Decimal(0))
            if rest > 0 and not mark:
                mark.append(self._fallback(key, trade))
            change = _booking(
                pieces,
                mark[0] if rest > 0 else None,
                actor=actor,
                cause=cause,
                reason=reason,
                now=self.clock(),
            )
            if self.trades.update(trade.id, change):
                closed.append(trade.id)
        return closed

    def _outside(self, key: Key, wanted: Decimal, since: datetime) -> list[Piece]:
        """Closes of ``key`` made outside tradecore since ``since``, oldest first, up to
        ``wanted``; [] when the venue cannot list its fills."""
        if not isinstance(self.venue, FillHistory):
            return []
        venue: FillHistory = self.venue
        symbol, side = key
        closing = "sell" if side == "long" else "buy"
        try:
            fills = retry_transient(partial(venue.fetch_account_fills, symbol, since))
        except VenueError as e:
            log.warning("cannot list the fills of %s (%s): the mark stands in", symbol, e)
            return []
        pieces = []
        for fill in fills:
            if wanted <= 0:
                break
            if fill.side != closing or fill.position_side not in (None, side):
                continue
            if (fill.client_order_id or "").startswith(OWN_ORDER_PREFIXES):
                continue
            take = min(fill.quantity, wanted)
            pieces.append(
                Piece(
                    quantity=take,
                    price=fill.price,
                    fee=fill.fee * take / fill.quantity,
                    emergency=False,
                    detail=(
                        f"closed outside tradecore (venue order {fill.client_order_id}, "
                        f"{fill.at.isoformat()})"
                    ),
                )
            )
            wanted -= take
        return pieces

    def _fallback(self, key: Key, trade: Trade) -> tuple[Decimal, str]:
        try:
            return retry_transient(partial(self.venue.fetch_mark_price, key[0])), "mark"
        except VenueError:
            return trade.entry_price or Decimal(1), "entry"


def allocate(trades: Sequence[Trade], pieces: Sequence[Piece]) -> dict[UUID, list[Piece]]:
    """The pieces shared out to the trades in order, each trade up to what it holds; a
    piece split between two trades splits its fee by quantity. What is left of the pieces
    belongs to no open trade and is left out."""
    shares: dict[UUID, list[Piece]] = {}
    queue = list(pieces)
    for trade in trades:
        room = trade.quantity
        while room > 0 and queue:
            piece = queue[0]
            take = min(piece.quantity, room)
            fee = piece.fee if take == piece.quantity else piece.fee * take / piece.quantity
            shares.setdefault(trade.id, []).append(
                Piece(take, piece.price, fee, piece.emergency, piece.detail, piece.cause)
            )
            room -= take
            if take == piece.quantity:
                queue.pop(0)
            else:
                queue[0] = Piece(
                    piece.quantity - take,
                    piece.price,
                    piece.fee - fee,
                    piece.emergency,
                    piece.detail,
                    piece.cause,
                )
    return shares


def _booking(
    pieces: list[Piece],
    fallback: tuple[Decimal, str] | None,
    *,
    actor: str,
    cause: UUID | None,
    reason: str,
    now: datetime,
) -> Callable[[Trade], bool]:
    def close(trade: Trade) -> bool:
        if not trade.is_open:
            return False  # someone else closed it meanwhile
        exited = trade.quantity > 0
        for piece in pieces:
            quantity = min(piece.quantity, trade.quantity)
            if quantity <= 0:
                break
            trade.record_exit(
                quantity=quantity,
                price=piece.price,
                price_source="fill",
                fee=piece.fee,
                detail=piece.detail,
                timestamp=now,
            )
        if trade.quantity > 0 and fallback is not None:
            price, source = fallback
            trade.record_exit(
                quantity=trade.quantity,
                price=price,
                price_source=source,
                detail="the venue no longer holds this position and shows no fill for it",
                timestamp=now,
            )
        emergency = [p for p in pieces if p.emergency]
        if emergency:
            reason_now = "emergency"
        elif exited:
            reason_now = "external"
        else:
            reason_now = reason  # it held nothing: whoever closes it says why
        trade.close(
            reason=reason_now,
            actor=actor,
            timestamp=now,
            causation_id=cause or (emergency[-1].cause if emergency else None),
        )
        return True

    return close
