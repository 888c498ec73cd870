"""Choosing the venue by configuration: ``paper`` or ``ccxt:<exchange id>``."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy import Engine

from adapters.paper.venue import PaperVenue
from domain.errors import InvalidCommand
from domain.venue import ExchangePort


def build_venue(
    spec: str, engine: Engine, clock: Callable[[], datetime], *, sandbox: bool = False
) -> ExchangePort:
    """The venue named by ``spec``. Raises InvalidCommand for an unknown one."""
    if spec == "paper":
        return PaperVenue(engine, clock)
    kind, _, exchange_id = spec.partition(":")
    if kind == "ccxt" and exchange_id:
        from adapters.ccxt_venue import CcxtVenue  # noqa: PLC0415 - ccxt takes ~1 s to import

        return CcxtVenue.from_id(exchange_id, sandbox=sandbox)
    raise InvalidCommand(f"unknown exchange {spec!r}: use 'paper' or 'ccxt:<exchange id>'")
