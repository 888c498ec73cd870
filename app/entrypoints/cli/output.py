"""Output conventions: data on stdout (JSON with --json), diagnostics on stderr."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, is_dataclass
from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import Any
from uuid import UUID

import typer
from rich.console import Console

from domain.errors import InvalidCommand

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


def plain(value: Any) -> Any:  # noqa: PLR0911 - one return per JSON type
    """JSON-ready form: Decimals as strings (exact), datetimes as ISO 8601, UUIDs as text."""
    if is_dataclass(value) and not isinstance(value, type):
        return plain(asdict(value))
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, Decimal):
        return _decimal_text(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, Enum):
        return value.value
    return value


def _decimal_text(value: Decimal) -> str:
    """Exact, as given ("1.0" stays "1.0"), except the artefacts of arithmetic: an exponent
    (0E-8) or more than 8 decimals of trailing zeros (1.4001994400000000)."""
    if not value.is_finite():
        return str(value)
    if value == 0:
        return "0"
    text = str(value)
    exponent = value.as_tuple().exponent
    if "E" in text or (isinstance(exponent, int) and exponent < -8):
        return format(value.normalize(), "f")
    return text


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(plain(data), indent=2, sort_keys=False) + "\n")


def confirmer(yes: bool) -> Any:
    """A confirm callback for dangerous commands: --yes skips it; no terminal, no prompt."""

    def confirm(summary: str) -> None:
        if yes:
            return
        if not sys.stdin.isatty():
            raise InvalidCommand(
                f"confirmation required to {summary}: pass --yes (stdin is not a terminal)"
            )
        if not typer.confirm(f"{summary[:1].upper()}{summary[1:]}. Proceed?", err=True):
            err.print("aborted: nothing was recorded")
            raise typer.Exit(1)

    return confirm
