"""Reading the old system's trade_state.json: every variant it wrote, and all or nothing."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.legacy_trades import LegacyFileInvalid, LegacyTrade, parse_legacy_trades
from domain.validation import BIDI_CONTROLS

SOURCE = "trade_state.json"


def parse(text: str) -> list[LegacyTrade]:
    return parse_legacy_trades(text, source=SOURCE)


def refusal(text: str) -> str:
    with pytest.raises(LegacyFileInvalid) as caught:
        parse(text)
    return str(caught.value)


def trade(**fields: Any) -> dict[str, Any]:
    """A valid legacy trade's fields, overridden by ``fields`` (None removes one)."""
    base: dict[str, Any] = {
        "symbol": "BTCUSDT",
        "side": "long",
        "quantity": "1",
        "entry_price": "100",
        "opened_at": "2024-01-01T00:00:00Z",
    }
    base.update(fields)
    return {key: value for key, value in base.items() if value is not None}


def one(**fields: Any) -> str:
    return json.dumps({"abc": trade(**fields)})


# -- examples ---------------------------------------------------------------------------------

VARIANT_FILE = """{
  "t-1": {"symbol": "BTC/USDT:USDT", "side": "long", "entry_price": 42000.5,
          "quantity": "0.010", "leverage": 3, "stop_loss": 41000, "take_profit": "45000",
          "opened_at": "2024-03-01T12:00:00Z", "status": "open", "strategy": "breakout"},
  "t-2": {"Pair": "ETHUSDT", "Direction": "SELL", "entryPrice": "3000.25", "QTY": 1.5,
          "lev": "10", "SL": 3100, "tp": 2800, "timestamp": 1709294400000, "State": "Active"},
  "t-3": {"market": "sol-usdc", "position_side": "Buy", "avg_entry_price": "100",
          "contracts": 2, "open_time": "2024-03-01 10:00:00", "status": "CLOSED",
          "close_price": "110", "exitTime": 1709301600, "realizedPnl": "20.0"}
}"""


def test_a_file_with_variant_field_names_gives_exactly_the_expected_trades() -> None:
    assert parse(VARIANT_FILE) == [
        LegacyTrade(
            legacy_id="t-1",
            symbol="BTC/USDT:USDT",
            side="long",
            quantity=Decimal("0.010"),
            entry_price=Decimal("42000.5"),
            leverage=Decimal(3),
            stop_loss=Decimal(41000),
            take_profit=Decimal(45000),
            opened_at=datetime(2024, 3, 1, 12, tzinfo=UTC),
            status="open",
            exit_price=None,
            closed_at=None,
            realized_pnl=None,
        ),
        LegacyTrade(
            legacy_id="t-2",
            symbol="ETH/USDT:USDT",
            side="short",
            quantity=Decimal("1.5"),
            entry_price=Decimal("3000.25"),
            leverage=Decimal(10),
            stop_loss=Decimal(3100),
            take_profit=Decimal(2800),
            opened_at=datetime(2024, 3, 1, 12, tzinfo=UTC),
            status="open",
            exit_price=None,
            closed_at=None,
            realized_pnl=None,
        ),
        LegacyTrade(
            legacy_id="t-3",
            symbol="SOL/USDC:USDC",
            side="long",
            quantity=Decimal(2),
            entry_price=Decimal(100),
            leverage=Decimal(1),
            stop_loss=None,
            take_profit=None,
            opened_at=datetime(2024, 3, 1, 10, tzinfo=UTC),
            status="closed",
            exit_price=Decimal(110),
            closed_at=datetime(2024, 3, 1, 14, tzinfo=UTC),
            realized_pnl=Decimal(20),
        ),
    ]


def test_figures_keep_the_digits_written_without_float_noise() -> None:
    text = one().replace('"quantity": "1"', '"qty": 0.1, "size": 0.10000000000000000001')
    assert "qty and size disagree" in refusal(text)
    [parsed] = parse(one().replace('"entry_price": "100"', '"price": 0.1'))
    assert str(parsed.entry_price) == "0.1"
    [parsed] = parse(one().replace('"entry_price": "100"', '"price": 0.30000000000000000001'))
    assert parsed.entry_price == Decimal("0.30000000000000000001")


