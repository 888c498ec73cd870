"""Trades through the CLI: a manual trade through the executor and the gate, the trade store
after an emergency stop, and the legacy import, as an operator runs them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from adapters.database import DatabaseAddress
from tests.e2e.conftest import Cli, running_worker

BTC = "BTC/USDT:USDT"

LEGACY = {
    "t-1": {
        "symbol": "BTCUSDT",
        "side": "LONG",
        "entryPrice": 58000.5,
        "qty": "0.01",
        "leverage": 3,
        "stopLoss": 56000,
        "takeProfit": 62000,
        "opened_at": "2026-10-01T12:00:00Z",
        "status": "open",
    },
    "t-2": {
        "pair": "ETH/USDT",
        "direction": "short",
        "entry_price": "3100",
        "quantity": "0.5",
        "entry_time": 1759320000,
        "status": "open",
    },
    "t-3": {
        "symbol": "SOL/USDT:USDT",
        "side": "buy",
        "entry_price": "140",
        "size": "10",
        "opened_at": "2026-09-01T08:00:00+00:00",
        "status": "closed",
        "exit_price": "150",
        "closed_at": "2026-09-02T08:00:00+00:00",
    },
}


def test_a_manual_trade_fills_then_the_emergency_closes_it_and_refuses_the_next(
    cli: Cli,
) -> None:
    assert cli("paper", "deposit", "--amount", "10000").code == 0
    opened_by_operator = cli(
        "policy", "set", "--allow-new-trades", "true", "--reason", "open trading", "--yes"
    )
    assert opened_by_operator.code == 0, opened_by_operator.stderr
    with running_worker(cli):
        manual_trade_then_emergency(cli)


def manual_trade_then_emergency(cli: Cli) -> None:
    opened = cli(
        "trade", "open", "--symbol", BTC, "--side", "long", "--notional", "1000",
        "--reason", "test",
    )  # fmt: skip
    assert opened.code == 0, opened.stderr
    trades = cli("trades", "list", "--open", "--json").json()
    assert len(trades) == 1
    (trade,) = trades
    assert trade["symbol"] == BTC and trade["side"] == "long" and trade["status"] == "open"
    assert float(trade["quantity"]) > 0 and float(trade["entry_price"]) > 0

    assert cli("emergency", "activate", "--reason", "drill", "--yes").code == 0
    assert cli("trades", "list", "--open", "--json").json() == []
    (closed,) = cli("trades", "list", "--json").json()
    assert closed["trade_id"] == trade["trade_id"]
    assert (closed["status"], closed["close_reason"]) == ("closed", "emergency")
    assert closed["closed_at"] is not None and closed["realized_pnl"] is not None

    refused = cli(
        "trade", "open", "--symbol", BTC, "--side", "long", "--notional", "1000",
        "--reason", "test",
    )  # fmt: skip
    assert refused.code == 3, refused.stderr
    assert "EMERGENCY_ACTIVE" in refused.stderr and "drill" in refused.stderr
    assert cli("positions", "--json").json() == []

    shown = cli("trades", "show", trade["trade_id"], "--json").json()
    assert [e["type"] for e in shown["events"]] == [
        "Trade.Opened",
        "Trade.OrderSubmitted",
        "Trade.Filled",
        "Trade.OrderResolved",
        "Trade.ExitRecorded",
        "Trade.Closed",
    ]


def test_a_fresh_install_refuses_a_trade_until_an_operator_opens_trading(cli: Cli) -> None:
    assert cli("paper", "deposit", "--amount", "10000").code == 0
    refused = cli("trade", "open", "--symbol", BTC, "--side", "long", "--notional", "100")
    assert refused.code == 3
    assert "NEW_TRADES_DISABLED" in refused.stderr
    assert cli("trades", "list", "--json").json() == []


def test_bad_trade_input_exits_2_naming_the_problem(cli: Cli) -> None:
    bad_side = cli("trade", "open", "--symbol", BTC, "--side", "up", "--notional", "100")
    assert bad_side.code == 2 and "side" in bad_side.stderr
    bad_notional = cli("trade", "open", "--symbol", BTC, "--side", "long", "--notional", "-5")
    assert bad_notional.code == 2 and "--notional" in bad_notional.stderr
    assert cli("trades", "show", "not-an-id").code == 2


def test_a_legacy_file_of_three_trades_imports_three_once(cli: Cli, tmp_path: Path) -> None:
    legacy = tmp_path / "trade_state.json"
    legacy.write_text(json.dumps(LEGACY))

    dry = cli("trades", "import", str(legacy), "--dry-run", "--json")
    assert dry.code == 0, dry.stderr
    assert len(dry.json()["new"]) == 3 and dry.json()["imported"] == 0
    assert cli("trades", "list", "--json").json() == []

    done = cli("trades", "import", str(legacy), "--yes", "--json")
    assert done.code == 0, done.stderr
    assert done.json()["imported"] == 3
    listed = {t["symbol"]: t for t in cli("trades", "list", "--json").json()}
    assert set(listed) == {BTC, "ETH/USDT:USDT", "SOL/USDT:USDT"}
    assert listed[BTC]["entry_price"] == "58000.5" and listed[BTC]["leverage"] == "3"
    assert listed[BTC]["stop_loss"] == "56000" and listed[BTC]["status"] == "open"
    assert listed["ETH/USDT:USDT"]["side"] == "short"
    sol = listed["SOL/USDT:USDT"]
    assert (sol["status"], sol["realized_pnl"]) == ("closed", "100")
    assert sol["opened_at"].startswith("2026-09-01T08:00:00")

    again = cli("trades", "import", str(legacy), "--yes", "--json")
    assert again.code == 0 and again.json()["imported"] == 0
    assert len(again.json()["already_imported"]) == 3
    assert len(cli("trades", "list", "--json").json()) == 3


def test_a_truncated_legacy_file_exits_2_and_imports_nothing(cli: Cli, tmp_path: Path) -> None:
    legacy = tmp_path / "trade_state.json"
    text = json.dumps(LEGACY, indent=2)
    legacy.write_text(text[: len(text) * 2 // 3])

    result = cli("trades", "import", str(legacy), "--yes")

    assert result.code == 2
    assert "trade_state.json" in result.stderr and "line" in result.stderr
    assert cli("trades", "list", "--json").json() == []


def test_an_invalid_trade_names_its_id_and_field_and_imports_nothing(
    cli: Cli, tmp_path: Path
) -> None:
    legacy = tmp_path / "trade_state.json"
    broken = json.loads(json.dumps(LEGACY))
    broken["t-2"]["quantity"] = "-0.5"
    legacy.write_text(json.dumps(broken))

    result = cli("trades", "import", str(legacy), "--yes")

    assert result.code == 2
    assert "t-2" in result.stderr and "quantity" in result.stderr
    assert cli("trades", "list", "--json").json() == []


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("", "not valid JSON at line 1, column 1"),
        ("[1, 2]", "trade #1: must be an object"),  # valid JSON, not trades
        ('{"t-1": {"symbol": "BTCUSDT"}}', 'trade "t-1": side: missing'),
        (json.dumps({"t-1": LEGACY["t-1"] | {"qty": "NaN"}}), 'trade "t-1": quantity'),
    ],
    ids=["empty", "not-trades", "missing-field", "nan"],
)
def test_every_kind_of_legacy_file_refusal_exits_2_naming_file_and_problem_importing_nothing(
    cli: Cli, tmp_path: Path, text: str, named: str
) -> None:
    legacy = tmp_path / "trade_state.json"
    legacy.write_text(text)

    result = cli("trades", "import", str(legacy), "--yes")

    assert result.code == 2, (result.stdout, result.stderr)
    # One line per problem found (a file can hold several), each naming the file.
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines[0].startswith("invalid input: trade_state.json: "), lines
    assert all("trade_state.json: " in line for line in lines), lines
    assert any(named in line for line in lines), lines
    assert cli("trades", "list", "--json").json() == []


def test_importing_a_trade_an_adoption_already_holds_links_it_instead_of_claiming_twice(
    cli: Cli, tmp_path: Path
) -> None:
    assert cli("paper", "deposit", "--amount", "10000").code == 0
    placed = cli("paper", "order", "--symbol", BTC, "--side", "buy", "--qty", "0.01")
    assert placed.code == 0, placed.stderr
    adopted = cli("trades", "reconcile", "--json")
    assert adopted.code == 0, adopted.stderr
    (adopted_id,) = adopted.json()["adopted"]
    backup = tmp_path / "trade_state.json"
    backup.write_text(json.dumps({"t-1": LEGACY["t-1"]}))  # BTC long 0.01, open

    dry = cli("trades", "import", str(backup), "--dry-run")
    dry_json = cli("trades", "import", str(backup), "--dry-run", "--json")

    assert dry.code == 0, dry.stderr
    assert (
        "would link t-1 -> " in dry.stdout and f"adopted external trade {adopted_id}" in dry.stdout
    )
    (link,) = dry_json.json()["links"]
    assert (link["adopted"], link["quantity"]) == (adopted_id, "0.01")
    assert len(cli("trades", "list", "--open", "--json").json()) == 1  # nothing written

    done = cli("trades", "import", str(backup), "--yes", "--json")

    assert done.code == 0, done.stderr
    assert done.json()["imported"] == 1
    still_open = cli("trades", "list", "--open", "--json").json()
    # One claim on the venue's 0.01: the imported trade's.
    assert [(t["source"], t["open_quantity"]) for t in still_open] == [("import", "0.01")]
    shown = cli("trades", "show", adopted_id, "--json").json()
    assert shown["close_reason"] == "replaced"
    assert "ClaimHandedOver" in [e["type"].split(".")[-1] for e in shown["events"]]
    again = cli("trades", "reconcile", "--json").json()
    assert again["adopted"] == [] and again["mismatches"] == []


def test_importing_a_trade_whose_quantity_other_trades_hold_is_refused_naming_both(
    cli: Cli, tmp_path: Path
) -> None:
    assert cli("paper", "deposit", "--amount", "10000").code == 0
    assert cli("paper", "order", "--symbol", BTC, "--side", "buy", "--qty", "0.01").code == 0
    assert cli("trades", "reconcile").code == 0
    first = tmp_path / "trade_state.json"
    first.write_text(json.dumps({"t-1": LEGACY["t-1"]}))
    assert cli("trades", "import", str(first), "--yes").code == 0
    second = tmp_path / "older_state.json"
    second.write_text(json.dumps({"t-9": LEGACY["t-1"]}))  # the same position, another id

    for args in (("--dry-run",), ("--yes",)):
        refused = cli("trades", "import", str(second), *args)

        assert refused.code == 3, refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1
        assert "'t-9'" in refused.stderr and "(import, 0.01)" in refused.stderr
    assert len(cli("trades", "list", "--open", "--json").json()) == 1


def test_trades_list_answers_within_its_bound_while_another_transaction_holds_the_trade_store(
    cli: Cli, database: DatabaseAddress
) -> None:
    # An administrator's open transaction (or a stopped process's) holding the trade store's
    # tracking row: the command's catch-up waits READ_MODEL_LOCK_WAIT, says so in one line,
    # and answers from the read model as it stands, instead of waiting for the holder.
    assert cli("trades", "list").code == 0  # the tracking rows exist
    with database.connect(autocommit=False) as holder:
        holder.execute(
            "SELECT * FROM readmodel.projection_tracking WHERE name = 'trades' FOR UPDATE"
        )
        # At the operator's default log level (the tests' is ERROR).
        as_operator = Cli(cli.env | {"TRADECORE_LOG_LEVEL": "WARNING"})
        listed = as_operator("trades", "list", "--json", timeout=30)
        holder.rollback()
    assert listed.code == 0, listed.stderr
    assert listed.json() == []
    [line] = [line for line in listed.stderr.splitlines() if line.strip()]
    assert "trades is being written by another transaction (waited 1 s)" in line, line
