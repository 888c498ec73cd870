"""The executor: the only path from a trade intent to an order that opens risk (P0-01, P0-04).

For each intent it takes the order flow (shared; the emergency flattener's sweep takes it
exclusively), asks the gate *then*, immediately before submission, records the trade and
its order as submitted, and only then sends the order. So:

- an intent the gate refuses never reaches the venue, and the refusal is recorded with the
  gate's code and reason;
- an order that was sent is always in the log first, with a client order id derived from
  the trade, so a crash and replay cannot double it;
- no opening order can leave after the flattener's sweep has begun: either it was answered
  (and recorded) before the sweep, which then closes it, or its gate check came after the
  activation committed and refused it.

A timeout is an unknown outcome: the executor asks the venue for the client order id, and
if the venue still cannot say, leaves the order unresolved for reconciliation.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import ROUND_DOWN, Decimal
from enum import StrEnum
from typing import Any
from uuid import UUID, uuid4

from adapters.eventstore import TradecoreEventStore
from adapters.repository import Conflict, Repository, guard
from adapters.venues import retry_transient
from app.commands.exposure_caps import read_exposure, room, set_venue_leverage
from app.commands.sizing import Sized
from app.commands.trade_records import TradeCommands
from app.queries.gate import GateDecision, PolicyGate
from domain.base import require_text
from domain.pretrade import PreTradeRefusal, PreTradeState, ProposedOrder
from domain.refusal import RefusedIntent
from domain.trade import Trade, TradeError, trade_id_for
from domain.validation import decimal_value, shown, symbol_value
from domain.venue import (
    DuplicateClientOrderId,
    ExchangePort,
    Order,
    OrderRejected,
    OrderRequest,
    OutcomeUnknown,
    PositionMode,
    PositionSide,
    Side,
    VenueError,
    VenueUnavailable,
)

log = logging.getLogger(__name__)

OrderFlow = Callable[[float], AbstractContextManager[bool]]
Sizer = Callable[["TradeIntent", UUID], Sized]
PreTrade = Callable[[ProposedOrder, PreTradeState | None], PreTradeRefusal | None]
ENTRY_SIDE: dict[str, Side] = {"long": "buy", "short": "sell"}
QUANTITY_STEP = Decimal("0.00000001")


class Outcome(StrEnum):
    FILLED = "FILLED"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    UNFILLED = "UNFILLED"  # the venue took it and nothing filled (expired, canceled)
    REJECTED = "REJECTED"  # the venue refused it, or was not reached: nothing was done
    OUTCOME_UNKNOWN = "OUTCOME_UNKNOWN"  # left for reconciliation
    REFUSED = "REFUSED"  # by the gate or a cap: never sent
    DUPLICATE = "DUPLICATE"  # this intent was executed before; nothing new was sent


@dataclass(frozen=True)
class TradeIntent:
    """What a signal source (or an operator) wants: a position of ``notional`` in the
    settlement currency. ``key`` makes it idempotent: the same key is one trade, ever."""

    symbol: str
    side: str
    notional: Decimal
    actor: str
    reason: str
    leverage: Decimal | None = None  # None: as sized (else the most the operator allows)
    confidence: Decimal | None = None
    key: str | None = None
    correlation_id: UUID | None = None
    model: str | None = None  # the model (and version) whose output ``confidence`` is
    model_version: int | None = None

    def validated(self) -> TradeIntent:
        """Raises TradeError naming the invalid field."""
        if self.side not in ("long", "short"):
            raise TradeError(f"side must be long or short, got {self.side!r}")
        for name, value in (("notional", self.notional), ("leverage", self.leverage)):
            if value is not None:
                decimal_value(value, name, positive=True)
        if self.confidence is not None and not 0 <= self.confidence <= 1:
            raise TradeError(f"confidence must be between 0 and 1, got {self.confidence}")
        if ":" not in symbol_value(self.symbol):
            raise TradeError(
                f"symbol {shown(self.symbol)} is not a unified linear-perpetual symbol "
                "such as BTC/USDT:USDT"
            )
        require_text(self.actor, "actor")
        require_text(self.reason, "reason")
        if self.key is not None:
            require_text(self.key, "key")
        if self.model_version is not None and (self.model is None or self.confidence is None):
            raise TradeError("a model version needs the model's name and its confidence")
        return self


@dataclass(frozen=True)
class Execution:
    outcome: Outcome
    reason: str
    trade_id: UUID | None = None
    code: str | None = None  # the gate's (or the cap's) code when refused
    filled: Decimal = Decimal(0)
    average_price: Decimal | None = None
    client_order_id: str | None = None


@dataclass(frozen=True)
class _Admitted:
    intent: TradeIntent  # its notional cut to what the caps leave
    quantity: Decimal
    sizing: dict[str, Any]  # what the caps did, for the trade's sizing record
    capped: str  # said in the execution's reason: "" when no cap cut it


class Executor:
    def __init__(
        self,
        store: TradecoreEventStore,
        gate: PolicyGate,
        venue: ExchangePort,
        clock: Callable[[], datetime],
        order_flow: OrderFlow,
        *,
        sizer: Sizer | None = None,
        pretrade: PreTrade | None = None,
        lock_timeout: float = 5.0,
        lookups: int = 5,
        lookup_interval: float = 0.2,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.store = store
        self.trades = TradeCommands(store)
        self.gate = gate
        self.venue = venue
        self.clock = clock
        self.order_flow = order_flow
        self.sizer = sizer
        self.pretrade = pretrade
        self.lock_timeout = lock_timeout
        self.lookups = lookups
        self.lookup_interval = lookup_interval
        self.sleep = sleep

    def open(self, intent: TradeIntent) -> Execution:
        """Open a trade for ``intent`` through the gate. Raises TradeError for an invalid
        intent and VenueError when the venue cannot price the symbol or say its position
        mode (nothing sent); every other outcome, refusals included, is an Execution."""
        intent = intent.validated()
        trade_id = trade_id_for(f"intent:{intent.key}") if intent.key else uuid4()
        if intent.key and self._exists(trade_id):
            return Execution(
                Outcome.DUPLICATE, f"intent {intent.key} was executed before", trade_id
            )
        intent, sizing = self._size(intent, trade_id)
        mark = retry_transient(lambda: self.venue.fetch_mark_price(intent.symbol))
        mode = retry_transient(lambda: self.venue.fetch_position_mode(intent.symbol))
        quantity = (intent.notional / mark).quantize(QUANTITY_STEP, rounding=ROUND_DOWN)
        if quantity <= 0:
            raise TradeError(f"notional {intent.notional} buys nothing at {mark}")
        with self.order_flow(self.lock_timeout) as held:
            if not held:
                return self._refuse(
                    intent, "ORDER_FLOW_HELD", "the emergency flattener holds the order flow", None
                )
            decision = self.gate.check_order(reduce_only=False)
            if not decision.allowed:
                return self._refuse(
                    intent, decision.code.value, decision.reason, decision.policy_version
                )
            admitted = self._admit(intent, mark, decision)
            if isinstance(admitted, Execution):
                return admitted
            intent, quantity, capped = admitted.intent, admitted.quantity, admitted.capped
            sizing |= admitted.sizing
            leverage = intent.leverage or Decimal(1)
            trade = Trade.open(
                trade_id=trade_id,
                symbol=intent.symbol,
                side=intent.side,
                quantity=quantity,
                leverage=leverage,
                actor=intent.actor,
                reason=intent.reason,
                timestamp=self.clock(),
                sizing=sizing
                | {
                    "notional": intent.notional,
                    "mark": mark,
                    "confidence": intent.confidence,
                    "gate_code": decision.code.value,
                    "gate_position": decision.position,
                },
                policy_version=decision.policy_version,
                correlation_id=intent.correlation_id,
            )
            client_order_id = trade.submit_order(
                order_side=trade.entry_side,
                quantity=quantity,
                reduce_only=False,
                timestamp=self.clock(),
            )
            try:
                self.trades.open(trade)  # in the log before it leaves
            except Conflict:
                return Execution(Outcome.DUPLICATE, "executed concurrently", trade_id)
            request = in_mode(
                OrderRequest(intent.symbol, trade.entry_side, quantity, client_order_id), mode
            )
            execution = self._settle(trade_id, request, self._send(request))
            return replace(execution, reason=execution.reason + capped)

    def _admit(
        self, intent: TradeIntent, mark: Decimal, decision: GateDecision
    ) -> _Admitted | Execution:
        """Under the order flow, right before the order, once the gate allowed it: the intent
        cut to what the exposure caps leave at the venue now; the pre-trade controls on the
        order that would leave (``app.commands.pretrade_controls``: collar, order size, loss streak,
        duplicate, rate; its rate slot is then taken); the venue's leverage set to the
        intent's. Returns the admitted order or the recorded refusal (LEVERAGE_CAP,
        NOTIONAL_CAP, ACCOUNT_LEVERAGE_CAP, EXPOSURE_UNKNOWN, the controls' codes,
        LEVERAGE_NOT_SET)."""
        version = decision.policy_version
        cap = _cap_exceeded(intent, decision.max_leverage)
        if cap is not None:
            return self._refuse(intent, *cap, version)
        try:
            exposure = read_exposure(self.venue, intent.symbol, _position_side(intent))
        except VenueError as e:
            reason = f"cannot read the venue's exposure: {e}"
            return self._refuse(intent, "EXPOSURE_UNKNOWN", reason, version)
        fits = room(
            exposure,
            asked=intent.notional,
            mark=mark,
            max_position_notional=decision.max_position_notional,
            max_leverage=decision.max_leverage,
        )
        if fits.refusal is not None:
            return self._refuse(intent, *fits.refusal, version)
        order = ProposedOrder(intent.symbol, ENTRY_SIDE[intent.side], fits.quantity, mark)
        refusal = self.pretrade(order, decision.pretrade) if self.pretrade else None
        if refusal is not None:
            return self._refuse(intent, refusal.code, refusal.reason, version)
        sizing: dict[str, Any] = {}
        capped = ""
        if fits.capped_by:
            sizing = {"exposure_caps": list(fits.capped_by), "notional_asked": intent.notional}
            capped = (
                f" (capped by {', '.join(fits.capped_by)}: "
                f"{fits.notional:.2f} of {intent.notional} asked)"
            )
        # The venue's margin (and liquidation) must use the decision's leverage.
        unset = set_venue_leverage(self.venue, intent.symbol, intent.leverage or Decimal(1))
        if unset is not None:
            return self._refuse(intent, "LEVERAGE_NOT_SET", unset, version)
        return _Admitted(replace(intent, notional=fits.notional), fits.quantity, sizing, capped)

    def _size(self, intent: TradeIntent, trade_id: UUID) -> tuple[TradeIntent, dict[str, Any]]:
        """The intent as the sizing agent sizes it (decision recorded under the trade's id)."""
        if self.sizer is None:
            return replace(intent, leverage=intent.leverage or Decimal(1)), {"method": "as asked"}
        sized = self.sizer(intent, trade_id)
        d = sized.decision
        leverage = d.leverage if intent.leverage is None else min(d.leverage, intent.leverage)
        return replace(intent, notional=d.notional, leverage=leverage), {
            "method": "sizing agent",
            "decision_id": sized.decision_id,
            "state_key": d.state.key,
            "action_index": d.action_index,
            "size_multiplier": d.size_multiplier,
            "base_notional": sized.base_notional,
            "fallback": d.fallback,
            "regime": sized.regime.regime,
        }

    # -- sending and resolving -----------------------------------------------------------------

    def _send(self, request: OrderRequest) -> Order | str | None:
        """The venue's order; a string when nothing was done (the reason); None: unknown."""
        try:
            order = self.venue.create_order(request)
        except (DuplicateClientOrderId, OutcomeUnknown) as e:
            # It may be there (a timeout) or is (a retry after a crash): ask, never assume.
            log.warning("order %s: %s; asking the venue", request.client_order_id, e)
            return self._look_up(request)
        except OrderRejected as e:
            return f"rejected by the venue: {e}"
        except VenueUnavailable as e:
            return f"not sent, the venue is unavailable: {e}"
        except VenueError as e:
            return f"not sent: {type(e).__name__}: {e}"
        if order.status == "open" and order.filled <= 0:
            return self._look_up(request) or order  # an acknowledgement only: ask for the fill
        return order

    def _look_up(self, request: OrderRequest) -> Order | str | None:
        for attempt in range(self.lookups):
            try:
                found = self.venue.fetch_order_by_client_id(request.client_order_id, request.symbol)
            except VenueError as e:
                log.warning("look-up of %s failed: %s", request.client_order_id, e)
                found = None
            else:
                if found is None:
                    # Asked and answered: the venue has no such order; it never arrived.
                    return "not found at the venue: the order never arrived"
                if found.status != "open" or found.filled > 0:
                    return found
            if attempt + 1 < self.lookups:
                self.sleep(self.lookup_interval)
        return None

    def _settle(
        self,
        trade_id: UUID,
        request: OrderRequest,
        answer: Order | str | None,
        *,
        exit_reason: str | None = None,
    ) -> Execution:
        """Record the venue's answer on the trade. An entry that never filled closes the
        trade as ``unfilled``; an exit that leaves nothing held closes it with
        ``exit_reason``."""
        cid = request.client_order_id
        if answer is None:
            log.error("order %s: outcome unknown; reconciliation will resolve it", cid)
            return Execution(
                Outcome.OUTCOME_UNKNOWN,
                "the venue did not confirm the order; reconciliation will resolve it",
                trade_id,
                client_order_id=cid,
            )
        now = self.clock()

        def settle(trade: Trade) -> None:
            if isinstance(answer, str):  # the venue refused it, or never saw it
                outcome = "not_found" if answer.startswith("not found") else "rejected"
                closed = trade.settle_order(
                    client_order_id=cid,
                    order=None,
                    missing=(outcome, answer),
                    actor="executor",
                    timestamp=now,
                )
            else:
                closed = trade.settle_order(
                    client_order_id=cid, order=answer, actor="executor", timestamp=now
                )
            if closed or trade.unresolved_orders:
                return
            if exit_reason is not None and trade.quantity <= 0:
                trade.close(reason=exit_reason, actor="executor", timestamp=now)

        self.trades.update(trade_id, settle)
        if isinstance(answer, str):
            return Execution(Outcome.REJECTED, answer, trade_id, client_order_id=cid)
        if answer.filled <= 0:
            done = answer.status != "open"
            return Execution(
                Outcome.UNFILLED if done else Outcome.OUTCOME_UNKNOWN,
                f"venue status {answer.status}, nothing filled",
                trade_id,
                client_order_id=cid,
            )
        full = answer.filled >= request.quantity
        return Execution(
            Outcome.FILLED if full else Outcome.PARTIALLY_FILLED,
            f"filled {answer.filled} of {request.quantity} at {answer.average_price}",
            trade_id,
            filled=answer.filled,
            average_price=answer.average_price,
            client_order_id=cid,
        )

    def close(self, trade_id: UUID, *, reason: str, actor: str) -> Execution:
        """Exit the whole trade with one reduce-only market order (a halt never blocks an
        exit), then close it with ``reason`` once nothing is held. Raises TradeNotFound,
        TradeClosed, VenueError when the venue cannot say its position mode (nothing sent)."""
        decision = self.gate.check_order(reduce_only=True)
        symbol = self.trades.load(trade_id).symbol
        mode = retry_transient(lambda: self.venue.fetch_position_mode(symbol))

        def submit(t: Trade) -> OrderRequest:
            if t.quantity <= 0:
                raise TradeError(f"trade {trade_id} holds nothing to close")
            side: Side = "sell" if t.side == "long" else "buy"
            cid = t.submit_order(
                order_side=side, quantity=t.quantity, reduce_only=True, timestamp=self.clock()
            )
            return in_mode(OrderRequest(t.symbol, side, t.quantity, cid, reduce_only=True), mode)

        request = self.trades.update(trade_id, submit)  # in the log before it leaves
        log.info("closing trade %s (%s): %s", trade_id, reason, decision.reason)
        return self._settle(trade_id, request, self._send(request), exit_reason=reason)

    # -- refusals ------------------------------------------------------------------------------

    def refuse(self, intent: TradeIntent, code: str, reason: str) -> Execution:
        """Refuse ``intent`` for a reason found before the gate (e.g. a signal source with no
        model); recorded like the gate's refusals, nothing sent."""
        return self._refuse(intent.validated(), code, reason, None)

    def _refuse(
        self, intent: TradeIntent, code: str, reason: str, policy_version: int | None
    ) -> Execution:
        log.warning("intent refused (%s): %s", code, reason)
        refusal = RefusedIntent.record(
            refusal_id=uuid4(),
            symbol=intent.symbol,
            side=intent.side,
            notional=intent.notional,
            leverage=intent.leverage or Decimal(1),
            confidence=intent.confidence,
            code=code,
            # A refusal's reason may quote a store error of any length: record its start
            # rather than fail to record the refusal (the domain bounds text fields).
            gate_reason=reason,  # evidence: RefusedIntent escapes and cuts it, never refuses
            policy_version=policy_version,
            actor=intent.actor,
            reason=intent.reason,
            timestamp=self.clock(),
            correlation_id=intent.correlation_id,
        )
        try:
            Repository(self.store).save(refusal)
        except Exception:  # the refusal stands even if it cannot be recorded
            log.exception("could not record the refusal (%s)", code)
        return Execution(Outcome.REFUSED, reason, code=code)

    def _exists(self, trade_id: UUID) -> bool:
        return bool(guard(lambda: list(self.store.events.get(trade_id, lte=1))))


def in_mode(request: OrderRequest, mode: PositionMode) -> OrderRequest:
    """``request`` with the position side a venue in ``mode`` needs: in hedge mode the side
    an entry opens (buy: long) or a reduce-only exit closes (sell: long)."""
    if mode != "hedge":
        return request
    long = (request.side == "sell") if request.reduce_only else (request.side == "buy")
    return replace(request, position_side="long" if long else "short")


def _cap_exceeded(intent: TradeIntent, max_leverage: Decimal | None) -> tuple[str, str] | None:
    """The intent's own leverage over the policy's (the account's cap is
    ``app.commands.exposure_caps``)."""
    if max_leverage is not None and intent.leverage and intent.leverage > max_leverage:
        return "LEVERAGE_CAP", f"leverage {intent.leverage} exceeds the policy cap {max_leverage}"
    return None


def _position_side(intent: TradeIntent) -> PositionSide:
    return "long" if intent.side == "long" else "short"
