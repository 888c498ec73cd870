"""The old system's ``trade_state.json``, read into plain values: all trades or none.

The file maps trade ids to each trade's state, written over the years under several names
for each field. Parsing is pure (the caller reads the file) and refuses the whole file if
anything in it is invalid, listing every problem so an operator can fix it in one go.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import partial
from typing import Annotated, Any, Literal, Self, TypeVar

from pydantic import BaseModel, BeforeValidator, ValidationError, model_validator

from domain.base import require_text
from domain.errors import InvalidCommand
from domain.policy import MAX_LEVERAGE
from domain.validation import decimal_value, instant_text, refused_character, symbol_value

MAX_REPORTED = 10
T = TypeVar("T")
QUOTES = ("USDT", "USDC", "BUSD", "USD")
SIDES = {"long": "long", "buy": "long", "short": "short", "sell": "short"}
STATUSES = dict.fromkeys(["open", "active", "opened"], "open")
STATUSES |= dict.fromkeys(["closed", "exited", "done"], "closed")
_PAIR = re.compile(r"([A-Z0-9]+)([/_-])([A-Z0-9]+)(?::([A-Z0-9]+))?")
_JOINED = re.compile(rf"([A-Z0-9]+?)({'|'.join(QUOTES)})")  # lazy: BUSD wins over USD


class LegacyFileInvalid(InvalidCommand):
    """The legacy file cannot be imported; the message names each position or trade+field."""


@dataclass(frozen=True)
class LegacyTrade:
    """One trade as the legacy file states it: figures exact, times aware and in UTC."""

    legacy_id: str
    symbol: str
    side: Literal["long", "short"]
    quantity: Decimal
    entry_price: Decimal
    leverage: Decimal
    stop_loss: Decimal | None
    take_profit: Decimal | None
    opened_at: datetime
    status: Literal["open", "closed"]
    exit_price: Decimal | None
    closed_at: datetime | None
    realized_pnl: Decimal | None


def _show(value: object) -> str:
    if isinstance(value, dict | list):
        return "an object" if isinstance(value, dict) else "a list"
    text = json.dumps(value, ensure_ascii=False)
    if refused_character(text) is not None:  # a lone surrogate, a line separator...
        text = json.dumps(value)
    return text if len(text) <= 80 else f"{text[:77]}..."


def _number(value: object, *, positive: bool = False, at_most: Decimal | None = None) -> Decimal:
    if not isinstance(value, str):  # JSON numbers arrive as their text (see _load)
        raise ValueError(f"must be a finite number, got {_show(value)}")
    return _checked(decimal_value, value.strip(), positive=positive, maximum=at_most)


def _checked(validator: Callable[..., T], value: object, **rules: Any) -> T:
    """``validator``'s answer, its refusal as the ValueError pydantic reports per field."""
    try:
        return validator(value, "value", **rules)
    except InvalidCommand as exc:
        raise ValueError(str(exc).removeprefix("value").lstrip(": ")) from None


def _choice(table: dict[str, str], value: object) -> str:
    choice = table.get(value.strip().casefold()) if isinstance(value, str) else None
    if choice is None:
        raise ValueError(f"must be one of {', '.join(table)}, got {_show(value)}")
    return choice


def _symbol(value: object) -> str:
    text = value.strip().upper() if isinstance(value, str) else ""
    if match := _PAIR.fullmatch(text):
        base, separator, quote, settle = match.groups()
    elif match := _JOINED.fullmatch(text):
        (base, quote), separator, settle = match.groups(), "", None
    else:
        raise ValueError(f"must be a symbol such as BTC/USDT:USDT or BTCUSDT, got {_show(value)}")
    if separator != "/" and quote not in QUOTES:
        raise ValueError(f"must be quoted in one of {', '.join(QUOTES)}, got {text}")
    if settle not in (None, quote):
        raise ValueError(f"must be a linear contract (settled in its quote), got {text}")
    return _checked(symbol_value, f"{base}/{quote}:{quote}")


def _instant(value: object) -> datetime:
    if not isinstance(value, str):
        raise ValueError(f"must be ISO-8601 or epoch seconds/ms, got {_show(value)}")
    return _checked(instant_text, value)


_positive = partial(_number, positive=True)
# Each field's check, and the names the old system wrote it under (any case, camelCase too).
FIELDS: dict[str, tuple[Callable[[object], object], str]] = {
    "symbol": (_symbol, "symbol pair market instrument"),
    "side": (partial(_choice, SIDES), "side direction position_side"),
    "entry_price": (_positive, "entry_price entry open_price avg_entry_price price"),
    "quantity": (_positive, "quantity qty size amount contracts position_size"),
    "leverage": (partial(_positive, at_most=MAX_LEVERAGE), "leverage lev"),
    "stop_loss": (_positive, "stop_loss sl stop"),
    "take_profit": (_positive, "take_profit tp target"),
    "opened_at": (_instant, "opened_at entry_time open_time opened timestamp created_at"),
    "status": (partial(_choice, STATUSES), "status state"),
    "exit_price": (_positive, "exit_price close_price"),
    "closed_at": (_instant, "closed_at exit_time close_time"),
    "realized_pnl": (_number, "realized_pnl pnl profit"),
}
FIELD_OF_KEY = {
    name.replace("_", ""): field for field, (_, names) in FIELDS.items() for name in names.split()
}
CHECKED = {field: BeforeValidator(check) for field, (check, _) in FIELDS.items()}


def _same(field: str, a: object, b: object) -> bool:
    try:  # by meaning: "buy" and "long" say the same side, 1 and "1.0" the same quantity
        return FIELDS[field][0](a) == FIELDS[field][0](b)
    except ValueError:  # the invalid one is reported as a disagreement
        return isinstance(a, str) and a == b