def test_the_trades_wrapper_and_a_list_with_ids_are_read_like_the_plain_object() -> None:
    plain = parse(json.dumps({"7": trade(), "x": trade(side="sell")}))
    assert parse(json.dumps({"trades": {"7": trade(), "x": trade(side="sell")}})) == plain
    listed = [trade() | {"id": 7}, trade(side="sell") | {"trade_id": "x"}]
    assert parse(json.dumps(listed)) == plain
    assert parse(json.dumps({"trades": listed})) == plain


@pytest.mark.parametrize("text", ["{}", "[]", '{"trades": {}}', " \n{ }\n"])
def test_a_file_without_trades_gives_an_empty_list(text: str) -> None:
    assert parse(text) == []


def test_truncated_file_is_refused_naming_the_position() -> None:
    text = '{\n  "abc": {\n    "symbol": "BTCUSDT",\n    "side": "lo'
    assert refusal(text) == (
        "trade_state.json: not valid JSON at line 4, column 13: Unterminated string starting at"
    )
    assert refusal('{\n  "abc": {"symbol": "BTCUSDT"}\n  "def": {}\n}') == (
        "trade_state.json: not valid JSON at line 3, column 3: Expecting ',' delimiter"
    )


def test_empty_text_is_refused_as_invalid_json() -> None:
    assert "not valid JSON at line 1, column 1" in refusal("")


@pytest.mark.parametrize("text", ["42", '"trades"', "null", "true", "[1, 2]"])
def test_a_file_that_is_not_an_object_of_trades_is_refused(text: str) -> None:
    assert refusal(text).startswith("trade_state.json: ")


def test_a_trade_missing_its_symbol_is_refused_naming_trade_and_field() -> None:
    assert refusal(one(symbol=None)) == 'trade_state.json: trade "abc": symbol: missing'


def test_a_null_required_field_counts_as_missing() -> None:
    text = json.dumps({"abc": trade() | {"quantity": None}})
    assert refusal(text) == 'trade_state.json: trade "abc": quantity: missing'


def test_negative_quantity_is_refused_with_the_value() -> None:
    assert refusal('{"abc": {"symbol": "BTCUSDT", "side": "long", "qty": -1, "price": 1, '
                   '"opened_at": 1709294400}}') == (
        'trade_state.json: trade "abc": quantity: must be positive, got -1'
    )  # fmt: skip


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", '"NaN"', '"inf"'])
def test_nan_and_infinity_are_refused(value: str) -> None:
    text = one().replace('"quantity": "1"', f'"quantity": {value}')
    assert refusal(text).startswith('trade_state.json: trade "abc": quantity: must be a finite')


def test_absurd_magnitudes_are_refused_before_they_overflow_arithmetic() -> None:
    text = one().replace('"quantity": "1"', '"quantity": 1e400000000000000000000')
    assert 'trade "abc": quantity: is out of range' in refusal(text)
    assert "out of range" in refusal(one(entry_price="1e20"))


def test_conflicting_aliases_are_refused_naming_both() -> None:
    message = refusal(one(quantity=None, qty="1", size="2"))
    assert message == 'trade_state.json: trade "abc": quantity: qty and size disagree: "1", "2"'


def test_aliases_that_mean_the_same_are_accepted() -> None:
    agreeing = {
        "qty": 1,
        "size": "1.0",
        "Direction": "buy",
        "pair": "BTC/USDT",
        "timestamp": 1704067200,
    }
    [parsed] = parse(json.dumps({"abc": trade(**agreeing)}))
    assert (parsed.quantity, parsed.side, parsed.symbol) == (1, "long", "BTC/USDT:USDT")


def test_side_and_status_take_their_synonyms_in_any_case() -> None:
    for raw, side in (("BUY", "long"), ("Sell", "short"), (" short ", "short")):
        assert parse(one(side=raw))[0].side == side
    for raw, status in (("ACTIVE", "open"), ("opened", "open"), ("Done", "closed")):
        assert parse(one(status=raw))[0].status == status
    assert parse(one())[0].status == "open"
    assert "side: must be one of long, buy, short, sell" in refusal(one(side="flat"))


