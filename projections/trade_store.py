"""The open-trade store (P0-04): the old ``trade_state.json``'s questions, answered by a read
model of the Trade aggregates. Writing is done by commands on the aggregate; a closed trade
is closed, never erased."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from eventsourcing.domain import DomainEventProtocol
from sqlalchemy import Connection, Engine, Table, func, select, update

from domain.trade import Trade
from projections.runner import Projection
from projections.tables import trade_orders, trades


class TradeProjection(Projection):
    default_name = "trades"
    handles = (
        Trade.Opened,
        Trade.OrderSubmitted,
        Trade.Filled,
        Trade.OrderResolved,
        Trade.ExitRecorded,
        Trade.ExternalPositionDetected,
        Trade.ClaimHandedOver,
        Trade.Imported,
        Trade.StopSet,
        Trade.Closed,
    )

    @classmethod
    def default_tables(cls) -> dict[str, Table]:
        return {"trades": trades, "orders": trade_orders}

    def apply(self, conn: Connection, event: DomainEventProtocol[UUID], position: int) -> None:
        e: Any = event
        rows, orders = self.tables["trades"], self.tables["orders"]
        version = e.originator_version
        if isinstance(e, Trade.Opened):
            conn.execute(
                rows.insert().values(
                    trade_id=e.originator_id,
                    symbol=e.symbol,
                    side=e.side,
                    status="pending",
                    intended_quantity=e.intended_quantity,
                    leverage=e.leverage,
                    entry_quantity=0,
                    entry_cost=0,
                    exit_quantity=0,
                    fees=0,
                    source=e.source,
                    opened_at=e.timestamp,
                    version=version,
                )
            )
            return
        values: dict[str, Any] = {"version": version}
        if isinstance(e, Trade.OrderSubmitted):
            conn.execute(
                orders.insert().values(
                    client_order_id=e.client_order_id,
                    trade_id=e.originator_id,
                    side=e.order_side,
                    quantity=e.quantity,
                    filled=0,
                    reduce_only=e.reduce_only,
                )
            )
        elif isinstance(e, Trade.Filled):
            reduce_only = conn.execute(
                update(orders)
                .where(orders.c.client_order_id == e.client_order_id)
                .values(filled=orders.c.filled + e.quantity)
                .returning(orders.c.reduce_only)
            ).scalar_one()
            values["fees"] = rows.c.fees + e.fee
            if reduce_only:
                values["exit_quantity"] = rows.c.exit_quantity + e.quantity
            else:
                values["entry_quantity"] = rows.c.entry_quantity + e.quantity
                values["entry_cost"] = rows.c.entry_cost + e.quantity * e.price
                values["status"] = "open"
        elif isinstance(e, Trade.OrderResolved):
            conn.execute(
                update(orders)
                .where(orders.c.client_order_id == e.client_order_id)
                .values(outcome=e.outcome)
            )
        elif isinstance(e, Trade.ExitRecorded):
            values["exit_quantity"] = rows.c.exit_quantity + e.quantity
            values["fees"] = rows.c.fees + e.fee
        elif isinstance(e, (Trade.ExternalPositionDetected, Trade.Imported, Trade.ClaimHandedOver)):
            # A hand-over takes back what the adoption's entry had put in.
            quantity = -e.quantity if isinstance(e, Trade.ClaimHandedOver) else e.quantity
            values.update(
                entry_quantity=rows.c.entry_quantity + quantity,
                entry_cost=rows.c.entry_cost + quantity * e.entry_price,
                status="open",
            )
            if isinstance(e, Trade.Imported):
                values.update(opened_at=e.original_opened_at, legacy_id=e.legacy_id)
                if e.original_closed_at is not None:
                    values["closed_at"] = e.original_closed_at
        elif isinstance(e, Trade.StopSet):
            values[e.kind] = e.price
        elif isinstance(e, Trade.Closed):
            values.update(
                status="closed",
                # An imported trade keeps the time the old store says it closed.
                closed_at=func.coalesce(rows.c.closed_at, e.timestamp),
                close_reason=e.close_reason,
                realized_pnl=e.realized_pnl,
            )
        conn.execute(update(rows).where(rows.c.trade_id == e.originator_id).values(**values))


@dataclass(frozen=True)
class TradeRow:
    trade_id: UUID
    symbol: str
    side: str
    status: str
    quantity: Decimal  # held now: entries filled minus exits
    entry_quantity: Decimal  # filled on entry
    entry_price: Decimal | None
    leverage: Decimal
    stop_loss: Decimal | None
    take_profit: Decimal | None
    source: str
    opened_at: datetime
    closed_at: datetime | None
    close_reason: str | None
    realized_pnl: Decimal | None
    version: int


class TradeStateStore:
    """Reads of the trade store. (``save``/``delete`` of old are commands on the aggregate.)"""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def get(self, trade_id: UUID) -> TradeRow | None:
        return next(iter(self._select(trades.c.trade_id == trade_id)), None)

    def list_open_trades(self) -> list[TradeRow]:
        return self._select(trades.c.status != "closed")

    def history(
        self,
        *,
        symbol: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[TradeRow]:
        conditions = []
        if symbol is not None:
            conditions.append(trades.c.symbol == symbol)
        if since is not None:
            conditions.append(trades.c.opened_at >= since)
        if until is not None:
            conditions.append(trades.c.opened_at < until)
        return self._select(*conditions)

    def recent(self, limit: int, *, open_only: bool = False) -> list[TradeRow]:
        """The ``limit`` most recently opened trades (or open trades), oldest first."""
        conditions = [trades.c.status != "closed"] if open_only else []
        with self.engine.connect() as conn:
            ids = list(
                conn.execute(
                    select(trades.c.trade_id)
                    .where(*conditions)
                    .order_by(trades.c.opened_at.desc())
                    .limit(limit)
                ).scalars()
            )
        return self._select(trades.c.trade_id.in_(ids)) if ids else []

    def _select(self, *conditions: Any) -> list[TradeRow]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(trades).where(*conditions).order_by(trades.c.opened_at))
            return [
                TradeRow(
                    trade_id=r.trade_id,
                    symbol=r.symbol,
                    side=r.side,
                    status=r.status,
                    quantity=r.entry_quantity - r.exit_quantity,
                    entry_quantity=r.entry_quantity,
                    entry_price=(r.entry_cost / r.entry_quantity) if r.entry_quantity else None,
                    leverage=r.leverage,
                    stop_loss=r.stop_loss,
                    take_profit=r.take_profit,
                    source=r.source,
                    opened_at=r.opened_at,
                    closed_at=r.closed_at,
                    close_reason=r.close_reason,
                    realized_pnl=r.realized_pnl,
                    version=r.version,
                )
                for r in rows
            ]
