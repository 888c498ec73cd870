"""Choosing the venue by configuration: ``paper`` or ``ccxt:<exchange id>``."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

from sqlalchemy import Engine

from adapters.paper.venue import PaperVenue
from domain.errors import InvalidCommand
from domain.venue import ExchangePort, OutcomeUnknown, VenueUnavailable

T = TypeVar("T")


def build_venue(
    spec: str, engine: Engine, clock: Callable[[], datetime], *, sandbox: bool = False
) -> ExchangePort:
    """The venue named by ``spec``. Raises InvalidCommand for an unknown one."""
    if spec == "paper":
        return PaperVenue(engine, clock)
    kind, _, exchange_id = spec.partition(":")
    if kind == "ccxt" and exchange_id:
        from adapters.ccxt.errors import CcxtConfigurationError  # noqa: PLC0415
        from adapters.ccxt.venue import CcxtVenue  # noqa: PLC0415 - ccxt takes ~1 s to import

        try:
            return CcxtVenue.from_id(exchange_id, sandbox=sandbox)
        except CcxtConfigurationError as e:
            raise InvalidCommand(str(e)) from None
    raise InvalidCommand(f"unknown exchange {spec!r}: use 'paper' or 'ccxt:<exchange id>'")


def equity_unsupported(venue: ExchangePort) -> str | None:
    """Why ``venue`` can never report equity for the drawdown breaker, or None. Asks the venue
    nothing (a missing mapping, not an outage)."""
    if venue.name.startswith("ccxt:"):
        from adapters.ccxt.venue import CcxtVenue  # noqa: PLC0415 - ccxt takes ~1 s to import

        if isinstance(venue, CcxtVenue):
            return venue.equity_unsupported()
    return None


def retry_transient(
    call: Callable[[], T], *, tries: int = 8, sleep: Callable[[float], None] = time.sleep
) -> T:
    """Call a venue *read*, retrying transient failures (unavailable, rate-limited, timed
    out) with a bounded backoff; the last failure is raised. Never use it for an order."""
    for n in range(tries):
        try:
            return call()
        except (VenueUnavailable, OutcomeUnknown):
            if n == tries - 1:
                raise
            sleep(min(0.01 * 2**n, 0.2))
    raise AssertionError("unreachable")