@pytest.mark.parametrize(
    "written",
    [
        *(1709294400, 1709294400000, 1709294400.0, "1709294400", "1709294400000.0"),
        *("2024-03-01T12:00", "2024-03-01T12:00:00Z", "2024-03-01T13:00:00+01:00"),
        *("2024-03-01 12:00:00.000", " 2024-03-01T07:00:00-05:00 "),
    ],
)
def test_epoch_ms_seconds_and_iso_times_are_the_same_utc_instant(written: object) -> None:
    opened_at = parse(one(opened_at=written))[0].opened_at
    assert opened_at == datetime(2024, 3, 1, 12, tzinfo=UTC)
    assert opened_at.utcoffset() == timedelta(0)


def test_epoch_milliseconds_keep_their_fraction() -> None:
    assert parse(one(opened_at=1709294400123))[0].opened_at.microsecond == 123000


@pytest.mark.parametrize("written", ["yesterday", -1, 0, "2024-13-01", True, 10**15])
def test_a_time_that_is_no_time_is_refused(written: object) -> None:
    assert 'trade "abc": opened_at: ' in refusal(one(opened_at=written))


@pytest.mark.parametrize(
    ("written", "unified"),
    [
        ("BTC/USDT:USDT", "BTC/USDT:USDT"),
        ("BTC/USDT", "BTC/USDT:USDT"),
        ("btcusdt", "BTC/USDT:USDT"),
        ("BTC-USDT", "BTC/USDT:USDT"),
        ("ETH_USDC", "ETH/USDC:USDC"),
        ("1000PEPEUSDT", "1000PEPE/USDT:USDT"),
        ("ETHBUSD", "ETH/BUSD:BUSD"),
        ("BTCUSD", "BTC/USD:USD"),
        (" sol/usdc:usdc ", "SOL/USDC:USDC"),
    ],
)
def test_symbols_are_normalised_to_the_linear_perpetual_form(written: str, unified: str) -> None:
    assert parse(one(symbol=written))[0].symbol == unified


@pytest.mark.parametrize("written", ["BTC", "BTCEUR", "BTC-EUR", "BTC/USD:BTC", "", 42, "USDT"])
def test_a_symbol_without_a_known_quote_or_not_linear_is_refused(written: object) -> None:
    assert 'trade "abc": symbol: must be' in refusal(one(symbol=written))


def test_leverage_defaults_to_one_and_is_capped_at_125() -> None:
    assert parse(one())[0].leverage == Decimal(1)
    assert parse(one(lev="125"))[0].leverage == Decimal(125)
    assert refusal(one(leverage=126)).endswith("leverage: must be at most 125, got 126")


def test_a_closed_trade_keeps_its_exit_fields() -> None:
    [closed] = parse(
        one(status="exited", exit_price="105.5", close_time="2024-01-02T00:00:00", profit="-3")
    )
    assert (closed.status, closed.exit_price, closed.realized_pnl) == (
        "closed",
        Decimal("105.5"),
        Decimal(-3),
    )
    assert closed.closed_at == datetime(2024, 1, 2, tzinfo=UTC)
    [bare] = parse(one(status="closed"))
    assert (bare.exit_price, bare.closed_at, bare.realized_pnl) == (None, None, None)


def test_an_open_trade_with_an_exit_is_refused_rather_than_guessed() -> None:
    assert "status is open" in refusal(one(exit_price="105"))
    assert "status is open" in refusal(one(status="active", closed_at=1709294400))


def test_a_trade_closed_before_it_opened_is_refused() -> None:
    message = refusal(one(status="closed", closed_at="2023-12-31T00:00:00Z"))
    assert message == 'trade_state.json: trade "abc": closed_at: before opened_at'


def test_every_invalid_trade_is_reported_in_one_message() -> None:
    text = json.dumps({"a": trade(quantity="-1"), "b": trade(), "c": trade(symbol=None)})
    assert refusal(text).splitlines() == [
        'trade_state.json: trade "a": quantity: must be positive, got -1',
        'trade_state.json: trade "c": symbol: missing',
    ]


