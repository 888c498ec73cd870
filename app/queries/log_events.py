"""Events of the log as an operator reads them: a name, the figures, the trace ids.

Shared by the audit (timelines, states) and the incident report.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate
from eventsourcing.utils import get_topic

from domain.account import Account
from domain.base import event_id
from domain.emergency import LEGACY_INSTALLATION, Emergency, activation_id_for
from domain.market_regime import MarketRegime
from domain.model_consumer import ModelConsumer
from domain.model_registry import ModelRegistry
from domain.policy import Policy
from domain.refusal import RefusedIntent
from domain.sizing_agent import SizingAgent
from domain.sizing_record import SizingRecord
from domain.trade import Trade

AGGREGATES = (
    Policy,
    Emergency,
    Account,
    Trade,
    ModelRegistry,
    ModelConsumer,
    SizingAgent,
    SizingRecord,
    MarketRegime,
    RefusedIntent,
)
# What every event carries; the rest of its attributes are its figures.
COMMON = {
    "originator_id",
    "originator_version",
    "timestamp",
    "actor",
    "reason",
    "correlation_id",
    "causation_id",
}


def topics_matching(fragment: str) -> set[str]:
    """The topics of the events an operator may mean by ``fragment``, ignoring case: part of
    an operator name (``risk.drawdown``), of a class name (``Emergency.Activated``, also
    written ``EmergencyActivated``) or of a topic."""
    want = fragment.lower()
    squeezed = want.replace(".", "").replace("_", "")
    found = set()
    for aggregate in AGGREGATES:
        for value in vars(aggregate).values():
            if not (isinstance(value, type) and issubclass(value, Aggregate.Event)):
                continue
            topic = get_topic(value)
            names = [topic, value.__qualname__, str(getattr(value, "operator_name", ""))]
            if (
                any(want in n.lower() for n in names)
                or squeezed in value.__qualname__.replace(".", "").lower()
            ):
                found.add(topic)
    return found


def event_type(event: object) -> str:
    name = getattr(type(event), "operator_name", None)
    return name if isinstance(name, str) else type(event).__qualname__


def describe(position: int, event: Any) -> dict[str, Any]:
    """One event as a timeline row: time, type, aggregate, actor, reason, figures, trace."""
    return {
        "position": position,
        "at": event.timestamp,
        "type": event_type(event),
        "topic": get_topic(type(event)),
        "aggregate": f"{type(event).__qualname__.split('.')[0]}:{event.originator_id}",
        "version": event.originator_version,
        "event_id": event_id(event.originator_id, event.originator_version),
        "actor": getattr(event, "actor", None),
        "reason": getattr(event, "reason", None)
        or getattr(event, "emergency_reason", None)
        or getattr(event, "close_reason", None),
        "figures": {k: v for k, v in vars(event).items() if k not in COMMON},
        "correlation_id": getattr(event, "correlation_id", None),
        "causation_id": getattr(event, "causation_id", None),
    }


def incident_id(latch_events: list[Any], number: int) -> UUID:
    """The id of activation ``number``, from the latch's events (the first is its creation)."""
    installation = getattr(latch_events[0], "installation_id", LEGACY_INSTALLATION)
    return activation_id_for(installation, number)
