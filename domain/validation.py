"""One validator per kind of input: a value is either one the log, the read models and the
venue's tables can hold, or it is refused with InvalidCommand naming the input and the rule.

Every command validates here before an event exists, because an event is immutable: a value a
read model cannot store, once recorded, wedges that read model at that event for good.

The bounds follow where values are stored (``projections/tables.py``,
``adapters/paper/tables.py``) and how they are computed with:

- decimal numbers go to ``Numeric`` columns and through ``decimal`` arithmetic, whose default
  context keeps :data:`MAX_SIGNIFICANT_DIGITS` digits (more would be rounded away silently);
  magnitudes stay below ``10**MAX_INTEGER_DIGITS``, and at most :data:`MAX_FRACTION_DIGITS`
  digits follow the point (Postgres holds 16,383; ``1e-999999999`` would not fit). Any result
  of default-context arithmetic on values within the bounds is itself within them, which is
  why the fraction bound is wider than the significant-digit one.
- integers go to ``BigInteger`` (:data:`BIGINT`) or ``Integer`` (:data:`INTEGER`) columns.
- text goes to ``Text`` columns and log lines: no NUL (Postgres text cannot hold it), no
  control or line-breaking characters (they forge log lines), no lone surrogates (they cannot
  be encoded as UTF-8), at most :data:`MAX_TEXT` characters.
- symbols follow ccxt's unified form ``BASE/QUOTE:SETTLE`` (an optional ``-``-separated
  expiry/strike tail), parts of ``A-Z`` and ``0-9``.
- instants are timezone-aware and between :data:`EARLIEST` and :data:`LATEST`.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation

from domain.errors import InvalidCommand

MAX_INTEGER_DIGITS = 15
MAX_FRACTION_DIGITS = 40
MAX_SIGNIFICANT_DIGITS = 28
# Longer number text is refused before parsing (a million digits take time to parse).
MAX_NUMBER_TEXT = 64

BIGINT = (-(2**63), 2**63 - 1)
INTEGER = (-(2**31), 2**31 - 1)

MAX_TEXT = 500
# Unicode categories refused in text: controls (NUL, newline, ESC...), lone surrogates, and
# the line and paragraph separators some viewers break lines at.
_REFUSED_CATEGORIES = {"Cc", "Cs", "Zl", "Zp"}
# Bidirectional overrides and isolates reorder what an operator reads in a log line.
BIDI_CONTROLS = set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")

MAX_SYMBOL = 64
_PART = "[A-Z0-9]{1,20}"
# A base may hold lower-case letters: venues list such contracts (kPEPE/USDC:USDC), and a
# venue position whose symbol the grammar refused could never be adopted by reconciliation.
_BASE = "[A-Za-z0-9]{1,20}"
SYMBOL_GRAMMAR = re.compile(rf"{_BASE}/{_PART}(?::{_PART}(?:-{_PART}){{0,3}})?")

EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)
# Epoch seconds pass 1e11 only in the year 5138, so a larger figure is milliseconds.
EPOCH_MS_ABOVE = Decimal("1e11")
# Spelled as Decimal() reads them: refused below as "must be a finite number".
_NON_FINITE = {"nan", "+nan", "-nan", "snan", "+snan", "-snan", "inf", "+inf", "-inf"}
_NON_FINITE |= {"infinity", "+infinity", "-infinity"}
_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def shown(value: object, limit: int = 40) -> str:
    """``value`` for an error message: one line, control characters escaped, shortened."""
    text = ascii(value) if isinstance(value, str) else ascii(str(value))
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def _check_ascii_number(value: object, name: str) -> None:
    # Decimal() also reads digits of any script and underscores (a full-width three,
    # '1_000'): a number typed here is plain ASCII, what an operator reads back in the log.
    if (
        isinstance(value, str)
        and value.strip().lower() not in _NON_FINITE
        and not _NUMBER.fullmatch(value.strip())
    ):
        raise InvalidCommand(f"{name} is not a number: {shown(value)}")


def decimal_value(
    value: object,
    name: str,
    *,
    positive: bool = False,
    minimum: Decimal | None = None,
    maximum: Decimal | None = None,
) -> Decimal:
    """``value`` (a ``Decimal``, ``int`` or decimal text) as an exact Decimal that fits.

    Refused with InvalidCommand naming ``name``: floats (binary rounding), text that is not
    a number or longer than MAX_NUMBER_TEXT, NaN and infinities, magnitudes of
    ``10**MAX_INTEGER_DIGITS`` or more, more than MAX_FRACTION_DIGITS digits after the point
    or MAX_SIGNIFICANT_DIGITS in all (trailing zeros after the point do not count), and
    values outside ``positive`` (> 0) / ``minimum`` / ``maximum`` (inclusive). A negative
    zero is returned as zero, so the log never holds ``-0``.
    """
    if isinstance(value, bool) or not isinstance(value, Decimal | str | int):
        if isinstance(value, float):
            raise InvalidCommand(f"{name} must be given as a decimal string, not a float")
        raise InvalidCommand(f"{name} is not a number: {shown(value)}")
    if isinstance(value, str) and len(value) > MAX_NUMBER_TEXT:
        raise InvalidCommand(f"{name} is not a number of at most {MAX_NUMBER_TEXT} characters")
    if isinstance(value, int) and not -(10**MAX_INTEGER_DIGITS) < value < 10**MAX_INTEGER_DIGITS:
        raise InvalidCommand(
            f"{name} is out of range: below 1e{MAX_INTEGER_DIGITS} in magnitude expected"
        )
    _check_ascii_number(value, name)
    try:
        number = Decimal(value)
    except (InvalidOperation, ValueError):
        if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):  # its exponent overflows
            raise InvalidCommand(f"{name} is out of range, got {shown(value)}") from None
        raise InvalidCommand(f"{name} is not a number: {shown(value)}") from None
    if not number.is_finite():
        raise InvalidCommand(f"{name} must be a finite number, got {shown(value)}")
    _check_digits(number, name, value)
    if number.is_zero():
        # -0 becomes 0, and a zero of absurd scale (0E-999999999) would not fit a column.
        number = Decimal(0)
    if positive and number <= 0:
        raise InvalidCommand(f"{name} must be positive, got {number}")
    if minimum is not None and number < minimum:
        raise InvalidCommand(f"{name} must be at least {minimum}, got {number}")
    if maximum is not None and number > maximum:
        raise InvalidCommand(f"{name} must be at most {maximum}, got {number}")
    return number


def _check_digits(number: Decimal, name: str, value: object) -> None:
    # Counted on the digits, not through normalize(), which rounds to the context precision.
    _, digits, exponent = number.as_tuple()
    assert isinstance(exponent, int)  # finite
    significant = list(digits)
    while len(significant) > 1 and significant[-1] == 0 and exponent < 0:
        significant.pop()
        exponent += 1
    if significant == [0]:
        return  # zero, at any scale, is zero
    while significant and significant[0] == 0:
        significant.pop(0)
    integer_digits = len(significant) + exponent
    if integer_digits > MAX_INTEGER_DIGITS:
        raise InvalidCommand(
            f"{name} is out of range: below 1e{MAX_INTEGER_DIGITS} in magnitude expected, "
            f"got {shown(value)}"
        )
    if -exponent > MAX_FRACTION_DIGITS:
        raise InvalidCommand(
            f"{name} is out of range: at most {MAX_FRACTION_DIGITS} digits after the point "
            f"expected, got {shown(value)}"
        )
    if len(significant) > MAX_SIGNIFICANT_DIGITS:
        raise InvalidCommand(
            f"{name} has too many digits: at most {MAX_SIGNIFICANT_DIGITS} significant digits "
            f"expected, got {shown(value)}"
        )


def integer_value(value: object, name: str, *, column: tuple[int, int] = BIGINT) -> int:
    """``value`` (an int or its decimal text) within ``column``'s (low, high) range,
    inclusive: :data:`BIGINT` or :data:`INTEGER`, or a narrower range the input needs.
    Raises InvalidCommand naming ``name``."""
    if isinstance(value, str) and len(value) <= MAX_NUMBER_TEXT:
        text = value.strip()
        if re.fullmatch(r"[+-]?[0-9]+", text):
            value = int(text)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidCommand(f"{name} must be a whole number, got {shown(value)}")
    low, high = column
    if not low <= value <= high:
        raise InvalidCommand(f"{name} must be between {low} and {high}, got {shown(value)}")
    return value


def refused_character(text: str) -> int | None:
    """The index of the first character text inputs refuse (see :func:`text_value`), or
    None."""
    for position, char in enumerate(text):
        if unicodedata.category(char) in _REFUSED_CATEGORIES or char in BIDI_CONTROLS:
            return position
    return None


def text_value(value: object, name: str, *, max_length: int = MAX_TEXT) -> str:
    """``value`` stripped of surrounding spaces: not empty, at most ``max_length``
    characters, without NUL, control, line-breaking or bidirectional-override characters and
    without lone surrogates. Raises InvalidCommand naming ``name`` and the rule."""
    if not isinstance(value, str):
        if value is None:
            raise InvalidCommand(f"{name} must not be empty")
        raise InvalidCommand(f"{name} must be text, got {shown(value)}")
    if len(value) > 4 * max_length:  # refused before scanning a huge text
        raise InvalidCommand(f"{name} is longer than {max_length} characters")
    if (position := refused_character(value)) is not None:
        raise InvalidCommand(
            f"{name} must not contain control characters; character {position + 1} is "
            f"{value[position]!a}"
        )
    text = value.strip()
    if not text:
        raise InvalidCommand(f"{name} must not be empty")
    if len(text) > max_length:
        raise InvalidCommand(f"{name} is longer than {max_length} characters")
    return text


def evidence_text(value: object, *, max_length: int = MAX_TEXT) -> str:
    """Text that tradecore records as evidence rather than takes as input (a venue's error
    message, an exception's text): never refused, since refusing it would stop the safety
    path that records it. Control, line-breaking and bidirectional characters and lone
    surrogates are written as escapes (``\\n``, ``\\x00``), so the text fits a ``Text``
    column and a log line; cut to ``max_length`` characters (an ellipsis marks the cut)."""
    text = str(value)
    if refused_character(text) is not None:
        text = "".join(
            char.encode("unicode_escape").decode("ascii")
            if unicodedata.category(char) in _REFUSED_CATEGORIES or char in BIDI_CONTROLS
            else char
            for char in text
        )
    text = text.strip() or "(no detail)"
    return text if len(text) <= max_length else text[: max_length - 1] + "…"


def symbol_value(value: object, name: str = "symbol") -> str:
    """A unified symbol such as ``BTC/USDT:USDT`` (``BASE/QUOTE[:SETTLE[-TAIL...]]``, parts
    of A-Z and 0-9, the base also a-z, at most MAX_SYMBOL characters), exactly as given.
    Raises InvalidCommand."""
    if not isinstance(value, str) or len(value) > MAX_SYMBOL or not SYMBOL_GRAMMAR.fullmatch(value):
        raise InvalidCommand(
            f"{name} must be a unified symbol such as BTC/USDT:USDT (A-Z, 0-9), got {shown(value)}"
        )
    return value


def instant_value(value: object, name: str = "timestamp") -> datetime:
    """A timezone-aware datetime from EARLIEST (inclusive) to LATEST (exclusive). Raises
    InvalidCommand naming ``name``."""
    if not isinstance(value, datetime):
        raise InvalidCommand(f"{name} must be a time, got {shown(value)}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidCommand(f"{name} must carry a timezone")
    if not EARLIEST <= value < LATEST:
        raise InvalidCommand(
            f"{name} must be from {EARLIEST.year} up to {LATEST.year}, got {shown(value)}"
        )
    return value


def epoch_instant(value: object, name: str = "timestamp") -> datetime:
    """Epoch seconds, or milliseconds when above 1e11 (an int, a Decimal or decimal text),
    as an aware UTC datetime within :func:`instant_value`'s range. Raises InvalidCommand."""
    number = decimal_value(value, name, positive=True)
    seconds = number / 1000 if number > EPOCH_MS_ABOVE else number
    if seconds >= Decimal(int((LATEST - EARLIEST).total_seconds())):
        raise InvalidCommand(
            f"{name} must be from {EARLIEST.year} up to {LATEST.year}, got {shown(value)}"
        )
    moment = EARLIEST + timedelta(microseconds=int(seconds * 1_000_000))
    return instant_value(moment, name)


def instant_text(value: object, name: str = "timestamp") -> datetime:
    """A time written as epoch seconds or milliseconds (a decimal number, see
    :func:`epoch_instant`) or as ISO-8601 text (naive text is read as UTC), as an aware UTC
    datetime within :func:`instant_value`'s range. Raises InvalidCommand naming ``name``."""
    if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        return epoch_instant(value.strip(), name)
    text = text_value(value, name, max_length=MAX_NUMBER_TEXT)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except (ValueError, OverflowError):
        raise InvalidCommand(
            f"{name}: not a time (ISO 8601 or epoch seconds/ms): {shown(value)}"
        ) from None
    return instant_value(moment, name)


def chain_anchor(value: object, name: str = "--anchor") -> tuple[int, str]:
    """A hash-chain anchor written down earlier, ``ID:HASH`` as `tradecore verify` prints
    it: a positive notification id and 64 hex digits (sha256). Returns (id, lowercase
    hash). Raises InvalidCommand naming ``name``."""
    text = value.strip() if isinstance(value, str) else value
    if not isinstance(text, str) or text.count(":") != 1:
        raise InvalidCommand(f"{name} must be EVENT_ID:HASH, got {shown(value)}")
    event_id, digest = text.split(":")
    number = integer_value(event_id, f"{name}'s event id", column=(1, BIGINT[1]))
    if not re.fullmatch(r"[0-9a-fA-F]{64}", digest):
        raise InvalidCommand(f"{name}'s hash must be 64 hex digits, got {shown(digest)}")
    return number, digest.lower()
