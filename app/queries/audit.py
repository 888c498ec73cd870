"""Audit: the log replayed to any instant, timelines, and incident reports.

Every answer here is rebuilt from the event log — aggregates at the versions they had at a
log position (from snapshots where they exist), never today's read-model rows. The one read
model used is the timestamp index (``projections.event_index``), to turn an instant into a
log position and to find a time range without scanning the log.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from eventsourcing.domain import DomainEventProtocol
from eventsourcing.utils import get_topic
from sqlalchemy import and_, func, select

from adapters.repository import Repository
from app.bootstrap import Core
from app.queries.cli_views import risk_dict
from app.queries.incident import build_incident
from app.queries.log_events import describe, incident_id, topics_matching
from domain.account import Account
from domain.emergency import Emergency
from domain.errors import InvalidCommand
from domain.ids import EMERGENCY_ID, POLICY_ID, account_id
from domain.market_regime import MarketRegime
from domain.model_consumer import ModelConsumer
from domain.policy import Policy
from domain.sizing_record import SizingRecord, decision_id_for
from domain.trade import Trade
from projections.event_index import EventIndexProjection
from projections.tables import event_index

TRADE_CLOSED = get_topic(Trade.Closed)


class Audit:
    def __init__(self, core: Core, *, catch_up: bool = True) -> None:
        """``catch_up``: bring the timestamp index to the head first (a reader that must not
        write, the status API, leaves it to the worker)."""
        self.core = core
        if catch_up:
            index = core.runner.projection(EventIndexProjection.default_name)
            core.runner.catch_up_projection(index)

    # -- instants and positions -------------------------------------------------------------

    def position_at(self, at: datetime) -> int:
        """The last log position recorded at or before ``at``."""
        ix = event_index.c
        with self.core.engine.connect() as conn:
            position = conn.execute(
                select(func.coalesce(func.max(ix.notification_id), 0)).where(ix.recorded_at <= at)
            ).scalar_one()
        return int(position)

    def position_of(self, originator_id: UUID, version: int) -> int:
        ix = event_index.c
        with self.core.engine.connect() as conn:
            found = conn.execute(
                select(ix.notification_id).where(
                    ix.originator_id == originator_id, ix.originator_version == version
                )
            ).scalar_one_or_none()
        if found is None:
            raise LookupError(f"event {originator_id} v{version} is not in the index")
        return int(found)

    # -- the state at an instant --------------------------------------------------------------

    def state_at(self, at: datetime) -> dict[str, Any]:
        """The whole core as it was at ``at``, rebuilt from the log up to that instant."""
        state = self.state_at_position(self.position_at(at))
        state["at"] = at
        return state

    def state_at_position(self, position: int) -> dict[str, Any]:
        with self.core.engine.connect() as conn:
            versions = self.core.reader.latest_versions(conn, position) if position else []
        by_id = {originator: (version, topic) for originator, version, topic in versions}
        policy = self._get(Policy, by_id.get(POLICY_ID))
        emergency = self._get(Emergency, by_id.get(EMERGENCY_ID))
        account = self._get(Account, by_id.get(account_id(self.core.settings.account)))
        trades = [
            trade
            for originator, (version, topic) in by_id.items()
            if topic.startswith("domain.trade:Trade.") and topic != TRADE_CLOSED
            if (trade := self._get(Trade, (version, topic), originator)) is not None
            and trade.is_open
        ]
        consumers = [
            c
            for originator, (version, topic) in by_id.items()
            if topic.startswith("domain.model_consumer:")
            if (c := self._get(ModelConsumer, (version, topic), originator)) is not None
        ]
        regimes = [
            r
            for originator, (version, topic) in by_id.items()
            if topic.startswith("domain.market_regime:")
            if (r := self._get(MarketRegime, (version, topic), originator)) is not None
        ]
        return {
            "position": position,
            "policy": _policy(policy),
            "emergency": _emergency(emergency),
            "open_trades": [_trade(t) for t in sorted(trades, key=lambda t: t.opened_at)],
            "positions": _positions(trades),
            "risk": _risk(account, policy),
            "models": sorted(
                (
                    {
                        "consumer": c.consumer,
                        "model": c.model,
                        "version": c.model_version,
                        "loaded_at": c.loaded_at,
                        "last_error": c.last_error,
                    }
                    for c in consumers
                ),
                key=lambda m: (str(m["consumer"]), str(m["model"])),
            ),
            "regimes": {r.symbol: r.regime for r in regimes},
        }

    def _get(
        self, cls: type[Any], found: tuple[int, str] | None, originator: UUID | None = None
    ) -> Any:
        if found is None:
            return None
        known: dict[type[Any], UUID] = {
            Policy: POLICY_ID,
            Emergency: EMERGENCY_ID,
            Account: account_id(self.core.settings.account),
        }
        aggregate_id = originator or known[cls]
        aggregate: object = self.core.store.repository.get(aggregate_id, version=found[0])
        return aggregate if isinstance(aggregate, cls) else None

    # -- timelines ------------------------------------------------------------------------------

    def timeline(
        self,
        since: datetime,
        until: datetime,
        *,
        event_type_or_topic: str | None = None,
        aggregate: UUID | None = None,
        limit: int = 10_000,
    ) -> list[dict[str, Any]]:
        """The events recorded in [since, until], in log order, described."""
        if until < since:
            raise InvalidCommand(f"--until ({until.isoformat()}) is before --since")
        ix = event_index.c
        query = select(ix.notification_id).where(ix.recorded_at >= since, ix.recorded_at <= until)
        if event_type_or_topic:
            topics = topics_matching(event_type_or_topic)
            if not topics:
                raise InvalidCommand(
                    f"--type {event_type_or_topic!r} names no event type (try an event name "
                    "such as risk.drawdown.hard_breach or Emergency.Activated, or part of one)"
                )
            query = query.where(ix.topic.in_(sorted(topics)))
        if aggregate is not None:
            query = query.where(ix.originator_id == aggregate)
        query = query.order_by(ix.notification_id).limit(limit)
        with self.core.engine.connect() as conn:
            ids = list(conn.execute(query).scalars())
            stored = self.core.reader.stored_at(conn, ids)
        # ``at`` is the time an event refers to (market time in a replay); ``stored_at`` when
        # the store recorded it (the server's time, None before migration 0016).
        return [describe(p, e) | {"stored_at": stored.get(p)} for p, e in self.events(ids)]

    def events(self, ids: Iterable[int]) -> list[tuple[int, DomainEventProtocol[UUID]]]:
        with self.core.engine.connect() as conn:
            stored = self.core.reader.by_ids(conn, list(ids))
        mapper = self.core.store.mapper
        return [(p, mapper.to_domain_event(s)) for p, s in stored]

    # -- incidents ----------------------------------------------------------------------------

    def incidents(self) -> list[dict[str, Any]]:
        """Every emergency activation, newest first, in brief."""
        events = list(self.core.store.events.get(EMERGENCY_ID))
        out = []
        for activated in reversed([e for e in events if isinstance(e, Emergency.Activated)]):
            number = activated.activation_number
            own = [e for e in events if getattr(e, "activation_number", None) == number]
            flat = next((e for e in own if isinstance(e, Emergency.AccountFlat)), None)
            reset = next((e for e in own if isinstance(e, Emergency.Reset)), None)
            out.append(
                {
                    "incident_id": incident_id(events, number),
                    "activation_number": number,
                    "source": activated.source,
                    "reason": activated.reason,
                    "activated_at": activated.timestamp,
                    "flat_at": flat.timestamp if flat else None,
                    "time_to_flat_ms": flat.time_to_flat_ms if flat else None,
                    "reset_at": reset.timestamp if reset else None,
                }
            )
        return out

    def incident(self, ref: str | None) -> dict[str, Any]:
        """The report of one activation (``ref``: its number or id; None: the latest)."""
        events = list(self.core.store.events.get(EMERGENCY_ID))
        activations = [e for e in events if isinstance(e, Emergency.Activated)]
        if not activations:
            raise InvalidCommand("no incident recorded: the emergency stop was never activated")
        chosen = activations[-1] if ref is None else _pick(events, activations, ref)
        return build_incident(self, events, chosen)

    def account_events_between(self, since: datetime, until: datetime) -> list[Any]:
        ix = event_index.c
        query = (
            select(ix.notification_id)
            .where(
                and_(
                    ix.originator_id == account_id(self.core.settings.account),
                    ix.recorded_at >= since,
                    ix.recorded_at <= until,
                )
            )
            .order_by(ix.notification_id)
        )
        with self.core.engine.connect() as conn:
            ids = list(conn.execute(query).scalars())
        return [e for _, e in self.events(ids)]

    def correlated(self, correlation_id: UUID) -> list[tuple[int, Any]]:
        ix = event_index.c
        with self.core.engine.connect() as conn:
            ids = list(
                conn.execute(
                    select(ix.notification_id)
                    .where(ix.correlation_id == correlation_id)
                    .order_by(ix.notification_id)
                ).scalars()
            )
        return self.events(ids)

    def entry_model(self, trade_id: UUID) -> dict[str, Any]:
        """What the trade's entry was sized on: ``confidence`` and the ``model`` and
        ``model_version`` that produced it (all None when no sizing decision names one,
        e.g. an operator's trade or a decision recorded before models were named)."""
        record = Repository(self.core.store).find(SizingRecord, decision_id_for(trade_id))
        return {
            "confidence": record.confidence if record else None,
            "model": record.model if record else None,
            "model_version": record.model_version if record else None,
        }

    def trade_closes_between(self, since: datetime, until: datetime) -> list[tuple[int, Any]]:
        ix = event_index.c
        with self.core.engine.connect() as conn:
            ids = list(
                conn.execute(
                    select(ix.notification_id)
                    .where(
                        ix.topic == TRADE_CLOSED, ix.recorded_at >= since, ix.recorded_at <= until
                    )
                    .order_by(ix.notification_id)
                ).scalars()
            )
        return self.events(ids)


def _pick(events: list[Any], activations: list[Any], ref: str) -> Any:
    for activated in activations:
        number = activated.activation_number
        if ref == str(number) or ref == str(incident_id(events, number)):
            return activated
    raise InvalidCommand(
        f"no incident {ref!r}: give an activation number (1..{len(activations)}) or an id "
        "from `audit incident --list`"
    )


# -- plain forms of the aggregates as they were ----------------------------------------------------


def _policy(policy: Policy | None) -> dict[str, Any] | None:
    if policy is None:
        return None
    limits = policy.limits
    return {
        "allow_new_trades": policy.allow_new_trades,
        "emergency_mode": policy.emergency_mode,
        "emergency_reason": policy.emergency_reason,
        "max_leverage": limits.max_leverage,
        "max_position_notional": limits.max_position_notional,
        "drawdown_soft_threshold": limits.drawdown_soft_threshold,
        "drawdown_hard_threshold": limits.drawdown_hard_threshold,
        "updated_by": policy.updated_by,
        "updated_at": policy.updated_at,
        "version": policy.version,
    }


def _emergency(emergency: Emergency | None) -> dict[str, Any]:
    if emergency is None:
        return {"active": False, "activation_number": 0}
    return {
        "active": emergency.active,
        "activation_number": emergency.activation_number,
        "source": emergency.source,
        "reason": emergency.reason,
        "activated_at": emergency.activated_at,
        "activated_by": emergency.activated_by,
        "flat": emergency.flat,
        "reset_at": emergency.reset_at,
        "reset_by": emergency.reset_by,
        "version": emergency.version,
    }


def _trade(trade: Trade) -> dict[str, Any]:
    return {
        "trade_id": trade.id,
        "symbol": trade.symbol,
        "side": trade.side,
        "quantity": trade.quantity,
        "entry_price": trade.entry_price,
        "opened_at": trade.opened_at,
        "source": trade.source,
    }


def _positions(trades: list[Trade]) -> list[dict[str, Any]]:
    """The venue positions as tradecore knew them: its open trades, by symbol and side."""
    held: dict[tuple[str, str], Decimal] = {}
    for trade in trades:
        key = (trade.symbol, trade.side)
        held[key] = held.get(key, Decimal(0)) + trade.quantity
    return [
        {"symbol": symbol, "side": side, "quantity": quantity}
        for (symbol, side), quantity in sorted(held.items())
        if quantity > 0
    ]


def _risk(account: Account | None, policy: Policy | None) -> dict[str, Any]:
    """The breaker as the log had it (no reading age: there is no 'now' in the past)."""
    risk = risk_dict(account, policy, None)
    risk["entries_allowed"] = policy.allow_new_trades if policy else False
    return risk
