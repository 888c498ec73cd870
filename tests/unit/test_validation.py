"""Every validator, and the commands that use them, fed arbitrary text and numbers, either
returns a value its column can hold or raises InvalidCommand — never anything else.

The limits below are written from the column definitions (projections/tables.py,
adapters/paper/tables.py) and Postgres' documented type limits, not from validation.py.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from decimal import Context, Decimal, Inexact
from uuid import uuid4

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.errors import InvalidCommand
from domain.policy import Policy
from domain.trade import Trade
from domain.validation import (
    BIGINT,
    INTEGER,
    decimal_value,
    epoch_instant,
    instant_text,
    instant_value,
    integer_value,
    symbol_value,
    text_value,
)

# Numeric (no precision given): up to 131072 digits before the point, 16383 after.
NUMERIC_INTEGER_DIGITS = 131072
NUMERIC_FRACTION_DIGITS = 16383
# Decimal arithmetic in the aggregates runs in the default context: 28 digits.
ARITHMETIC = Context(prec=28, traps=[Inexact])
BIGINT_RANGE = (-(2**63), 2**63 - 1)
INTEGER_RANGE = (-(2**31), 2**31 - 1)
# Text columns: Postgres cannot hold NUL, and text travels as UTF-8; a log line must stay one
# line. The longest text input is 500 characters.
TEXT_LONGEST = 500
# timestamptz: 4713 BC to 294276 AD, and it must be aware to mean one instant.
SHARED = settings(deadline=None, max_examples=300, suppress_health_check=[HealthCheck.too_slow])

numbers_as_text = st.one_of(
    st.decimals(allow_nan=True, allow_infinity=True).map(str),
    st.integers().map(str),
    st.floats().map(repr),
    st.from_regex(r"[+-]?[0-9]{0,40}(\.[0-9]{0,40})?([eE][+-]?[0-9]{1,12})?", fullmatch=True),
    st.sampled_from(["-0", "1e-999999999", "1e400", "NaN", "sNaN", "-Infinity", "0E-999999"]),
)
anything = st.one_of(
    numbers_as_text,
    st.text(),
    st.integers(),
    st.decimals(allow_nan=True, allow_infinity=True),
    st.floats(),
    st.booleans(),
    st.none(),
    st.binary(),
)


def fits_numeric(value: object) -> None:
    assert isinstance(value, Decimal)
    assert value.is_finite()
    assert not (value.is_zero() and value.is_signed()), "negative zero"
    _, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)
    assert len(digits) + exponent <= NUMERIC_INTEGER_DIGITS
    assert -exponent <= NUMERIC_FRACTION_DIGITS
    ARITHMETIC.plus(value)  # raises Inexact if arithmetic would round it


def fits_text(value: object) -> None:
    assert isinstance(value, str)
    assert 0 < len(value) <= TEXT_LONGEST
    value.encode("utf-8")  # raises on a lone surrogate
    assert "\x00" not in value
    assert all(unicodedata.category(c) not in ("Cc", "Zl", "Zp") for c in value), value


def fits_timestamptz(value: object) -> None:
    assert isinstance(value, datetime)
    assert value.utcoffset() is not None
    value.astimezone(UTC).isoformat()


def outcome(validator: Callable[[], object], fits: Callable[[object], None]) -> None:
    try:
        value = validator()
    except InvalidCommand:
        return
    fits(value)


@SHARED
@given(anything)
def test_a_decimal_either_fits_a_numeric_column_exactly_or_is_refused(value: object) -> None:
    outcome(lambda: decimal_value(value, "x"), fits_numeric)
    outcome(lambda: decimal_value(value, "x", positive=True), fits_numeric)


@pytest.mark.parametrize(("column", "limits"), [(BIGINT, BIGINT_RANGE), (INTEGER, INTEGER_RANGE)])
@SHARED
@given(value=st.one_of(anything, st.integers(-(2**70), 2**70).map(str)))
def test_an_integer_either_fits_its_column_or_is_refused(
    column: tuple[int, int], limits: tuple[int, int], value: object
) -> None:
    def fits(result: object) -> None:
        assert isinstance(result, int) and not isinstance(result, bool)
        assert limits[0] <= result <= limits[1]

    outcome(lambda: integer_value(value, "x", column=column), fits)


@SHARED
@given(st.one_of(st.text(), st.text(st.characters(codec="utf-8")), anything))
def test_text_either_fits_a_text_column_on_one_line_or_is_refused(value: object) -> None:
    outcome(lambda: text_value(value, "x"), fits_text)


symbolish = st.one_of(
    st.from_regex(r"[A-Za-z0-9]{0,22}/[A-Z0-9]{0,22}(:[A-Z0-9\n]{0,22})?(-[A-Z0-9]{1,3})?"),
    anything,
)


@SHARED
@given(symbolish)
def test_a_symbol_either_is_plain_ascii_upper_case_past_its_base_or_is_refused(
    value: object,
) -> None:
    def fits(result: object) -> None:
        fits_text(result)
        assert isinstance(result, str) and result.isascii() and len(result) <= 64
        base, _, rest = result.partition("/")
        assert base and rest and rest == rest.upper()
        assert all(c.isalnum() or c in "/:-" for c in result)

    outcome(lambda: symbol_value(value), fits)


@SHARED
@given(st.one_of(numbers_as_text, st.text(), anything, st.datetimes().map(datetime.isoformat)))
def test_a_written_time_either_fits_a_timestamptz_column_or_is_refused(value: object) -> None:
    outcome(lambda: instant_text(value), fits_timestamptz)
    outcome(lambda: epoch_instant(value), fits_timestamptz)


@SHARED
@given(
    st.datetimes(
        timezones=st.one_of(
            st.none(),
            st.just(UTC),
            st.timedeltas(-timedelta(hours=23), timedelta(hours=23)).map(timezone),
        )
    )
)
def test_a_datetime_either_is_aware_and_in_range_or_is_refused(value: datetime) -> None:
    outcome(lambda: instant_value(value), fits_timestamptz)


@pytest.mark.parametrize(
    "value",
    ["1e-999999999", "1e400", "NaN", "1.23456789012345678901234567890", 1.5, True, "1_000"],
)
def test_the_issue_examples_are_refused_as_numbers(value: object) -> None:
    with pytest.raises(InvalidCommand, match=r"^x "):
        decimal_value(value, "x")


@pytest.mark.parametrize("value", ["\uff13", "\u0663", "1_000", "0x10"])
def test_a_number_in_another_script_or_with_underscores_is_not_a_number(value: str) -> None:
    with pytest.raises(InvalidCommand, match=r"^x is not a number"):
        decimal_value(value, "x")


def test_negative_zero_is_recorded_as_zero() -> None:
    zero = decimal_value("-0", "x")
    assert zero == 0 and not zero.is_signed()


@pytest.mark.parametrize("value", ["t\x00", "a\nb", "\ud800", "a\u2028b", "x\u202ey", "x" * 501])
def test_text_with_nul_newline_surrogate_separator_override_or_too_long_is_refused(
    value: str,
) -> None:
    with pytest.raises(InvalidCommand, match=r"^id "):
        text_value(value, "id")


@pytest.mark.parametrize(
    "value", ["BTC/USDT:USDT\nX", "btc/usdt:usdt", "BTC/USDT:USDT ", "BTC", "BTC//USDT", ""]
)
def test_symbols_outside_the_grammar_are_refused(value: str) -> None:
    with pytest.raises(InvalidCommand, match=r"^symbol must be a unified symbol"):
        symbol_value(value)


@pytest.mark.parametrize(
    "value", ["BTC/USDT:USDT", "1000PEPE/USDT:USDT", "BTC/USD:BTC-251226", "kPEPE/USDC:USDC"]
)
def test_unified_symbols_are_accepted_as_given(value: str) -> None:
    assert symbol_value(value) == value


def test_a_time_past_the_range_is_refused_not_overflowed() -> None:
    with pytest.raises(InvalidCommand, match="timestamp must be from 1970 up to 2200"):
        instant_text("253402300800000")  # epoch ms of the year 10000
    with pytest.raises(InvalidCommand, match="timestamp must be from 1970 up to 2200"):
        instant_text("9999-12-31T23:59:59+00:00")


def test_a_seed_past_bigint_is_refused() -> None:
    with pytest.raises(InvalidCommand, match="seed must be between"):
        integer_value(99999999999999999999, "seed")


# -- the commands that take these inputs ------------------------------------------------------

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@SHARED
@given(st.sampled_from(["max_leverage", "max_position_notional"]), anything, anything)
def test_a_policy_change_either_records_values_that_fit_or_is_refused(
    field: str, value: object, reason: object
) -> None:
    policy = Policy.create(actor="tester", reason="test", timestamp=T0)
    policy.collect_events()
    try:
        policy.update_limits(actor="tester", reason=reason, timestamp=T0, **{field: value})  # type: ignore[arg-type]
    except InvalidCommand:
        assert policy.collect_events() == []
        return
    for changed in policy.collect_events():  # none when the value was already in force
        fits_numeric(getattr(changed, field))
        fits_text(changed.reason)  # type: ignore[attr-defined]


@SHARED
@given(symbolish, anything, anything)
def test_a_trade_opens_with_values_that_fit_or_is_refused(
    symbol: object, quantity: object, reason: object
) -> None:
    try:
        trade = Trade.open(
            trade_id=uuid4(),
            symbol=symbol,  # type: ignore[arg-type]
            side="long",
            quantity=quantity,  # type: ignore[arg-type]
            leverage="2",
            actor="tester",
            reason=reason,  # type: ignore[arg-type]
            timestamp=T0,
        )
    except InvalidCommand:
        return
    [opened] = trade.collect_events()
    fits_text(opened.symbol)  # type: ignore[attr-defined]
    fits_numeric(opened.intended_quantity)  # type: ignore[attr-defined]
    fits_text(opened.reason)  # type: ignore[attr-defined]
