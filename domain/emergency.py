"""The Emergency aggregate: the emergency-stop latch and the record of flattening (P0-02).

Activation latches; only an operator's reset, with a reason, releases it, and only once the
venue shows no position and no open order (or with ``force``, which is recorded). Activating
an active latch records nothing; resetting an inactive one is refused.

Each activation has a number and an ``activation_id`` derived from the installation's own
id, so client order ids derived from it are stable across replays yet never collide with
another installation's on the same venue account.

Activation and reset are only ever saved together with the Policy's change of
``emergency_mode``, in one transaction (``app.commands.safety``), so the two cannot disagree. The
flattener (``app.processes.flattener``) records its attempts and results here.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar
from uuid import UUID, uuid5

from eventsourcing.domain import event

from domain.base import TradecoreAggregate, event_id, require_aware, require_text, trace_ids
from domain.errors import InvalidCommand, RefusedBySafetyRule
from domain.ids import EMERGENCY_ID
from domain.validation import evidence_text

SOURCES = ("operator", "drawdown", "system")
LEGACY_INSTALLATION = uuid5(EMERGENCY_ID, "installation/legacy")


def activation_id_for(installation_id: UUID, number: int) -> UUID:
    """The stable id of activation ``number`` of an installation (an incident's id)."""
    return uuid5(installation_id, f"emergency-activation/{number}")


class EmergencyNotActive(RefusedBySafetyRule):
    """There is no active emergency to reset."""


class AccountNotFlat(RefusedBySafetyRule):
    """The venue still shows positions or open orders (or could not be asked)."""


class Emergency(TradecoreAggregate):
    """One per installation, id :data:`domain.ids.EMERGENCY_ID`."""

    @staticmethod
    def create_id(*_: Any, **__: Any) -> UUID:
        return EMERGENCY_ID

    # Version 2 of the aggregate (as held in snapshots) has the installation id and the
    # flatten record; version 3 the activation's correlation id.
    class_version = 3

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        state.setdefault("installation_id", LEGACY_INSTALLATION)
        state.setdefault("forced_reset", None)
        state.update(
            flatten_attempts=0,
            flat=None,
            positions_closed=None,
            orders_canceled=None,
            time_to_flat_ms=None,
            triggered=False,
        )

    @staticmethod
    def upcast_v2_v3(state: dict[str, Any]) -> None:
        state.setdefault("correlation_id", None)

    class Created(TradecoreAggregate.Created):
        class_version = 2
        installation_id: UUID

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            # Latches created before activations had installation-scoped ids.
            state["installation_id"] = LEGACY_INSTALLATION

    class Activated(TradecoreAggregate.Event):
        activation_number: int
        reason: str
        actor: str
        source: str
        correlation_id: UUID | None
        causation_id: UUID | None

    class Reset(TradecoreAggregate.Event):
        class_version = 2
        activation_number: int
        reason: str
        actor: str
        correlation_id: UUID | None
        causation_id: UUID | None
        forced: bool
        open_positions: int | None  # None: the venue could not be asked (forced reset)
        open_orders: int | None

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            # Version 1 resets predate the flatness check: they were neither forced nor checked.
            state.update(forced=False, open_positions=None, open_orders=None)

    class FlattenAttempted(TradecoreAggregate.Event):
        class_version = 3
        activation_number: int
        attempt: int
        positions_open: int
        orders_open: int
        # The close orders about to be sent: {"symbol", "side", "quantity", "client_order_id"},
        # so an order whose answer was lost can be looked up by whoever comes next.
        close_orders: list[dict[str, Any]]
        correlation_id: UUID | None
        causation_id: UUID | None

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            # Recorded before the flatten record carried its trace.
            state.update(correlation_id=None, causation_id=None)

        @staticmethod
        def upcast_v2_v3(state: dict[str, Any]) -> None:
            # Recorded before the attempt listed its close orders.
            state.setdefault("close_orders", [])

    class OrdersCanceled(TradecoreAggregate.Event):
        class_version = 2
        activation_number: int
        attempt: int
        count: int
        symbols: list[str]
        correlation_id: UUID | None
        causation_id: UUID | None

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            # Recorded before the flatten record carried its trace.
            state.update(correlation_id=None, causation_id=None)

    class PositionsClosed(TradecoreAggregate.Event):
        class_version = 2
        activation_number: int
        attempt: int
        count: int
        # One entry per symbol and side: {"symbol", "side", "quantity", "average_price"}.
        closes: list[dict[str, Any]]
        correlation_id: UUID | None
        causation_id: UUID | None

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            # Recorded before the flatten record carried its trace.
            state.update(correlation_id=None, causation_id=None)

    class ClosesUnknown(TradecoreAggregate.Event):
        """Close orders of an attempt whose outcome the venue did not tell (no answer, and
        the look-up by client order id failed too): whoever comes next looks them up."""

        activation_number: int
        attempt: int
        client_order_ids: list[str]
        correlation_id: UUID | None
        causation_id: UUID | None

    class AccountFlat(TradecoreAggregate.Event):
        class_version = 2
        activation_number: int
        time_to_flat_ms: int
        positions_closed: int
        orders_canceled: int
        attempts: int
        correlation_id: UUID | None
        causation_id: UUID | None

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            # Recorded before the flatten record carried its trace.
            state.update(correlation_id=None, causation_id=None)

    class FlattenIncomplete(TradecoreAggregate.Event):
        class_version = 2
        activation_number: int
        remaining_positions: list[dict[str, Any]]
        remaining_orders: int
        attempts: int
        last_error: str | None
        correlation_id: UUID | None
        causation_id: UUID | None

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            # Recorded before the flatten record carried its trace.
            state.update(correlation_id=None, causation_id=None)

    class Triggered(TradecoreAggregate.Event):
        """The operator-facing summary of an emergency stop, once per activation."""

        class_version = 2
        operator_name: ClassVar[str] = "system.emergency.triggered"
        activation_number: int
        reason: str
        source: str
        positions_closed: int
        orders_canceled: int
        flat: bool
        correlation_id: UUID | None
        causation_id: UUID | None

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            # Recorded before the flatten record carried its trace.
            state.update(correlation_id=None, causation_id=None)

    @event(Created)
    def __init__(self, *, installation_id: UUID, timestamp: datetime) -> None:
        self.installation_id = installation_id
        self.active = False
        self.activation_number = 0
        self.reason: str | None = None
        self.source: str | None = None
        self.activated_at: datetime | None = None
        self.activated_by: str | None = None
        self.reset_at: datetime | None = None
        self.reset_by: str | None = None
        self.reset_reason: str | None = None
        self.forced_reset: bool | None = None
        self.correlation_id: UUID | None = None
        self._clear_flatten_record()

    def _clear_flatten_record(self) -> None:
        self.flatten_attempts = 0
        self.flat: bool | None = None  # None: not yet known for this activation
        self.positions_closed: int | None = None
        self.orders_canceled: int | None = None
        self.time_to_flat_ms: int | None = None
        self.triggered = False

    @property
    def activation_id(self) -> UUID | None:
        """Stable id of the current (or last) activation, None before the first one."""
        if self.activation_number == 0:
            return None
        return activation_id_for(self.installation_id, self.activation_number)

    # -- activation and reset ---------------------------------------------------------------

    def activate(
        self,
        *,
        reason: str,
        actor: str,
        source: str,
        timestamp: datetime,
        correlation_id: UUID | None = None,
        causation_id: UUID | None = None,
    ) -> bool:
        """Latch the emergency stop. Returns False, recording nothing, if already latched."""
        reason, actor = require_text(reason, "reason"), require_text(actor, "actor")
        if source not in SOURCES:
            raise InvalidCommand(f"source must be one of {', '.join(SOURCES)}, got {source!r}")
        trace_ids(correlation_id, causation_id)
        if self.active:
            return False
        self._activate(
            activation_number=self.activation_number + 1,
            reason=reason,
            actor=actor,
            source=source,
            correlation_id=correlation_id,
            causation_id=causation_id,
            timestamp=require_aware(timestamp),
        )
        return True

    @event(Activated)
    def _activate(
        self,
        *,
        activation_number: int,
        reason: str,
        actor: str,
        source: str,
        correlation_id: UUID | None,
        causation_id: UUID | None,
        timestamp: datetime,
    ) -> None:
        self.active = True
        self.activation_number = activation_number
        # The flatten record of this activation carries its trace: one incident, one id.
        self.correlation_id = correlation_id
        self.reason, self.source = reason, source
        self.activated_at, self.activated_by = timestamp, actor
        self.reset_at = self.reset_by = self.reset_reason = self.forced_reset = None
        self._clear_flatten_record()

    def reset(
        self,
        *,
        reason: str,
        actor: str,
        timestamp: datetime,
        open_positions: int | None,
        open_orders: int | None,
        force: bool = False,
        correlation_id: UUID | None = None,
        causation_id: UUID | None = None,
    ) -> None:
        """Release the latch, given what the venue shows now (None: it could not be asked).

        Raises EmergencyNotActive if not latched, AccountNotFlat if the venue shows positions
        or orders (or could not be asked) and ``force`` is not set.
        """
        reason, actor = require_text(reason, "reason"), require_text(actor, "actor")
        trace_ids(correlation_id, causation_id)
        if not self.active:
            raise EmergencyNotActive("the emergency stop is not active; nothing to reset")
        if not force:
            if open_positions is None or open_orders is None:
                raise AccountNotFlat(
                    "cannot confirm the account is flat (venue unavailable); "
                    "reset with --force and a reason to override"
                )
            if open_positions or open_orders:
                raise AccountNotFlat(
                    f"the venue still shows {open_positions} position(s) and {open_orders} "
                    "open order(s); reset with --force and a reason to override"
                )
        self._reset(
            activation_number=self.activation_number,
            reason=reason,
            actor=actor,
            correlation_id=correlation_id,
            causation_id=causation_id,
            forced=force,
            open_positions=open_positions,
            open_orders=open_orders,
            timestamp=require_aware(timestamp),
        )

    @event(Reset)
    def _reset(
        self,
        *,
        activation_number: int,
        reason: str,
        actor: str,
        correlation_id: UUID | None,
        causation_id: UUID | None,
        forced: bool,
        open_positions: int | None,
        open_orders: int | None,
        timestamp: datetime,
    ) -> None:
        self.active = False
        self.reset_at, self.reset_by, self.reset_reason = timestamp, actor, reason
        self.forced_reset = forced

    # -- the flattener's record --------------------------------------------------------------

    def record_attempt(
        self,
        *,
        attempt: int,
        positions_open: int,
        orders_open: int,
        timestamp: datetime,
        close_orders: list[dict[str, Any]] | None = None,
    ) -> None:
        """Record that flatten attempt ``attempt`` starts (before any order is sent), with
        the close orders it is about to send (each {"symbol", "side", "quantity",
        "client_order_id"})."""
        self._require_active()
        if attempt != self.flatten_attempts + 1:
            raise InvalidCommand(
                f"flatten attempt {attempt} out of order (last was {self.flatten_attempts})"
            )
        self._attempted(
            **self._trace(),
            activation_number=self.activation_number,
            attempt=attempt,
            positions_open=positions_open,
            orders_open=orders_open,
            close_orders=[_close_order(o) for o in close_orders or []],
            timestamp=timestamp,
        )

    @event(FlattenAttempted)
    def _attempted(
        self,
        *,
        correlation_id: UUID | None,
        causation_id: UUID | None,
        activation_number: int,
        attempt: int,
        positions_open: int,
        orders_open: int,
        close_orders: list[dict[str, Any]],
        timestamp: datetime,
    ) -> None:
        self.flatten_attempts = attempt

    def record_attempt_results(
        self,
        *,
        canceled: int,
        canceled_symbols: list[str],
        closes: list[dict[str, Any]],
        timestamp: datetime,
        unknown: list[str] | None = None,
    ) -> None:
        """Record what the current attempt canceled and closed (nothing if it did neither),
        and the client order ids of its closes whose outcome is ``unknown``."""
        self._require_active()
        if canceled:
            self._orders_canceled(
                **self._trace(),
                activation_number=self.activation_number,
                attempt=self.flatten_attempts,
                count=canceled,
                symbols=sorted(canceled_symbols),
                timestamp=timestamp,
            )
        completed = [c for c in closes if c.get("complete")]
        if closes:
            self._positions_closed(
                **self._trace(),
                activation_number=self.activation_number,
                attempt=self.flatten_attempts,
                count=len(completed),
                closes=[_close_entry(c) for c in closes],
                timestamp=timestamp,
            )
        if unknown:
            self._closes_unknown(
                **self._trace(),
                activation_number=self.activation_number,
                attempt=self.flatten_attempts,
                client_order_ids=sorted(str(cid) for cid in unknown),
                timestamp=timestamp,
            )

    @event(ClosesUnknown)
    def _closes_unknown(
        self,
        *,
        correlation_id: UUID | None,
        causation_id: UUID | None,
        activation_number: int,
        attempt: int,
        client_order_ids: list[str],
        timestamp: datetime,
    ) -> None:
        pass

    def record_looked_up_closes(self, *, closes: list[dict[str, Any]], timestamp: datetime) -> None:
        """Record the fills of close orders whose answer was lost (a timeout after the
        venue executed), found later by their client order id. Each close names the
        ``attempt`` that sent it; one ``PositionsClosed`` per attempt."""
        self._require_active()
        by_attempt: dict[int, list[dict[str, Any]]] = {}
        for close in closes:
            attempt = int(close["attempt"])
            if not 1 <= attempt <= self.flatten_attempts:
                raise InvalidCommand(f"no flatten attempt {attempt} in this activation")
            by_attempt.setdefault(attempt, []).append(close)
        for attempt, found in sorted(by_attempt.items()):
            self._positions_closed(
                **self._trace(),
                activation_number=self.activation_number,
                attempt=attempt,
                count=len([c for c in found if c.get("complete")]),
                closes=[_close_entry(c) for c in found],
                timestamp=timestamp,
            )

    @event(OrdersCanceled)
    def _orders_canceled(
        self,
        *,
        correlation_id: UUID | None,
        causation_id: UUID | None,
        activation_number: int,
        attempt: int,
        count: int,
        symbols: list[str],
        timestamp: datetime,
    ) -> None:
        pass

    @event(PositionsClosed)
    def _positions_closed(
        self,
        *,
        correlation_id: UUID | None,
        causation_id: UUID | None,
        activation_number: int,
        attempt: int,
        count: int,
        closes: list[dict[str, Any]],
        timestamp: datetime,
    ) -> None:
        pass

    def record_flat(
        self, *, positions_closed: int, orders_canceled: int, timestamp: datetime
    ) -> None:
        """The venue shows no position and no open order: the account is flat."""
        self._require_active()
        assert self.activated_at is not None
        elapsed = max(int((timestamp - self.activated_at).total_seconds() * 1000), 0)
        self._account_flat(
            **self._trace(),
            activation_number=self.activation_number,
            time_to_flat_ms=elapsed,
            positions_closed=positions_closed,
            orders_canceled=orders_canceled,
            attempts=self.flatten_attempts,
            timestamp=timestamp,
        )
        self._trigger_once(positions_closed, orders_canceled, flat=True, timestamp=timestamp)

    @event(AccountFlat)
    def _account_flat(
        self,
        *,
        correlation_id: UUID | None,
        causation_id: UUID | None,
        activation_number: int,
        time_to_flat_ms: int,
        positions_closed: int,
        orders_canceled: int,
        attempts: int,
        timestamp: datetime,
    ) -> None:
        self.flat = True
        if self.time_to_flat_ms is None:  # the first time this activation reached flat
            self.time_to_flat_ms = time_to_flat_ms
        self.positions_closed = max(positions_closed, self.positions_closed or 0)
        self.orders_canceled = max(orders_canceled, self.orders_canceled or 0)

    def record_incomplete(
        self,
        *,
        remaining_positions: list[dict[str, Any]],
        remaining_orders: int,
        positions_closed: int,
        orders_canceled: int,
        last_error: str | None,
        timestamp: datetime,
    ) -> None:
        """The deadline passed with positions or orders left."""
        self._require_active()
        self._flatten_incomplete(
            **self._trace(),
            activation_number=self.activation_number,
            remaining_positions=[_close_entry(p) for p in remaining_positions],
            remaining_orders=remaining_orders,
            attempts=self.flatten_attempts,
            # A venue's or the store's own words: recorded, never refused (a refusal here
            # would stop the flattener from recording that it is not done).
            last_error=None if last_error is None else evidence_text(last_error),
            timestamp=timestamp,
        )
        self._trigger_once(positions_closed, orders_canceled, flat=False, timestamp=timestamp)

    @event(FlattenIncomplete)
    def _flatten_incomplete(
        self,
        *,
        correlation_id: UUID | None,
        causation_id: UUID | None,
        activation_number: int,
        remaining_positions: list[dict[str, Any]],
        remaining_orders: int,
        attempts: int,
        last_error: str | None,
        timestamp: datetime,
    ) -> None:
        self.flat = False

    def _trigger_once(
        self, positions_closed: int, orders_canceled: int, *, flat: bool, timestamp: datetime
    ) -> None:
        if self.triggered:
            return
        assert self.reason is not None and self.source is not None
        self._triggered(
            **self._trace(),
            activation_number=self.activation_number,
            reason=self.reason,
            source=self.source,
            positions_closed=positions_closed,
            orders_canceled=orders_canceled,
            flat=flat,
            timestamp=timestamp,
        )

    @event(Triggered)
    def _triggered(
        self,
        *,
        correlation_id: UUID | None,
        causation_id: UUID | None,
        activation_number: int,
        reason: str,
        source: str,
        positions_closed: int,
        orders_canceled: int,
        flat: bool,
        timestamp: datetime,
    ) -> None:
        self.triggered = True
        self.positions_closed = max(positions_closed, self.positions_closed or 0)
        self.orders_canceled = max(orders_canceled, self.orders_canceled or 0)

    def _trace(self) -> dict[str, UUID | None]:
        """The activation's correlation id, and the event just before as the cause."""
        return {
            "correlation_id": self.correlation_id,
            "causation_id": event_id(self.id, self.version),
        }

    def _require_active(self) -> None:
        if not self.active:
            raise EmergencyNotActive("the emergency stop is not active")


def _close_entry(entry: dict[str, Any]) -> dict[str, Any]:
    """The stored shape of a close or a remaining position: exact decimals, no extras."""
    stored: dict[str, Any] = {
        "symbol": str(entry["symbol"]),
        "side": str(entry["side"]),
        "quantity": Decimal(entry["quantity"]),
        "average_price": (
            Decimal(entry["average_price"]) if entry.get("average_price") is not None else None
        ),
    }
    # The order that closed it, and the mark the flattener saw (the slippage reference).
    if entry.get("client_order_id"):
        stored["client_order_id"] = str(entry["client_order_id"])
    if entry.get("mark_price") is not None:
        stored["mark_price"] = Decimal(entry["mark_price"])
    if entry.get("fee") is not None:  # the close's fee, in the settlement currency
        stored["fee"] = Decimal(entry["fee"])
    return stored


def _close_order(entry: dict[str, Any]) -> dict[str, Any]:
    """The stored shape of a close order about to be sent."""
    return {
        "symbol": str(entry["symbol"]),
        "side": str(entry["side"]),
        "quantity": Decimal(entry["quantity"]),
        "client_order_id": str(entry["client_order_id"]),
    }
