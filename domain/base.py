"""What every tradecore event carries, and the checks on it.

Each event records who acted (``actor``), why (``reason``) and the ``correlation_id`` /
``causation_id`` pair, so an incident can be traced end to end through the one log
(docs/ARCHITECTURE.md, decision 8). Event classes are a permanent schema: their topics are stable
(``domain.<module>:<Aggregate>.<Event>``) and they carry ``class_version`` for upcasting.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate

from domain.errors import InvalidCommand
from domain.validation import decimal_value, instant_value, text_value


class TradecoreAggregate(Aggregate):
    """Base of every tradecore aggregate."""


def require_text(value: str | None, field: str) -> str:
    """Return ``value`` stripped; raises InvalidCommand naming ``field`` if it is empty, too
    long or holds control characters (see :func:`domain.validation.text_value`)."""
    return text_value(value, field)


def require_aware(timestamp: datetime, field: str = "timestamp") -> datetime:
    """Refuse naive datetimes (a log read in another timezone must mean the same instant)
    and instants outside the range every column holds (:func:`domain.validation.instant_value`)."""
    return instant_value(timestamp, field)


def to_decimal(value: Decimal | str | int, field: str) -> Decimal:
    """Parse a money or ratio figure exactly and within what a ``Numeric`` column and decimal
    arithmetic hold; floats are refused (:func:`domain.validation.decimal_value`)."""
    return decimal_value(value, field)


def trace_ids(correlation_id: UUID | None, causation_id: UUID | None) -> None:
    """Type-check trace ids early: a string here would silently become a different schema."""
    for name, value in (("correlation_id", correlation_id), ("causation_id", causation_id)):
        if value is not None and not isinstance(value, UUID):
            raise InvalidCommand(f"{name} must be a UUID")


def event_id(originator_id: UUID, version: int) -> UUID:
    """A stable id for the event at ``version`` of an aggregate: what a later event names as
    its ``causation_id``. The library gives events no id of their own."""
    return uuid5(originator_id, f"event/{version}")