class _Fields(BaseModel):
    symbol: Annotated[str, CHECKED["symbol"]]
    side: Annotated[Literal["long", "short"], CHECKED["side"]]
    quantity: Annotated[Decimal, CHECKED["quantity"]]
    entry_price: Annotated[Decimal, CHECKED["entry_price"]]
    leverage: Annotated[Decimal, CHECKED["leverage"]] = Decimal(1)
    stop_loss: Annotated[Decimal | None, CHECKED["stop_loss"]] = None
    take_profit: Annotated[Decimal | None, CHECKED["take_profit"]] = None
    opened_at: Annotated[datetime, CHECKED["opened_at"]]
    status: Annotated[Literal["open", "closed"], CHECKED["status"]] = "open"
    exit_price: Annotated[Decimal | None, CHECKED["exit_price"]] = None
    closed_at: Annotated[datetime | None, CHECKED["closed_at"]] = None
    realized_pnl: Annotated[Decimal | None, CHECKED["realized_pnl"]] = None

    @model_validator(mode="before")
    @classmethod
    def _one_value_per_field(cls, data: Any) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise ValueError(f"must be an object, got {_show(data)}")
        found: dict[str, tuple[str, Any]] = {}
        conflicts = []  # all of them, so one edit of the file fixes every one
        for key, value in data.items():
            field = FIELD_OF_KEY.get(re.sub("[-_]", "", key).casefold())
            if field is None or value is None:  # null is how old writers said "not set"
                continue
            was, old = found.setdefault(field, (key, value))
            if was != key and not _same(field, old, value):
                conflicts.append(f"{field}: {was} and {key} disagree: {_show(old)}, {_show(value)}")
        if conflicts:
            raise ValueError("; ".join(conflicts))
        return {field: value for field, (_, value) in found.items()}

    @model_validator(mode="after")
    def _exit_only_when_closed(self) -> Self:
        # An open trade with an exit may well be closed: either guess could be wrong.
        if self.status == "open" and (self.exit_price or self.closed_at):
            raise ValueError("exit_price, closed_at: given, but the trade's status is open")
        if self.closed_at is not None and self.closed_at < self.opened_at:
            raise ValueError("closed_at: before opened_at")
        return self


def _load(text: str, source: str) -> Any:
    def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        # json keeps the last of two equal keys: a trade silently lost. Refuse instead.
        if len(found := dict(pairs)) < len(pairs):
            key = next(key for key, n in Counter(k for k, _ in pairs).items() if n > 1)
            raise LegacyFileInvalid(f"{source}: key {json.dumps(key)} appears twice")
        return found

    try:
        return json.loads(
            text.removeprefix("\ufeff"),
            # Numbers stay the text written, for Decimal without a detour through float; NaN
            # and Infinity, kept as text too, are refused as values of their field.
            parse_float=str,
            parse_int=str,
            parse_constant=str,
            object_pairs_hook=unique_keys,
        )
    except json.JSONDecodeError as exc:
        raise LegacyFileInvalid(
            f"{source}: not valid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        ) from None
    except RecursionError:
        raise LegacyFileInvalid(f"{source}: not valid JSON: nested too deeply") from None


def _entries(document: Any, source: str) -> tuple[list[tuple[str, Any]], list[str]]:
    """(id, raw trade) pairs in file order, and the problems found with the ids."""
    if isinstance(document, dict) and list(document) == ["trades"]:
        document = document["trades"] if isinstance(document["trades"], dict | list) else document
    if isinstance(document, list):
        ids = [t.get("id", t.get("trade_id")) if isinstance(t, dict) else None for t in document]
        pairs = list(zip(ids, document, strict=True))
    elif isinstance(document, dict):
        pairs = list(document.items())
    else:
        raise LegacyFileInvalid(f"{source}: must be a JSON object of trades, got {_show(document)}")
    entries: dict[str, Any] = {}
    problems = []
    for position, (legacy_id, raw) in enumerate(pairs, start=1):
        try:
            if not isinstance(legacy_id, str):
                raise InvalidCommand('must be an object with an "id" or "trade_id"')
            require_text(legacy_id, "id")
        except InvalidCommand as exc:
            problems.append(f"trade #{position}: {exc}")
            continue
        if legacy_id in entries:
            problems.append(f"trade {_show(legacy_id)}: id appears twice")
        entries[legacy_id] = raw
    return list(entries.items()), problems


def parse_legacy_trades(text: str, *, source: str) -> list[LegacyTrade]:
    """Every trade of a ``trade_state.json`` text, in file order; ``{}`` gives ``[]``.

    ``source`` names the file in messages. All or nothing: raises LegacyFileInvalid naming
    the position of malformed JSON, or each invalid trade and field (the first few of them).
    """
    entries, problems = _entries(_load(text, source), source)
    trades = []
    for legacy_id, raw in entries:
        try:
            fields = _Fields.model_validate(raw)
        except ValidationError as exc:
            for error in exc.errors(include_url=False):
                where = "".join(f"{part}: " for part in error["loc"])
                cause = error.get("ctx", {}).get("error")
                message = "missing" if error["type"] == "missing" else str(cause or error["msg"])
                problems.append(f"trade {_show(legacy_id)}: {where}{message}")
            continue
        trades.append(LegacyTrade(legacy_id=legacy_id, **fields.model_dump()))
    if len(problems) > MAX_REPORTED:
        problems[MAX_REPORTED:] = [f"and {len(problems) - MAX_REPORTED} more problems"]
    if problems:
        raise LegacyFileInvalid("\n".join(f"{source}: {problem}" for problem in problems))
    return trades
