"""Import of the old system's ``trade_state.json`` into the log: all or nothing.

Every trade of the file is validated and turned into its events before anything is written,
and everything is then saved in one transaction, so a bad file imports nothing and a crash
mid-way leaves nothing behind. Ids are kept (a legacy UUID is used as it is, any other id
maps to a fixed UUID), so importing the same file again changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any
from uuid import UUID

from adapters.eventstore import TradecoreEventStore
from app.repository import Repository, guard
from domain.legacy_trades import LegacyTrade, parse_legacy_trades
from domain.trade import Trade, TradeError, trade_id_for


@dataclass(frozen=True)
class ImportPlan:
    source: str
    new: list[tuple[UUID, LegacyTrade]] = field(default_factory=list)
    already_imported: list[tuple[UUID, LegacyTrade]] = field(default_factory=list)


def legacy_trade_id(legacy_id: str) -> UUID:
    """The trade id a legacy trade keeps: its own when it is a UUID."""
    try:
        return UUID(legacy_id)
    except ValueError:
        return trade_id_for(f"legacy:{legacy_id}")


class LegacyImporter:
    def __init__(self, store: TradecoreEventStore, clock: Callable[[], datetime]) -> None:
        self.store = store
        self.clock = clock

    def plan(self, text: str, *, source: str) -> ImportPlan:
        """Parse and validate the whole file; raises LegacyFileInvalid (exit 2) naming the
        position or the trade and field. Nothing is written."""
        plan = ImportPlan(source)
        for legacy in parse_legacy_trades(text, source=source):
            trade_id = legacy_trade_id(legacy.legacy_id)
            existing = guard(partial(self._first_event, trade_id))
            if not existing:
                plan.new.append((trade_id, legacy))
                continue
            opened: Any = existing[0]
            if not isinstance(opened, Trade.Opened) or opened.source != "import":
                raise TradeError(
                    f"{source}: trade {legacy.legacy_id!r}: its id {trade_id} belongs to a "
                    "trade that was not imported"
                )
            plan.already_imported.append((trade_id, legacy))
        return plan

    def _first_event(self, trade_id: UUID) -> list[Any]:
        return list(self.store.events.get(trade_id, lte=1))

    def execute(self, plan: ImportPlan, *, actor: str) -> int:
        """Record every new trade of ``plan`` in one transaction; returns how many."""
        now = self.clock()
        trades = [
            self._trade(trade_id, legacy, plan.source, actor, now) for trade_id, legacy in plan.new
        ]
        if trades:
            Repository(self.store).save(*trades)
        return len(trades)

    @staticmethod
    def _trade(
        trade_id: UUID, legacy: LegacyTrade, source: str, actor: str, now: datetime
    ) -> Trade:
        trade = Trade.open(
            trade_id=trade_id,
            symbol=legacy.symbol,
            side=legacy.side,
            quantity=legacy.quantity,
            leverage=legacy.leverage,
            actor=actor,
            reason=f"imported from {source}",
            timestamp=now,
            source="import",
        )
        trade.record_import(
            legacy_id=legacy.legacy_id,
            source_file=source,
            quantity=legacy.quantity,
            entry_price=legacy.entry_price,
            original_opened_at=legacy.opened_at,
            original_closed_at=legacy.closed_at if legacy.status == "closed" else None,
            legacy_state=_state(legacy),
            timestamp=now,
        )
        for kind, price in (("stop_loss", legacy.stop_loss), ("take_profit", legacy.take_profit)):
            if price is not None:
                trade.set_stop(kind=kind, price=price, actor=actor, timestamp=now)
        if legacy.status == "closed":
            if legacy.exit_price is not None:
                trade.record_exit(
                    quantity=legacy.quantity,
                    price=legacy.exit_price,
                    price_source="fill",
                    detail=f"exit recorded by the old system ({source})",
                    timestamp=now,
                )
            trade.close(reason="external", actor=actor, timestamp=now)
        return trade


def _state(legacy: LegacyTrade) -> dict[str, Any]:
    """The legacy fields as strings: the audit sees exactly what the old store said."""
    state: dict[str, Any] = {}
    for name, value in vars(legacy).items():
        if value is None:
            continue
        state[name] = value.isoformat() if isinstance(value, datetime) else str(value)
    return state


def describe(legacy: LegacyTrade) -> dict[str, Any]:
    """One line of a dry run."""
    return {
        "legacy_id": legacy.legacy_id,
        "symbol": legacy.symbol,
        "side": legacy.side,
        "quantity": legacy.quantity,
        "entry_price": legacy.entry_price,
        "leverage": legacy.leverage,
        "status": legacy.status,
        "opened_at": legacy.opened_at,
        "stop_loss": legacy.stop_loss,
        "take_profit": legacy.take_profit,
        "exit_price": legacy.exit_price,
        "realized_pnl_in_file": legacy.realized_pnl,
    }
