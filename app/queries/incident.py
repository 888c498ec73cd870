"""The incident report of one emergency activation, rebuilt from the log.

What tripped it (the drawdown reading and thresholds, or the operator and reason), the
equity path before it, the causation chain from the trigger to the last closing fill, each
close order with its fill price and slippage, each trade it closed with the model version
whose confidence sized its entry, the time to flat, the policy and the model versions in
force, and the reset.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol
from uuid import UUID

from app.queries.log_events import describe, incident_id
from domain.account import Account
from domain.base import event_id
from domain.emergency import Emergency


class LogReader(Protocol):
    """What the report reads of the log (``app.queries.audit.Audit`` is one): positions are
    notification ids of the event log."""

    def position_of(self, originator_id: UUID, version: int) -> int: ...

    def state_at_position(self, position: int) -> dict[str, Any]: ...

    def correlated(self, correlation_id: UUID) -> list[tuple[int, Any]]: ...

    def trade_closes_between(self, since: datetime, until: datetime) -> list[tuple[int, Any]]: ...

    def account_events_between(self, since: datetime, until: datetime) -> list[Any]: ...

    def entry_model(self, trade_id: UUID) -> dict[str, Any]: ...


PATH_BEFORE = timedelta(minutes=10)
PATH_AFTER = timedelta(seconds=30)


def build_incident(audit: LogReader, events: list[Any], activated: Any) -> dict[str, Any]:
    number = activated.activation_number
    own = [e for e in events if getattr(e, "activation_number", None) == number]
    flat = next((e for e in own if isinstance(e, Emergency.AccountFlat)), None)
    incomplete = [e for e in own if isinstance(e, Emergency.FlattenIncomplete)]
    reset = next((e for e in own if isinstance(e, Emergency.Reset)), None)
    triggered = next((e for e in own if isinstance(e, Emergency.Triggered)), None)
    closes = [
        (e, close) for e in own if isinstance(e, Emergency.PositionsClosed) for close in e.closes
    ]
    activated_at = activated.timestamp
    end = (flat.timestamp if flat else activated_at) + PATH_AFTER
    position = audit.position_of(activated.originator_id, activated.originator_version)
    at_activation = audit.state_at_position(position)

    # The trace: everything recorded under the incident's correlation id (the reading, the
    # breach, the activation, the flatten record), then the trades closed by the flatten.
    traced = audit.correlated(activated.correlation_id) if activated.correlation_id else []
    if not traced:
        traced = [(audit.position_of(e.originator_id, e.originator_version), e) for e in own]
    traced_ids = {event_id(e.originator_id, e.originator_version) for _, e in traced}
    trade_closes = [
        (p, e)
        for p, e in audit.trade_closes_between(activated_at, end + PATH_AFTER)
        if e.close_reason == "emergency" and e.causation_id in traced_ids
    ]
    account_events = audit.account_events_between(activated_at - PATH_BEFORE, end)
    trigger = _trigger(activated, traced)
    rows = [describe(p, e) for p, e in sorted([*traced, *trade_closes], key=lambda pe: pe[0])]
    return {
        "incident_id": incident_id(events, number),
        "activation_number": number,
        "trigger": trigger,
        "activated_at": activated_at,
        "activated_by": activated.actor,
        "flat_at": flat.timestamp if flat else None,
        "time_to_flat_ms": flat.time_to_flat_ms if flat else None,
        "flat": flat is not None,
        # The most any record of the activation counts: a close found by look-up after the
        # summary was first recorded (an answer lost to a timeout) counts too.
        "positions_closed": max(
            [
                e.positions_closed
                for e in own
                if isinstance(e, Emergency.AccountFlat | Emergency.Triggered)
            ]
            + [len({(c["symbol"], c["side"]) for _, c in closes})]
        ),
        "orders_canceled": triggered.orders_canceled if triggered else 0,
        "flatten_attempts": max((getattr(e, "attempt", 0) for e in own), default=0),
        "incomplete_reports": len(incomplete),
        "orders": [_order(e, close) for e, close in closes],
        "trades_closed": [
            {
                "trade_id": e.originator_id,
                "at": e.timestamp,
                "realized_pnl": e.realized_pnl,
                # The model version whose confidence sized this trade's entry.
                "entry": audit.entry_model(e.originator_id),
            }
            for _, e in trade_closes
        ],
        "equity_path": [
            {
                "at": e.venue_at,
                "equity": e.equity,
                "drawdown": e.drawdown,
                "peak": e.peak,
                "status": e.status,
            }
            for e in account_events
            if isinstance(e, Account.EquityRecorded)
        ],
        "breaches": [
            {"at": e.timestamp, "type": describe(0, e)["type"], "drawdown": e.drawdown}
            for e in account_events
            if isinstance(e, Account.SoftBreach | Account.HardBreach | Account.Recovered)
        ],
        "causation_chain": _chain(rows),
        "timeline": rows,
        "policy_at_activation": at_activation["policy"],
        "models_at_activation": at_activation["models"],
        "position_at_activation": position,
        "reset": (
            {
                "at": reset.timestamp,
                "actor": reset.actor,
                "reason": reset.reason,
                "forced": reset.forced,
            }
            if reset
            else None
        ),
    }


def _trigger(activated: Any, traced: list[tuple[int, Any]]) -> dict[str, Any]:
    trigger: dict[str, Any] = {
        "source": activated.source,
        "actor": activated.actor,
        "reason": activated.reason,
    }
    breach = next((e for _, e in traced if isinstance(e, Account.HardBreach)), None)
    if breach is None:
        return trigger
    reading = next(
        (
            e
            for _, e in traced
            if isinstance(e, Account.EquityRecorded)
            and event_id(e.originator_id, e.originator_version) == breach.causation_id
        ),
        None,
    )
    trigger.update(
        breach_event_id=event_id(breach.originator_id, breach.originator_version),
        equity=breach.equity,
        peak=breach.peak,
        drawdown=breach.drawdown,
        hard_threshold=breach.threshold,
        confirmation=breach.confirmation,
        reading_event_id=breach.causation_id,
        reading_at=reading.venue_at if reading else None,
        reading_source=reading.source if reading else None,
    )
    return trigger


def _order(event: Any, close: dict[str, Any]) -> dict[str, Any]:
    """One closing order: its fill, and its slippage against the mark the flattener saw
    (positive: worse than the mark)."""
    price: Decimal | None = close.get("average_price")
    mark: Decimal | None = close.get("mark_price")
    slippage_bps = None
    if price is not None and mark:
        # Closing a long sells: a fill below the mark is adverse; closing a short buys.
        adverse = (mark - price) if close["side"] == "long" else (price - mark)
        slippage_bps = (adverse / mark * 10_000).quantize(Decimal("0.01"))
    return {
        "client_order_id": close.get("client_order_id"),
        "symbol": close["symbol"],
        "position_side": close["side"],
        "quantity": close["quantity"],
        "fill_price": price,
        "mark_price": mark,
        "slippage_bps": slippage_bps,
        "attempt": event.attempt,
        "at": event.timestamp,
        "event_id": event_id(event.originator_id, event.originator_version),
    }


def _chain(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each traced event with the event it was caused by, so the chain from the reading to
    every closing fill can be followed link by link."""
    known: set[UUID] = {r["event_id"] for r in rows}
    return [
        {
            "event_id": r["event_id"],
            "type": r["type"],
            "at": r["at"],
            "caused_by": r["causation_id"] if r["causation_id"] in known else None,
        }
        for r in rows
    ]
