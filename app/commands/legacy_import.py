"""Import of the old system's ``trade_state.json`` into the log: all or nothing.

Every trade of the file is validated and turned into its events before anything is written,
and everything is then saved in one transaction, so a bad file imports nothing and a crash
mid-way leaves nothing behind. Ids are kept (a legacy UUID is used as it is, any other id
maps to a fixed UUID), so importing the same file again changes nothing.

The file is compared with the venue and with the trades already open, so no quantity is
claimed twice (restoring a backup after reconciliation adopted the same position): an open
trade of the file whose (symbol, side) the venue holds no more of than the open trades
already claim takes over the claim of an adopted external trade (``ClaimHandedOver`` on it,
saved in the same transaction), or is refused naming both when no adoption holds enough.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from functools import partial
from typing import Any
from uuid import UUID

from adapters.eventstore import TradecoreEventStore
from adapters.repository import Repository, guard
from adapters.venues import retry_transient
from domain.errors import RefusedBySafetyRule
from domain.legacy_trades import LegacyTrade, parse_legacy_trades
from domain.trade import Trade, TradeError, trade_id_for
from domain.venue import ExchangePort


class DoubleClaim(RefusedBySafetyRule):
    """A trade of the file would claim quantity that open trades already hold."""


@dataclass(frozen=True)
class Link:
    """An imported trade takes over ``quantity`` of the adopted external trade ``adopted``."""

    legacy_id: str
    trade_id: UUID
    adopted: UUID
    symbol: str
    side: str
    quantity: Decimal


@dataclass(frozen=True)
class ImportPlan:
    source: str
    new: list[tuple[UUID, LegacyTrade]] = field(default_factory=list)
    already_imported: list[tuple[UUID, LegacyTrade]] = field(default_factory=list)
    links: list[Link] = field(default_factory=list)


def legacy_trade_id(legacy_id: str) -> UUID:
    """The trade id a legacy trade keeps: its own when it is a UUID."""
    try:
        return UUID(legacy_id)
    except ValueError:
        return trade_id_for(f"legacy:{legacy_id}")


class LegacyImporter:
    def __init__(
        self,
        store: TradecoreEventStore,
        clock: Callable[[], datetime],
        *,
        venue: ExchangePort | None = None,
        open_trades: Callable[[], list[UUID]] | None = None,
    ) -> None:
        """``venue`` and ``open_trades``: what the file is compared with (both or neither;
        without them, as in a store being built before any venue, nothing is compared)."""
        self.store = store
        self.clock = clock
        self.venue = venue
        self.open_trades = open_trades

    def plan(self, text: str, *, source: str) -> ImportPlan:
        """Parse and validate the whole file and compare it with the venue and the open
        trades; raises LegacyFileInvalid (exit 2) naming the position or the trade and
        field, DoubleClaim (exit 3) naming the trade of the file and the open trades that
        hold its quantity, VenueError when the venue cannot be read. Nothing is written."""
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
        plan.links.extend(self._links(plan))
        return plan

    def _links(self, plan: ImportPlan) -> list[Link]:
        """For each open trade of the file, oldest first: the quantity the venue holds
        beyond every claim (the open trades and the file's trades before it) is free; what
        the trade needs beyond that comes from adopted external trades, or it is refused."""
        if self.venue is None or self.open_trades is None:
            return []
        venue, load = self.venue, Repository(self.store)
        held = {(p.symbol, p.side): p.quantity for p in retry_transient(venue.fetch_positions)}
        claimed: dict[tuple[str, str], Decimal] = {}
        adopted: dict[tuple[str, str], list[list[Any]]] = {}  # [trade, quantity left]
        owners: dict[tuple[str, str], list[Trade]] = {}
        for trade_id in self.open_trades():
            trade = load.find(Trade, trade_id)
            if trade is None or not trade.is_open or trade.quantity <= 0:
                continue
            key = (trade.symbol, trade.side)
            claimed[key] = claimed.get(key, Decimal(0)) + trade.quantity
            owners.setdefault(key, []).append(trade)
            if trade.source == "external":
                adopted.setdefault(key, []).append([trade, trade.quantity])
        links = []
        in_file: dict[tuple[str, str], list[str]] = {}  # the file's open trades so far
        for trade_id, legacy in sorted(plan.new, key=lambda tl: tl[1].opened_at):
            if legacy.status != "open":
                continue
            key = (legacy.symbol, legacy.side)
            free = held.get(key, Decimal(0)) - claimed.get(key, Decimal(0))
            # What the venue cannot hold for this trade besides the claims already made, and
            # of that what collides with them (the rest the venue simply no longer holds:
            # reconciliation's business, as before).
            needed = min(legacy.quantity - max(free, Decimal(0)), claimed.get(key, Decimal(0)))
            if needed > 0 and held.get(key, Decimal(0)) > 0:
                available = sum((left for _, left in adopted.get(key, [])), Decimal(0))
                if available < needed:
                    names = ", ".join(
                        [f"{t.id} ({t.source}, {t.quantity})" for t in owners.get(key, [])]
                        + [f"{earlier!r} of this file" for earlier in in_file.get(key, [])]
                    )
                    raise DoubleClaim(
                        f"{plan.source}: trade {legacy.legacy_id!r} ({legacy.symbol} "
                        f"{legacy.side} {legacy.quantity}) would claim quantity already held "
                        f"by open trade(s) {names}; the venue holds {held[key]}"
                    )
                for entry in adopted[key]:
                    take = min(entry[1], needed)
                    if take <= 0:
                        continue
                    links.append(Link(legacy.legacy_id, trade_id, entry[0].id, *key, quantity=take))
                    entry[1] -= take
                    needed -= take
                    claimed[key] -= take
            claimed[key] = claimed.get(key, Decimal(0)) + legacy.quantity
            in_file.setdefault(key, []).append(legacy.legacy_id)
        return links

    def _first_event(self, trade_id: UUID) -> list[Any]:
        return list(self.store.events.get(trade_id, lte=1))

    def execute(self, plan: ImportPlan, *, actor: str) -> int:
        """Record every new trade of ``plan`` in one transaction; returns how many."""
        now = self.clock()
        trades = [
            self._trade(trade_id, legacy, plan.source, actor, now) for trade_id, legacy in plan.new
        ]
        repository = Repository(self.store)
        replaced: dict[UUID, Trade] = {}
        for link in plan.links:
            found = replaced.get(link.adopted) or repository.find(Trade, link.adopted)
            if found is None:
                raise TradeError(f"adopted trade {link.adopted} is not in the log")
            adoption = replaced[link.adopted] = found
            adoption.hand_over(
                quantity=link.quantity,
                to_trade_id=link.trade_id,
                detail=f"imported trade {link.legacy_id!r} from {plan.source} holds it",
                timestamp=now,
            )
            if adoption.quantity <= 0:
                adoption.close(reason="replaced", actor=actor, timestamp=now)
        if trades:
            # One transaction: the imported trades and the adoptions they replace. A
            # concurrent change to an adoption is a conflict, and nothing is written.
            repository.save(*trades, *replaced.values())
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