def test_a_long_list_of_problems_is_cut_after_ten_with_a_count() -> None:
    text = json.dumps({f"t{n}": trade(side="up") for n in range(25)})
    lines = refusal(text).splitlines()
    assert len(lines) == 11
    assert lines[-1] == "trade_state.json: and 15 more problems"


def test_a_key_written_twice_is_refused_not_silently_dropped() -> None:
    text = '{"abc": {"symbol": "BTCUSDT"}, "abc": {"symbol": "ETHUSDT"}}'
    assert refusal(text) == 'trade_state.json: key "abc" appears twice'


def test_list_entries_need_a_unique_id() -> None:
    message = refusal(json.dumps([trade() | {"id": "a"}, trade(), "x"]))
    assert message.splitlines() == [
        'trade_state.json: trade #2: must be an object with an "id" or "trade_id"',
        'trade_state.json: trade #3: must be an object with an "id" or "trade_id"',
    ]
    assert 'trade "a": id appears twice' in refusal(
        json.dumps([trade() | {"id": "a"}, trade() | {"trade_id": "a"}])
    )


def test_a_trade_that_is_not_an_object_is_refused() -> None:
    assert refusal('{"abc": "BTCUSDT"}') == (
        'trade_state.json: trade "abc": must be an object, got "BTCUSDT"'
    )


def test_nesting_deep_enough_to_exhaust_the_parser_is_refused() -> None:
    assert "nested too deeply" in refusal('{"a": ' + "[" * 100_000)


# -- properties -------------------------------------------------------------------------------


class Raw(str):
    """A JSON number's text, written without quotes (json.dumps would round through float)."""


