"""What every tradecore event carries, and the checks on it.

Each event records who acted (``actor``), why (``reason``) and the ``correlation_id`` /
``causation_id`` pair, so an incident can be traced end to end through the one log
(DESIGN.md decision 8). Event classes are a permanent schema: their topics are stable
(``domain.<module>:<Aggregate>.<Event>``) and they carry ``class_version`` for upcasting.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal, InvalidOperation
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate

from domain.errors import InvalidCommand

MAX_TEXT = 500


class TradecoreAggregate(Aggregate):
    """Base of every tradecore aggregate."""


def require_text(value: str | None, field: str) -> str:
    """Return ``value`` stripped, or raise InvalidCommand naming ``field`` if it is empty."""
    text = (value or "").strip()
    if not text:
        raise InvalidCommand(f"{field} must not be empty")
    if len(text) > MAX_TEXT:
        raise InvalidCommand(f"{field} is longer than {MAX_TEXT} characters")
    return text


def require_aware(timestamp: datetime) -> datetime:
    """Refuse naive datetimes: a log read in another timezone must mean the same instant."""
    if timestamp.tzinfo is None or timestamp.utcoffset() is None:
        raise InvalidCommand("timestamp must carry a timezone")
    return timestamp


def to_decimal(value: Decimal | str | int, field: str) -> Decimal:
    """Parse a money or ratio figure exactly; floats are refused (binary rounding)."""
    if isinstance(value, float):
        raise InvalidCommand(f"{field} must be given as a decimal string, not a float")
    try:
        number = Decimal(value)
    except (InvalidOperation, TypeError, ValueError):
        raise InvalidCommand(f"{field} is not a number: {value!r}") from None
    if not number.is_finite():
        raise InvalidCommand(f"{field} must be a finite number, got {value!r}")
    return number


def trace_ids(correlation_id: UUID | None, causation_id: UUID | None) -> None:
    """Type-check trace ids early: a string here would silently become a different schema."""
    for name, value in (("correlation_id", correlation_id), ("causation_id", causation_id)):
        if value is not None and not isinstance(value, UUID):
            raise InvalidCommand(f"{name} must be a UUID")


def event_id(originator_id: UUID, version: int) -> UUID:
    """A stable id for the event at ``version`` of an aggregate: what a later event names as
    its ``causation_id``. The library gives events no id of their own."""
    return uuid5(originator_id, f"event/{version}")
