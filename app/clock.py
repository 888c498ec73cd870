"""The one place that reads the wall clock; everything else is given the time."""

from datetime import UTC, datetime


def utc_now() -> datetime:
    return datetime.now(UTC)