def dump(value: Any) -> str:
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)}: {dump(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(dump(v) for v in value) + "]"
    return json.dumps(value)


ALIASES = {
    "symbol": ["symbol", "pair", "market", "instrument"],
    "side": ["side", "direction", "position_side"],
    "entry_price": ["entry_price", "entry", "open_price", "avg_entry_price", "price"],
    "quantity": ["quantity", "qty", "size", "amount", "contracts", "position_size"],
    "leverage": ["leverage", "lev"],
    "stop_loss": ["stop_loss", "sl", "stop"],
    "take_profit": ["take_profit", "tp", "target"],
    "opened_at": ["opened_at", "entry_time", "open_time", "opened", "timestamp", "created_at"],
    "status": ["status", "state"],
    "exit_price": ["exit_price", "close_price"],
    "closed_at": ["closed_at", "exit_time", "close_time"],
    "realized_pnl": ["realized_pnl", "pnl", "profit"],
}
BASES = ["BTC", "ETH", "SOL", "1000PEPE", "DOGE", "XRP"]
EXTRA_KEYS = ["note", "strategy", "exchange", "order_ids", "meta"]
json_values = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=12,
)
figures = st.decimals(min_value="0.00000001", max_value="10000000", places=8)
instants = st.datetimes(datetime(2015, 1, 1), datetime(2035, 1, 1), timezones=st.just(UTC)).map(
    lambda moment: moment.replace(microsecond=moment.microsecond // 1000 * 1000)
)


@st.composite
def written_key(draw: st.DrawFn, field: str) -> str:
    words = draw(st.sampled_from(ALIASES[field])).split("_")
    style = draw(st.sampled_from(["snake", "camel", "upper", "title"]))
    if style == "camel":
        return words[0] + "".join(word.capitalize() for word in words[1:])
    joined = "_".join(words)
    return joined.upper() if style == "upper" else joined.title() if style == "title" else joined


@st.composite
def written_figure(draw: st.DrawFn, value: Decimal) -> Any:
    return Raw(str(value)) if draw(st.booleans()) else str(value)


@st.composite
def written_instant(draw: st.DrawFn, moment: datetime) -> Any:
    millis = (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)
    offset = timezone(timedelta(minutes=draw(st.integers(-12 * 60, 14 * 60))))
    return draw(
        st.sampled_from(
            [
                moment.replace(tzinfo=None).isoformat(),
                moment.isoformat().replace("+00:00", "Z"),
                moment.astimezone(offset).isoformat(),
                Raw(str(millis)),
                str(millis),
                Raw(str(Decimal(millis).scaleb(-3))),
                str(Decimal(millis).scaleb(-3)),
            ]
        )
    )


@st.composite
def legacy_trades(draw: st.DrawFn, legacy_id: str) -> tuple[dict[str, Any], LegacyTrade]:
    """A trade as the old system might have written it, and what it must parse to."""
    base, quote = draw(st.sampled_from(BASES)), draw(st.sampled_from(["USDT", "USDC", "USD"]))
    closed = draw(st.booleans())
    opened_at = draw(instants)
    optional = st.none() | figures
    expected = LegacyTrade(
        legacy_id=legacy_id,
        symbol=f"{base}/{quote}:{quote}",
        side=draw(st.sampled_from(["long", "short"])),
        quantity=draw(figures),
        entry_price=draw(figures),
        leverage=Decimal(draw(st.integers(1, 125))),
        stop_loss=draw(optional),
        take_profit=draw(optional),
        opened_at=opened_at,
        status="closed" if closed else "open",
        exit_price=draw(optional) if closed else None,
        closed_at=(
            opened_at + draw(st.integers(0, 10**10)) * timedelta(milliseconds=1)
            if closed and draw(st.booleans())
            else None
        ),
        realized_pnl=draw(st.none() | st.decimals("-1000000", "1000000", places=8)),
    )
    symbol = draw(
        st.sampled_from(
            [
                *(f"{base}/{quote}:{quote}", f"{base}/{quote}", f"{base}{quote}"),
                *(f"{base}-{quote}", f"{base}_{quote}".lower()),
            ]
        )
    )
    words = {"long": ["long", "buy"], "short": ["short", "sell"]}[expected.side]
    side = draw(st.sampled_from(words))
    side = draw(st.sampled_from([side, side.upper(), side.title()]))
    statuses = ["closed", "exited", "Done"] if closed else ["open", "ACTIVE", "opened", None]
    written: dict[str, Any] = {
        "symbol": symbol,
        "side": side,
        "status": draw(st.sampled_from(statuses)),
        "leverage": None
        if expected.leverage == 1 and draw(st.booleans())
        else draw(written_figure(expected.leverage)),
        "opened_at": draw(written_instant(opened_at)),
        "closed_at": draw(written_instant(expected.closed_at)) if expected.closed_at else None,
    }
    for field in ("quantity", "entry_price", "stop_loss", "take_profit", "exit_price"):
        value = getattr(expected, field)
        written[field] = None if value is None else draw(written_figure(value))
    if expected.realized_pnl is not None:
        written["realized_pnl"] = draw(written_figure(expected.realized_pnl))
    fields = {draw(written_key(f)): v for f, v in written.items() if v is not None}
    for key in draw(st.lists(st.sampled_from(EXTRA_KEYS), unique=True, max_size=2)):
        fields[key] = draw(json_values)
    return fields, expected


# Ids hold any text but control characters, which every text input refuses (validation.py).
id_chars = st.characters(
    blacklist_categories=("Cc", "Cs", "Zl", "Zp"), blacklist_characters="".join(BIDI_CONTROLS)
)
ids = st.text(id_chars, min_size=1, max_size=12).filter(lambda i: i.strip() and i != "trades")


@st.composite
def legacy_files(draw: st.DrawFn, min_size: int = 0) -> tuple[str, list[LegacyTrade], Any]:
    """(file text, the trades it holds, the document before encoding)."""
    trade_ids = draw(st.lists(ids, min_size=min_size, max_size=5, unique=True))
    pairs = [draw(legacy_trades(legacy_id)) for legacy_id in trade_ids]
    shape = draw(st.sampled_from(["object", "wrapped", "list"]))
    by_id = {legacy_id: fields for legacy_id, (fields, _) in zip(trade_ids, pairs, strict=True)}
    document: Any = by_id
    if shape == "wrapped":
        document = {"trades": by_id}
    elif shape == "list":
        document = [fields | {"id": legacy_id} for legacy_id, fields in by_id.items()]
    return dump(document), [expected for _, expected in pairs], document


@given(legacy_files())
@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)  # a shared machine
def test_any_valid_file_round_trips_to_the_values_written(file: Any) -> None:
    text, expected, _ = file
    assert parse(text) == expected


def outcome(text: str, expected_count: int | None = None) -> list[LegacyTrade] | None:
    """Whatever the input, a whole list or a LegacyFileInvalid; anything else fails the test."""
    try:
        trades = parse(text)
    except LegacyFileInvalid as exc:
        assert str(exc).startswith(f"{SOURCE}: ")
        return None
    assert all(isinstance(t, LegacyTrade) for t in trades)
    if expected_count is not None:
        assert len(trades) == expected_count
    return trades


@given(st.text())
def test_arbitrary_text_gives_trades_or_a_refusal_and_nothing_else(text: str) -> None:
    outcome(text)


def trade_count(document: Any) -> int:
    wrapped = isinstance(document, dict) and list(document) == ["trades"]
    if wrapped and isinstance(document["trades"], dict | list):
        document = document["trades"]
    return len(document) if isinstance(document, dict | list) else 0


objects = st.dictionaries(ids, json_values)


@given(json_values | objects | st.lists(objects) | st.fixed_dictionaries({"trades": objects}))
def test_arbitrary_json_gives_all_its_trades_or_a_refusal(document: Any) -> None:
    outcome(json.dumps(document), trade_count(document))


BAD_VALUES: dict[str, list[Any]] = {
    "symbol": [Raw("42"), "", "BTC", "BTCEUR", "BTC/USD:BTC", True, [], {}, None],
    "side": ["up", "", Raw("1"), None, ["long"]],
    "quantity": [Raw("-1"), Raw("0"), "abc", Raw("NaN"), Raw("Infinity"), True, "1e99", None],
    "entry_price": [Raw("-0.5"), "0", Raw("-Infinity"), "", {"price": 1}, None],
    "leverage": [Raw("0"), "126", Raw("-2"), "x", False],
    "opened_at": ["yesterday", Raw("-5"), "2024-13-01", True, None, Raw("1e20")],
    "status": ["pending", Raw("3"), True, ""],
    "stop_loss": [Raw("-1"), "x", Raw("0")],
    "take_profit": [Raw("-1"), "x", Raw("NaN")],
    "exit_price": [Raw("-1"), "x"],
    "closed_at": ["never", Raw("-1"), "1969-12-31T00:00:00"],
    "realized_pnl": ["x", Raw("NaN"), "1e400"],
}
FIELD_OF_KEY = {
    alias.replace("_", ""): field for field, aliases in ALIASES.items() for alias in aliases
}


def field_of(key: str) -> str | None:
    return FIELD_OF_KEY.get(key.replace("_", "").lower())


def trades_of(document: Any) -> list[tuple[str, dict[str, Any]]]:
    if isinstance(document, list):
        return [(fields["id"], fields) for fields in document]
    document = document.get("trades", document) if list(document) == ["trades"] else document
    return list(document.items())


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(legacy_files(min_size=1), st.data())
def test_one_corrupted_field_refuses_the_whole_file_naming_that_trade(file: Any, data: Any) -> None:
    _, _, document = file
    legacy_id, fields = data.draw(st.sampled_from(trades_of(document)))
    keys = [key for key in fields if field_of(key)]
    key = data.draw(st.sampled_from(keys))
    fields[key] = data.draw(st.sampled_from(BAD_VALUES[field_of(key) or ""]))
    message = refusal(dump(document))
    assert f"trade {json.dumps(legacy_id, ensure_ascii=False)}: " in message


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(legacy_files(min_size=1), st.data())
def test_any_value_in_any_field_gives_every_trade_or_a_refusal(file: Any, data: Any) -> None:
    _, expected, document = file
    _, fields = data.draw(st.sampled_from(trades_of(document)))
    key = data.draw(st.sampled_from(sorted(fields)))
    fields[key] = data.draw(json_values)
    outcome(dump(document), len(expected))


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(legacy_files(min_size=1), st.data())
def test_any_file_cut_short_is_refused_naming_the_position(file: Any, data: Any) -> None:
    text, _, _ = file
    cut = data.draw(st.integers(0, len(text) - 1))
    assert "not valid JSON at line 1, column " in refusal(text[:cut])
