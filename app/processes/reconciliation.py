"""Reconciliation of the trade store with what the venue shows (on start and at an interval).

- An order whose outcome is unknown (a timeout the executor could not resolve) is looked up
  by its client order id: its fills are recorded, or, when the venue has no such order, it is
  resolved as never arrived.
- A venue position tradecore does not know (or more of one than its trades hold) is adopted
  as a trade of source ``external`` (``ExternalPositionDetected``), so the emergency stop and
  the drawdown breaker cover it.
- Open trades on a (symbol, side) the venue no longer has are booked from the venue's
  evidence (``app.commands.close_booking``): the fills of a close made outside tradecore (reason
  ``external``), the emergency flattener's closes while an emergency is active (reason
  ``emergency``, at their fill), and the mark only for what no fill explains.

Nothing is closed *at the venue* here. It runs with the order flow held exclusively, so no
order is in flight while it compares (an in-flight order would look like a mismatch).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from functools import partial
from uuid import UUID, uuid4

from adapters.eventstore import TradecoreEventStore
from adapters.repository import Repository
from adapters.venues import retry_transient
from app.commands.close_booking import CloseBooker
from app.commands.trade_records import TradeCommands
from domain.emergency import Emergency
from domain.ids import EMERGENCY_ID
from domain.trade import Trade
from domain.venue import ExchangePort, Order, Position, VenueError

log = logging.getLogger(__name__)


@dataclass
class ReconcileReport:
    ran: bool = True
    orders_resolved: int = 0
    orders_unresolved: int = 0
    adopted: list[UUID] = field(default_factory=list)
    # Trades whose position was gone at the venue, closed from its evidence: ``external``,
    # or ``emergency`` when the flattener's closes explain them (a restart mid-flatten).
    closed_external: list[UUID] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)


class Reconciler:
    def __init__(
        self,
        store: TradecoreEventStore,
        venue: ExchangePort,
        clock: Callable[[], datetime],
        open_trades: Callable[[], list[UUID]],
        exclusive_flow: Callable[[float], AbstractContextManager[bool]],
        *,
        lock_timeout: float = 5.0,
    ) -> None:
        self.store = store
        self.repository = Repository(store)
        self.trades = TradeCommands(store)
        self.booker = CloseBooker(store, venue, clock)
        self.venue = venue
        self.clock = clock
        self.open_trades = open_trades
        self.exclusive_flow = exclusive_flow
        self.lock_timeout = lock_timeout

    def run(self) -> ReconcileReport:
        """One pass. Raises VenueError when the venue cannot be read (nothing changed)."""
        with self.exclusive_flow(self.lock_timeout) as held:
            if not held:
                log.warning("reconciliation skipped: orders in flight held the order flow")
                return ReconcileReport(ran=False)
            report = ReconcileReport()
            trades = [self.trades.load(tid) for tid in self.open_trades()]
            trades = [self._resolve_orders(t, report) for t in trades]
            positions = retry_transient(self.venue.fetch_positions)
            self._compare(positions, [t for t in trades if t.is_open], report)
            return report

    # -- unknown order outcomes ------------------------------------------------------------------

    def _resolve_orders(self, trade: Trade, report: ReconcileReport) -> Trade:
        if not trade.unresolved_orders:
            return trade  # nothing to resolve: as just loaded, no second load
        for cid in trade.unresolved_orders:
            try:
                order = retry_transient(
                    partial(self.venue.fetch_order_by_client_id, cid, trade.symbol)
                )
            except VenueError as e:
                log.warning("order %s still unknown: %s", cid, e)
                report.orders_unresolved += 1
                continue
            now = self.clock()

            def apply(
                t: Trade, cid: str = cid, now: datetime = now, order: Order | None = order
            ) -> None:
                if not t.is_open or cid not in t.unresolved_orders:
                    return
                t.settle_order(
                    client_order_id=cid,
                    order=order,
                    missing=("not_found", "reconciliation: the venue has no such order"),
                    actor="reconciliation",
                    timestamp=now,
                )

            self.trades.update(trade.id, apply)
            report.orders_resolved += 1
        return self.trades.load(trade.id)

    # -- positions -------------------------------------------------------------------------------

    def _compare(
        self, positions: list[Position], trades: list[Trade], report: ReconcileReport
    ) -> None:
        held: dict[tuple[str, str], list[Trade]] = {}
        for t in trades:
            held.setdefault((t.symbol, t.side), []).append(t)
        at_venue: dict[tuple[str, str], Position] = {(p.symbol, p.side): p for p in positions}
        for key in sorted(set(held) | set(at_venue)):
            ours = sum((t.quantity for t in held.get(key, [])), Decimal(0))
            position = at_venue.get(key)
            theirs = position.quantity if position else Decimal(0)
            if position is not None and theirs > ours:
                report.adopted.append(self._adopt(position, theirs - ours))
            elif position is None and ours > 0:
                report.closed_external += self._close_vanished(key, held[key])
            elif theirs < ours:
                message = (
                    f"{key[0]} {key[1]}: the venue holds {theirs}, open trades hold {ours}; "
                    "left for an operator"
                )
                log.error("reconciliation mismatch: %s", message)
                report.mismatches.append(message)

    def _adopt(self, position: Position, quantity: Decimal) -> UUID:
        now = self.clock()
        trade = Trade.open(
            trade_id=uuid4(),
            symbol=position.symbol,
            side=position.side,
            quantity=quantity,
            leverage=Decimal(1),
            actor="reconciliation",
            reason="a venue position tradecore did not open",
            timestamp=now,
            source="external",
        )
        trade.adopt_external(
            quantity=quantity,
            entry_price=position.entry_price,
            detail=(
                f"venue shows {position.side} {position.quantity} {position.symbol} "
                f"@ {position.entry_price}; {quantity} not held by any open trade"
            ),
            timestamp=now,
        )
        Repository(self.store).save(trade)
        log.warning("external position adopted as trade %s: %s", trade.id, position)
        return trade.id

    def _close_vanished(self, key: tuple[str, str], trades: list[Trade]) -> list[UUID]:
        """Book the trades of a position the venue no longer holds from the venue's
        evidence (``app.commands.close_booking``): during an emergency, the flattener's closes keep
        their fill price and reason (a restart mid-flatten must not rewrite them as
        ``external`` at the mark)."""
        emergency = self.repository.find(Emergency, EMERGENCY_ID)
        active = emergency is not None and emergency.active
        return self.booker.book(
            key,
            trades,
            activation_number=emergency.activation_number if emergency and active else None,
            actor="reconciliation",
            look_up_lost=active,
        )
