"""The Trade aggregate (P0-04): a trade's whole life as events, never a row overwritten.

Opened (what was decided, how it was sized, under which policy version) → orders submitted
(each with a client order id derived from the trade and the step, recorded *before* it
leaves for the venue) → fills (partial or whole) → stops set or moved → closed, with the
reason and the realized PnL. A closed trade is closed, never erased. Money and quantities
are ``Decimal``. Commands check the lifecycle and raise domain errors.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Literal
from uuid import UUID, uuid5

from eventsourcing.domain import event

from domain.base import TradecoreAggregate, require_aware, require_text, to_decimal, trace_ids
from domain.errors import InvalidCommand, RefusedBySafetyRule
from domain.validation import evidence_text, symbol_value
from domain.venue import Order, Side

TradeSide = Literal["long", "short"]
CLOSE_REASONS = (
    "signal",
    "stop",
    "take_profit",
    "emergency",
    "external",
    "manual",
    "unfilled",
    "replaced",  # an adopted position whose whole quantity another trade claims (an import)
)
SOURCES = ("executor", "import", "external")
# How an order of the trade ended, as the venue said (or "not_found": it never arrived).
ORDER_OUTCOMES = ("filled", "partially_filled", "canceled", "expired", "rejected", "not_found")
EXIT_PRICE_SOURCES = ("fill", "mark", "entry")
TRADES_NAMESPACE = UUID("2f4c1d0e-8b7a-4e55-9c31-6a0f2d9b7e41")


class TradeError(InvalidCommand):
    """A trade command with invalid values."""


class TradeClosed(RefusedBySafetyRule):
    """The trade is closed: nothing more can happen to it."""


def trade_id_for(source_key: str) -> UUID:
    """A deterministic trade id (for imports and adopted positions: re-running is a no-op)."""
    return uuid5(TRADES_NAMESPACE, source_key)


class Trade(TradecoreAggregate):
    # Version 2 of the aggregate (as held in snapshots) knows whether each order is resolved;
    # version 3 how much of its exit was priced from something other than a fill.
    class_version = 3

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        state.setdefault("sizing", None)
        for order in state.get("orders", {}).values():
            order.setdefault("resolved", None)
            order.setdefault("cost", Decimal(0))
            order.setdefault("fee", Decimal(0))

    @staticmethod
    def upcast_v2_v3(state: dict[str, Any]) -> None:
        state.setdefault("estimated_exit_quantity", Decimal(0))

    class Opened(TradecoreAggregate.Created):
        trade_id: UUID  # equal to originator_id; kept so create_id can take it
        symbol: str
        side: str
        intended_quantity: Decimal
        leverage: Decimal
        sizing: dict[str, Any] | None
        policy_version: int | None
        source: str
        actor: str
        reason: str
        correlation_id: UUID | None

    class OrderSubmitted(TradecoreAggregate.Event):
        client_order_id: str
        step: int
        order_side: str
        quantity: Decimal
        reduce_only: bool

    class Filled(TradecoreAggregate.Event):
        client_order_id: str
        quantity: Decimal
        price: Decimal
        fee: Decimal

    class StopSet(TradecoreAggregate.Event):
        kind: str  # stop_loss | take_profit
        price: Decimal
        actor: str

    class OrderResolved(TradecoreAggregate.Event):
        client_order_id: str
        outcome: str
        detail: str

    class ExitRecorded(TradecoreAggregate.Event):
        class_version = 2
        quantity: Decimal
        price: Decimal
        price_source: str
        detail: str
        fee: Decimal  # the exit's own fee, in the settlement currency

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            # Exits recorded before their fee was: the fee is unknown, booked as none.
            state.setdefault("fee", Decimal(0))

    class ExternalPositionDetected(TradecoreAggregate.Event):
        quantity: Decimal
        entry_price: Decimal
        detail: str

    class ClaimHandedOver(TradecoreAggregate.Event):
        """Part (or all) of an adopted position is the quantity of another trade (one
        imported from the old system's file): this trade no longer claims it."""

        quantity: Decimal
        entry_price: Decimal  # the adoption's entry price, at which the claim leaves
        to_trade_id: UUID
        detail: str

    class Imported(TradecoreAggregate.Event):
        legacy_id: str
        source_file: str
        quantity: Decimal
        entry_price: Decimal
        original_opened_at: datetime
        original_closed_at: datetime | None
        legacy_state: dict[str, Any]  # the old store's fields as read, for the audit

    class Closed(TradecoreAggregate.Event):
        close_reason: str
        realized_pnl: Decimal
        actor: str
        causation_id: UUID | None

    @staticmethod
    def create_id(*_: Any, trade_id: UUID, **__: Any) -> UUID:
        return trade_id

    @classmethod
    def open(
        cls,
        *,
        trade_id: UUID,
        symbol: str,
        side: str,
        quantity: Decimal | str,
        leverage: Decimal | str,
        actor: str,
        reason: str,
        timestamp: datetime,
        source: str = "executor",
        sizing: dict[str, Any] | None = None,
        policy_version: int | None = None,
        correlation_id: UUID | None = None,
    ) -> Trade:
        """A new trade; raises TradeError naming the invalid field."""
        if side not in ("long", "short"):
            raise TradeError(f"side must be long or short, got {side!r}")
        if source not in SOURCES:
            raise TradeError(f"source must be one of {', '.join(SOURCES)}, got {source!r}")
        qty = _positive(quantity, "quantity")
        lev = _positive(leverage, "leverage")
        trace_ids(correlation_id, None)
        return cls(
            trade_id=trade_id,
            symbol=symbol_value(symbol),
            side=side,
            intended_quantity=qty,
            leverage=lev,
            sizing=sizing,
            policy_version=policy_version,
            source=source,
            actor=require_text(actor, "actor"),
            reason=require_text(reason, "reason"),
            correlation_id=correlation_id,
            timestamp=require_aware(timestamp),
        )

    @event(Opened)
    def __init__(
        self,
        *,
        trade_id: UUID,
        symbol: str,
        side: str,
        intended_quantity: Decimal,
        leverage: Decimal,
        sizing: dict[str, Any] | None,
        policy_version: int | None,
        source: str,
        actor: str,
        reason: str,
        correlation_id: UUID | None,
        timestamp: datetime,
    ) -> None:
        self.symbol, self.side = symbol, side
        self.intended_quantity, self.leverage = intended_quantity, leverage
        self.source = source
        self.sizing = sizing
        self.opened_at = timestamp
        self.orders: dict[str, dict[str, Any]] = {}
        self.entry_quantity = Decimal(0)
        self.entry_cost = Decimal(0)
        self.exit_quantity = Decimal(0)
        self.exit_proceeds = Decimal(0)
        self.estimated_exit_quantity = Decimal(0)  # exited at a mark or the entry, not a fill
        self.fees = Decimal(0)
        self.stop_loss: Decimal | None = None
        self.take_profit: Decimal | None = None
        self.closed_at: datetime | None = None
        self.close_reason: str | None = None
        self.realized_pnl: Decimal | None = None

    # -- derived state -----------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return self.closed_at is None

    @property
    def quantity(self) -> Decimal:
        """What the trade holds now (entries filled minus exits filled)."""
        return self.entry_quantity - self.exit_quantity

    @property
    def exact(self) -> bool:
        """Whether every exit was priced from a fill (the realized PnL is then what the
        wallet saw); False when part of it was booked at a mark or at the entry."""
        return self.estimated_exit_quantity == 0

    @property
    def entry_price(self) -> Decimal | None:
        return self.entry_cost / self.entry_quantity if self.entry_quantity else None

    @property
    def entry_side(self) -> Side:
        return "buy" if self.side == "long" else "sell"

    def client_order_id(self, step: int) -> str:
        """At most 36 characters, stable for (trade, step): a replay cannot double an order."""
        return f"tct-{self.id.hex[:24]}-{step}"

    # -- commands ----------------------------------------------------------------------------

    def submit_order(
        self,
        *,
        order_side: str,
        quantity: Decimal | str,
        reduce_only: bool,
        timestamp: datetime,
    ) -> str:
        """Record an order before it is sent; returns its client order id."""
        self._require_open()
        if order_side not in ("buy", "sell"):
            raise TradeError(f"order side must be buy or sell, got {order_side!r}")
        exiting = order_side != self.entry_side
        if exiting != reduce_only:
            raise TradeError("orders that reduce the trade must be reduce-only, and only they")
        step = len(self.orders) + 1
        client_order_id = self.client_order_id(step)
        self._submitted(
            client_order_id=client_order_id,
            step=step,
            order_side=order_side,
            quantity=_positive(quantity, "quantity"),
            reduce_only=reduce_only,
            timestamp=require_aware(timestamp),
        )
        return client_order_id

    @event(OrderSubmitted)
    def _submitted(
        self,
        *,
        client_order_id: str,
        step: int,
        order_side: str,
        quantity: Decimal,
        reduce_only: bool,
        timestamp: datetime,
    ) -> None:
        self.orders[client_order_id] = {
            "side": order_side,
            "quantity": quantity,
            "filled": Decimal(0),
            "reduce_only": reduce_only,
            "resolved": None,
            "cost": Decimal(0),
            "fee": Decimal(0),
        }

    def record_fill(
        self,
        *,
        client_order_id: str,
        quantity: Decimal | str,
        price: Decimal | str,
        fee: Decimal | str = Decimal(0),
        timestamp: datetime,
    ) -> None:
        """A (partial) fill of one of this trade's orders."""
        self._require_open()
        order = self.orders.get(client_order_id)
        if order is None:
            raise TradeError(f"no order {client_order_id} on this trade")
        if order["resolved"]:
            raise TradeError(f"order {client_order_id} is resolved ({order['resolved']})")
        qty = _positive(quantity, "quantity")
        if order["filled"] + qty > order["quantity"]:
            raise TradeError(
                f"fill of {qty} exceeds what is left of order {client_order_id} "
                f"({order['quantity'] - order['filled']})"
            )
        fee_value = to_decimal(fee, "fee")
        if fee_value < 0:
            raise TradeError(f"fee must not be negative, got {fee_value}")
        self._filled(
            client_order_id=client_order_id,
            quantity=qty,
            price=_positive(price, "price"),
            fee=fee_value,
            timestamp=require_aware(timestamp),
        )

    @event(Filled)
    def _filled(
        self,
        *,
        client_order_id: str,
        quantity: Decimal,
        price: Decimal,
        fee: Decimal,
        timestamp: datetime,
    ) -> None:
        order = self.orders[client_order_id]
        order["filled"] += quantity
        order["cost"] += quantity * price
        order["fee"] += fee
        if order["reduce_only"]:
            self.exit_quantity += quantity
            self.exit_proceeds += quantity * price
        else:
            self.entry_quantity += quantity
            self.entry_cost += quantity * price
        self.fees += fee

    def resolve_order(
        self, *, client_order_id: str, outcome: str, detail: str, timestamp: datetime
    ) -> None:
        """The venue's final word on an order: nothing more will fill. A timeout is resolved
        here once the venue has been asked (``not_found``: the order never arrived)."""
        self._require_open()
        order = self.orders.get(client_order_id)
        if order is None:
            raise TradeError(f"no order {client_order_id} on this trade")
        if order["resolved"]:
            raise TradeError(f"order {client_order_id} is already resolved")
        if outcome not in ORDER_OUTCOMES:
            raise TradeError(f"order outcome must be one of {', '.join(ORDER_OUTCOMES)}")
        self._order_resolved(
            client_order_id=client_order_id,
            outcome=outcome,
            detail=evidence_text(detail),
            timestamp=require_aware(timestamp),
        )

    @event(OrderResolved)
    def _order_resolved(
        self, *, client_order_id: str, outcome: str, detail: str, timestamp: datetime
    ) -> None:
        self.orders[client_order_id]["resolved"] = outcome

    def apply_venue_order(
        self,
        *,
        client_order_id: str,
        filled: Decimal,
        average_price: Decimal | None,
        fee: Decimal,
        status: str,
        timestamp: datetime,
    ) -> None:
        """Bring one of this trade's orders up to the venue's account of it (cumulative
        ``filled``, its ``average_price`` and ``fee``): record the fill not yet recorded, and
        the outcome once the order is final. Applying the same account twice changes nothing,
        so the executor and reconciliation may both apply it."""
        order = self.orders.get(client_order_id)
        if order is None:
            raise TradeError(f"no order {client_order_id} on this trade")
        if order["resolved"]:
            return
        new = filled - order["filled"]
        if new > 0:
            if average_price is None:
                raise TradeError(f"order {client_order_id} filled {filled} without a price")
            # The venue reports the average over every fill; the new part's price follows.
            price = (average_price * filled - order["cost"]) / new
            self.record_fill(
                client_order_id=client_order_id,
                quantity=new,
                price=price if price > 0 else average_price,
                fee=max(fee - order["fee"], Decimal(0)),
                timestamp=timestamp,
            )
        if status in ("open",):
            return
        outcome = {"closed": "filled", "rejected": "rejected"}.get(status)
        if outcome is None:
            outcome = "partially_filled" if filled > 0 else status  # canceled | expired
        self.resolve_order(
            client_order_id=client_order_id,
            outcome=outcome,
            detail=f"venue status {status}, filled {filled}",
            timestamp=timestamp,
        )

    def settle_order(
        self,
        *,
        client_order_id: str,
        order: Order | None,
        actor: str,
        timestamp: datetime,
        missing: tuple[str, str] = ("not_found", "the venue has no such order"),
    ) -> bool:
        """Apply the venue's answer about one of this trade's orders -- its account of the
        order (see :meth:`apply_venue_order`), or ``None`` when the venue has none, which
        resolves the order with ``missing`` = (outcome, detail) -- and then, once no order is
        left unresolved, close the trade as ``unfilled`` if its entry never filled. The one
        way the executor and reconciliation settle an order. Returns True if it closed the
        trade. Raises TradeError (no such order, a bad outcome, a fill without a price)."""
        if order is None:
            outcome, detail = missing
            self.resolve_order(
                client_order_id=client_order_id,
                outcome=outcome,
                detail=detail,
                timestamp=timestamp,
            )
        else:
            self.apply_venue_order(
                client_order_id=client_order_id,
                filled=order.filled,
                average_price=order.average_price,
                fee=order.fee,
                status=order.status,
                timestamp=timestamp,
            )
        if self.unresolved_orders or self.entry_quantity > 0:
            return False
        self.close(reason="unfilled", actor=actor, timestamp=timestamp)
        return True

    @property
    def unresolved_orders(self) -> list[str]:
        """Orders recorded as submitted whose outcome the venue has not yet confirmed."""
        return [cid for cid, o in self.orders.items() if not o["resolved"]]

    def record_exit(
        self,
        *,
        quantity: Decimal | str,
        price: Decimal | str,
        price_source: str,
        detail: str,
        timestamp: datetime,
        fee: Decimal | str = Decimal(0),
    ) -> None:
        """An exit made by an order that is not the trade's own: the emergency flattener's
        close of the position, or a close outside tradecore. ``price_source`` says how the
        price is known (a fill, the mark when it vanished, or the entry when nothing better
        is known, which realizes no price PnL); ``fee`` is this trade's share of the closing
        fill's fee (>= 0), taken off the realized PnL like an entry fee."""
        self._require_open()
        qty = _positive(quantity, "quantity")
        if qty > self.quantity:
            raise TradeError(f"exit of {qty} exceeds what the trade holds ({self.quantity})")
        if price_source not in EXIT_PRICE_SOURCES:
            raise TradeError(f"price source must be one of {', '.join(EXIT_PRICE_SOURCES)}")
        fee_value = to_decimal(fee, "fee")
        if fee_value < 0:
            raise TradeError(f"fee must not be negative, got {fee_value}")
        self._exit_recorded(
            quantity=qty,
            price=_positive(price, "price"),
            price_source=price_source,
            detail=require_text(detail, "detail"),
            fee=fee_value,
            timestamp=require_aware(timestamp),
        )

    @event(ExitRecorded)
    def _exit_recorded(
        self,
        *,
        quantity: Decimal,
        price: Decimal,
        price_source: str,
        detail: str,
        fee: Decimal,
        timestamp: datetime,
    ) -> None:
        self.exit_quantity += quantity
        self.exit_proceeds += quantity * price
        self.fees += fee
        if price_source != "fill":
            self.estimated_exit_quantity += quantity

    def adopt_external(
        self,
        *,
        quantity: Decimal | str,
        entry_price: Decimal | str,
        detail: str,
        timestamp: datetime,
    ) -> None:
        """A venue position tradecore did not open, adopted so every safeguard covers it."""
        if self.source != "external" or self.entry_quantity:
            raise TradeError("only a new trade of source 'external' adopts a venue position")
        self._external_detected(
            quantity=_positive(quantity, "quantity"),
            entry_price=_positive(entry_price, "entry price"),
            detail=require_text(detail, "detail"),
            timestamp=require_aware(timestamp),
        )

    @event(ExternalPositionDetected)
    def _external_detected(
        self, *, quantity: Decimal, entry_price: Decimal, detail: str, timestamp: datetime
    ) -> None:
        self.entry_quantity += quantity
        self.entry_cost += quantity * entry_price

    def hand_over(
        self, *, quantity: Decimal | str, to_trade_id: UUID, detail: str, timestamp: datetime
    ) -> None:
        """Give up the claim on ``quantity`` of an adopted position to trade ``to_trade_id``
        (which holds it by its own record); what this trade held is then as if it never
        held that part. Raises TradeError for a trade that is not an open adoption or a
        quantity over what it holds."""
        self._require_open()
        if self.source != "external":
            raise TradeError("only an adopted external trade hands over its claim")
        qty = _positive(quantity, "quantity")
        if qty > self.quantity:
            raise TradeError(f"hand-over of {qty} exceeds what the trade holds ({self.quantity})")
        assert self.entry_price is not None
        self._claim_handed_over(
            quantity=qty,
            entry_price=self.entry_price,
            to_trade_id=to_trade_id,
            detail=require_text(detail, "detail"),
            timestamp=require_aware(timestamp),
        )

    @event(ClaimHandedOver)
    def _claim_handed_over(
        self,
        *,
        quantity: Decimal,
        entry_price: Decimal,
        to_trade_id: UUID,
        detail: str,
        timestamp: datetime,
    ) -> None:
        self.entry_quantity -= quantity
        self.entry_cost -= quantity * entry_price

    def record_import(
        self,
        *,
        legacy_id: str,
        source_file: str,
        quantity: Decimal | str,
        entry_price: Decimal | str,
        original_opened_at: datetime,
        timestamp: datetime,
        original_closed_at: datetime | None = None,
        legacy_state: dict[str, Any] | None = None,
    ) -> None:
        """The legacy store's state of this trade, taken over as its entry."""
        if self.source != "import" or self.entry_quantity:
            raise TradeError("only a new trade of source 'import' takes a legacy entry")
        self._imported(
            legacy_id=require_text(legacy_id, "legacy id"),
            source_file=require_text(source_file, "source file"),
            quantity=_positive(quantity, "quantity"),
            entry_price=_positive(entry_price, "entry price"),
            original_opened_at=require_aware(original_opened_at),
            original_closed_at=(
                require_aware(original_closed_at) if original_closed_at is not None else None
            ),
            legacy_state=dict(legacy_state or {}),
            timestamp=require_aware(timestamp),
        )

    @event(Imported)
    def _imported(
        self,
        *,
        legacy_id: str,
        source_file: str,
        quantity: Decimal,
        entry_price: Decimal,
        original_opened_at: datetime,
        original_closed_at: datetime | None,
        legacy_state: dict[str, Any],
        timestamp: datetime,
    ) -> None:
        self.entry_quantity += quantity
        self.entry_cost += quantity * entry_price
        self.opened_at = original_opened_at

    def set_stop(self, *, kind: str, price: Decimal | str, actor: str, timestamp: datetime) -> None:
        """Set or move the stop loss or the take profit."""
        self._require_open()
        if kind not in ("stop_loss", "take_profit"):
            raise TradeError(f"kind must be stop_loss or take_profit, got {kind!r}")
        self._stop_set(
            kind=kind,
            price=_positive(price, "price"),
            actor=require_text(actor, "actor"),
            timestamp=require_aware(timestamp),
        )

    @event(StopSet)
    def _stop_set(self, *, kind: str, price: Decimal, actor: str, timestamp: datetime) -> None:
        setattr(self, kind, price)

    def close(
        self, *, reason: str, actor: str, timestamp: datetime, causation_id: UUID | None = None
    ) -> None:
        """Close the trade with ``reason``; the realized PnL comes from its fills and fees."""
        self._require_open()
        if reason not in CLOSE_REASONS:
            raise TradeError(f"close reason must be one of {', '.join(CLOSE_REASONS)}")
        trace_ids(None, causation_id)
        self._closed(
            close_reason=reason,
            realized_pnl=self._realized(),
            actor=require_text(actor, "actor"),
            causation_id=causation_id,
            timestamp=require_aware(timestamp),
        )

    @event(Closed)
    def _closed(
        self,
        *,
        close_reason: str,
        realized_pnl: Decimal,
        actor: str,
        causation_id: UUID | None,
        timestamp: datetime,
    ) -> None:
        self.closed_at, self.close_reason, self.realized_pnl = timestamp, close_reason, realized_pnl

    def _realized(self) -> Decimal:
        """PnL of the exited quantity against the average entry, less every fee."""
        if not self.exit_quantity or not self.entry_quantity:
            return -self.fees
        entry = self.entry_cost / self.entry_quantity
        exit_price = self.exit_proceeds / self.exit_quantity
        direction = 1 if self.side == "long" else -1
        return (exit_price - entry) * self.exit_quantity * direction - self.fees

    def _require_open(self) -> None:
        if not self.is_open:
            raise TradeClosed(f"trade {self.id} is closed ({self.close_reason})")


def _positive(value: Decimal | str, field: str) -> Decimal:
    number = to_decimal(value, field)
    if number <= 0:
        raise TradeError(f"{field} must be positive, got {number}")
    return number
