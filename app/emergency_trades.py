"""Once the emergency flattener has the account flat, every trade still open is closed with
reason ``emergency``, at the price the flattener's closes got for its symbol and side.

The flattener closes venue positions, not trades; a position may be several trades (and
external quantity). So each open trade records an exit of what it held at the average close
price of its (symbol, side) in this activation, taken from the Emergency's own
``PositionsClosed`` records; the mark stands in where the flattener did not close that
side itself (the position had already gone), and says so in the event.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from uuid import UUID

from adapters.eventstore import TradecoreEventStore
from app.trades import TradeCommands
from domain.base import event_id
from domain.emergency import Emergency
from domain.ids import EMERGENCY_ID
from domain.trade import Trade
from domain.venue import ExchangePort, VenueError

log = logging.getLogger(__name__)


class EmergencyTradeCloser:
    def __init__(
        self,
        store: TradecoreEventStore,
        venue: ExchangePort,
        clock: Callable[[], datetime],
        open_trades: Callable[[], list[UUID]],
    ) -> None:
        self.store = store
        self.trades = TradeCommands(store)
        self.venue = venue
        self.clock = clock
        self.open_trades = open_trades

    def __call__(self, emergency: Emergency) -> int:
        """Close every open trade for this activation; returns how many it closed."""
        trade_ids = self.open_trades()
        if not trade_ids:
            return 0
        prices = close_prices(self.store, emergency.activation_number)
        closed = 0
        for trade_id in trade_ids:
            trade = self.trades.load(trade_id)
            if not trade.is_open:
                continue
            price, source = self._exit_price(trade, prices)
            detail = f"closed by the emergency flattener (activation {emergency.activation_number})"
            cause = event_id(emergency.id, emergency.version)  # the flat record
            closed += self.trades.update(
                trade_id, _closer(price, source, detail, self.clock(), cause)
            )
        if closed:
            log.warning("%d open trade(s) closed with reason emergency", closed)
        return closed

    def _exit_price(
        self, trade: Trade, prices: dict[tuple[str, str], Decimal]
    ) -> tuple[Decimal, str]:
        known = prices.get((trade.symbol, trade.side))
        if known is not None:
            return known, "fill"
        try:
            return self.venue.fetch_mark_price(trade.symbol), "mark"
        except VenueError:
            return trade.entry_price or Decimal(1), "entry"


def _closer(
    price: Decimal, source: str, detail: str, now: datetime, cause: UUID
) -> Callable[[Trade], bool]:
    def close(trade: Trade) -> bool:
        if not trade.is_open:
            return False  # someone else closed it meanwhile
        if trade.quantity > 0:
            trade.record_exit(
                quantity=trade.quantity,
                price=price,
                price_source=source,
                detail=detail,
                timestamp=now,
            )
        trade.close(reason="emergency", actor="flattener", timestamp=now, causation_id=cause)
        return True

    return close


def close_prices(
    store: TradecoreEventStore, activation_number: int
) -> dict[tuple[str, str], Decimal]:
    """Average close price per (symbol, side) of one activation's flatten closes."""
    quantity: dict[tuple[str, str], Decimal] = {}
    cost: dict[tuple[str, str], Decimal] = {}
    for event in store.events.get(EMERGENCY_ID, desc=True):
        if isinstance(event, Emergency.Activated):
            break
        if not isinstance(event, Emergency.PositionsClosed):
            continue
        if event.activation_number != activation_number:
            continue
        for close in event.closes:
            if close.get("average_price") is None:
                continue
            key = (str(close["symbol"]), str(close["side"]))
            q = Decimal(close["quantity"])
            quantity[key] = quantity.get(key, Decimal(0)) + q
            cost[key] = cost.get(key, Decimal(0)) + q * Decimal(close["average_price"])
    return {key: cost[key] / q for key, q in quantity.items() if q > 0}
