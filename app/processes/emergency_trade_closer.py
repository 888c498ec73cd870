"""Once the emergency flattener has the account flat, every trade still open is closed, each
for exactly what it held, from the venue's evidence (``app.commands.close_booking``): its share of
the flattener's closes of its (symbol, side) in this activation, with their fill price and
fee (reason ``emergency``); what was closed outside tradecore, at that fill; the mark only
for what no fill explains, and the event says so.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from uuid import UUID

from adapters.eventstore import TradecoreEventStore
from app.commands.close_booking import CloseBooker
from app.commands.trade_records import TradeCommands
from domain.base import event_id
from domain.emergency import Emergency
from domain.trade import Trade
from domain.venue import ExchangePort

log = logging.getLogger(__name__)


class EmergencyTradeCloser:
    def __init__(
        self,
        store: TradecoreEventStore,
        venue: ExchangePort,
        clock: Callable[[], datetime],
        open_trades: Callable[[], list[UUID]],
    ) -> None:
        self.trades = TradeCommands(store)
        self.booker = CloseBooker(store, venue, clock)
        self.open_trades = open_trades

    def __call__(self, emergency: Emergency) -> int:
        """Close every open trade for this activation; returns how many it closed."""
        trade_ids = self.open_trades()
        if not trade_ids:
            return 0
        by_key: dict[tuple[str, str], list[Trade]] = {}
        for trade_id in trade_ids:
            trade = self.trades.load(trade_id)
            if trade.is_open:
                by_key.setdefault((trade.symbol, trade.side), []).append(trade)
        cause = event_id(emergency.id, emergency.version)  # the flat record
        closed = sum(
            len(
                self.booker.book(
                    key,
                    trades,
                    activation_number=emergency.activation_number,
                    actor="flattener",
                    cause=cause,
                    reason="emergency",
                )
            )
            for key, trades in sorted(by_key.items())
        )
        if closed:
            log.warning("%d open trade(s) closed after the emergency flatten", closed)
        return closed
