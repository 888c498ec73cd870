"""Edges of input never reach the log: each is refused with exit 2, one line on stderr naming
the input, and nothing recorded (no event, no paper-venue row)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import psycopg
import pytest

from adapters.data import sample_path
from adapters.database import DatabaseAddress
from tests.e2e.conftest import Cli, Result

BTC = "BTC/USDT:USDT"
RECORDED = {
    "events": "SELECT count(*) FROM eventstore.tradecore_events",
    "paper requests": "SELECT count(*) FROM paper.requests",
    "paper orders": "SELECT count(*) FROM paper.orders",
    "paper faults": "SELECT count(*) FROM paper.faults",
}


@pytest.fixture
def cli(cli: Cli) -> Cli:
    """The CLI on a store that already holds the policy and the latch a first command
    creates, so that counting what a refused command recorded starts from there."""
    assert cli("policy", "show").code == 0
    return cli


def recorded(database: DatabaseAddress) -> dict[str, int]:
    """How much the log and the paper venue hold."""
    with psycopg.connect(database.url, connect_timeout=10) as conn:
        return {name: conn.execute(sql).fetchone()[0] for name, sql in RECORDED.items()}  # type: ignore[index]


def assert_refused(result: Result, *names: str) -> None:
    """Exit 2 with one line on stderr that names the input."""
    assert result.code == 2, (result.code, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for name in names:
        assert name in lines[0], lines[0]


@pytest.mark.parametrize(
    "value",
    ["1e-999999999", "1e400", "NaN", "-0", "1.23456789012345678901234567890", "\uff13", "1_0"],
    ids=["tiny", "huge", "nan", "negative-zero", "30-significant-digits", "fullwidth", "under"],
)
def test_a_leverage_no_column_can_hold_exits_2_and_records_no_policy_change(
    cli: Cli, database: DatabaseAddress, value: str
) -> None:
    before = recorded(database)
    result = cli("policy", "set", "--max-leverage", value, "--reason", "x", "--yes")
    assert_refused(result, "--max-leverage")
    assert recorded(database) == before
    assert cli("policy", "show", "--json").json()["max_leverage"] == "5"


def legacy_file(tmp_path: Path, trade_id: str, symbol: str) -> Path:
    path = tmp_path / "trade_state.json"
    fine = {
        "symbol": "BTCUSDT",
        "side": "long",
        "entry_price": "100",
        "qty": "1",
        "opened_at": "2026-01-01T00:00:00Z",
    }
    # ensure_ascii: a lone surrogate is written as the JSON escape \ud800, which is how an
    # old writer would have stored it. The fine trade is not imported either: all or none.
    document = {trade_id: fine | {"symbol": symbol}, "fine": fine}
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("trade_id", "symbol"),
    [("t\x00-1", "BTCUSDT"), ("t\ud800-1", "BTCUSDT"), ("t-1", f"{BTC}\nX")],
    ids=["nul-in-id", "lone-surrogate-in-id", "newline-in-symbol"],
)
def test_an_import_with_a_control_character_or_lone_surrogate_exits_2_importing_nothing(
    cli: Cli, database: DatabaseAddress, tmp_path: Path, trade_id: str, symbol: str
) -> None:
    before = recorded(database)
    result = cli("trades", "import", str(legacy_file(tmp_path, trade_id, symbol)), "--yes")
    assert_refused(result, "trade_state.json")
    assert recorded(database) == before
    assert cli("trades", "list", "--json").json() == []


def test_a_symbol_with_a_newline_exits_2_and_records_no_trade_or_refusal(
    cli: Cli, database: DatabaseAddress
) -> None:
    assert cli("paper", "deposit", "--amount", "10000").code == 0
    opened = cli("policy", "set", "--allow-new-trades", "true", "--reason", "open", "--yes")
    assert opened.code == 0, opened.stderr
    before = recorded(database)
    result = cli(
        "trade", "open", "--symbol", f"{BTC}\nX", "--side", "long", "--notional", "100",
        "--reason", "x",
    )  # fmt: skip
    assert_refused(result, "symbol")
    assert recorded(database) == before


def test_a_fault_seed_past_bigint_exits_2_and_sets_no_faults(
    cli: Cli, database: DatabaseAddress
) -> None:
    before = recorded(database)
    result = cli("paper", "faults", "--error-rate", "0.1", "--seed", "99999999999999999999")
    assert_refused(result, "seed")
    assert recorded(database) == before


def test_a_paper_order_of_1e400_exits_2_and_reaches_no_order_book(
    cli: Cli, database: DatabaseAddress
) -> None:
    assert cli("paper", "deposit", "--amount", "10000").code == 0
    before = recorded(database)
    result = cli("paper", "order", "--symbol", BTC, "--side", "buy", "--qty", "1e400")
    assert_refused(result, "--qty")
    assert recorded(database) == before


def test_a_csv_timestamp_past_year_9999_exits_2_registering_no_model(
    cli: Cli, database: DatabaseAddress, tmp_path: Path
) -> None:
    lines = sample_path().read_text(encoding="utf-8").splitlines()[:200]
    # Epoch milliseconds of 10000-01-01, on the last row so the times still increase.
    lines[-1] = ",".join(["253402300800000", *lines[-1].split(",")[1:]])
    data = tmp_path / "far.csv"
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    before = recorded(database)
    result = cli("model", "train", "--data", str(data), "--name", "signal")
    assert_refused(result, "far.csv: line 200: timestamp")
    assert recorded(database) == before


@pytest.mark.parametrize("data", ["/dev/zero", "fifo"])
def test_model_train_on_a_device_or_fifo_exits_2_without_reading_it(
    cli: Cli, database: DatabaseAddress, tmp_path: Path, data: str
) -> None:
    if data == "fifo":  # no writer: reading it would block for ever
        data = str(tmp_path / "fifo")
        os.mkfifo(data)
    before = recorded(database)
    result = cli("model", "train", "--data", data, "--name", "signal", timeout=60)
    assert_refused(result, "--data", "not a regular file")
    assert recorded(database) == before


def test_sizing_decide_refuses_a_symbol_with_a_newline_in_one_line(cli: Cli) -> None:
    result = cli("sizing", "decide", "--symbol", f"{BTC}\nINJECTED", "--confidence", "0.5")
    assert_refused(result, "--symbol")


def test_an_incident_page_never_replaces_a_fifo_or_a_link(cli: Cli, tmp_path: Path) -> None:
    fifo, target = tmp_path / "page.fifo", tmp_path / "kept.txt"
    os.mkfifo(fifo)
    target.write_text("kept")
    link = tmp_path / "page.html"
    link.symlink_to(target)
    for path in (fifo, link):
        result = cli("audit", "incident", "--latest", "--html", str(path))
        assert_refused(result, str(path), "not a regular file")
    assert fifo.is_fifo() and link.is_symlink() and target.read_text() == "kept"
