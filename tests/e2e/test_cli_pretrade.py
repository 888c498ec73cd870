"""The pre-trade controls as an operator sees them: listed by ``policy show``, changed by
``policy set`` with validation (a bad value exits 2 in one line, nothing recorded), and a
duplicate refused across two ``trade open`` processes (exit 3)."""

from __future__ import annotations

from tests.e2e.conftest import Cli, running_worker

BTC = "BTC/USDT:USDT"
DEFAULTS = {
    "price_collar": "0.05",
    "max_order_quantity": "1000000",
    "max_order_notional": "100000",
    "max_orders_per_second": 10,
    "duplicate_window_s": "2",
    "loss_streak_losses": 5,
    "loss_streak_window_s": 3600,
    "loss_streak_cooldown_s": 3600,
    "loss_stop_until": None,
    "loss_stop_reason": None,
}


def shown(cli: Cli) -> dict[str, object]:
    result = cli("policy", "show", "--json")
    assert result.code == 0, result.stderr
    data: dict[str, object] = result.json()
    return data


def test_policy_show_lists_every_pretrade_control_with_its_default(cli: Cli) -> None:
    data = shown(cli)
    assert {key: data[key] for key in DEFAULTS} == DEFAULTS

    text = cli("policy", "show")
    assert text.code == 0
    for key in DEFAULTS:
        assert key in text.stdout


def test_policy_set_changes_the_controls_in_one_recorded_change(cli: Cli) -> None:
    before = int(str(shown(cli)["version"]))
    result = cli(
        "policy", "set", "--price-collar", "0.02", "--max-order-notional", "5000",
        "--max-orders-per-second", "3", "--duplicate-window", "0", "--loss-streak", "3",
        "--reason", "tighten", "--yes",
    )  # fmt: skip
    assert result.code == 0, result.stderr

    data = shown(cli)
    assert int(str(data["version"])) == before + 1
    assert (data["price_collar"], data["max_order_notional"]) == ("0.02", "5000")
    assert (data["max_orders_per_second"], data["duplicate_window_s"]) == (3, "0")
    assert data["loss_streak_losses"] == 3


def test_a_bad_control_value_exits_2_in_one_line_naming_the_option(cli: Cli) -> None:
    before = shown(cli)
    for option, value in (
        ("--price-collar", "5"),
        ("--max-orders-per-second", "0"),
        ("--loss-streak", "2.5"),
        ("--duplicate-window", "-1"),
        ("--max-order-quantity", "lots"),
    ):
        result = cli("policy", "set", option, value, "--reason", "x", "--yes")
        assert result.code == 2, (option, result.stderr)
        assert option in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    after = shown(cli)
    assert {k: after[k] for k in (*DEFAULTS, "version")} == {
        k: before[k] for k in (*DEFAULTS, "version")
    }


def test_reallow_entries_without_a_stop_changes_nothing(cli: Cli) -> None:
    before = shown(cli)["version"]
    result = cli("policy", "reallow-entries", "--reason", "x", "--yes")
    assert result.code == 0, result.stderr
    assert "no loss-streak stop" in result.stdout
    assert shown(cli)["version"] == before


def test_the_same_order_from_a_second_process_is_refused_as_a_duplicate(cli: Cli) -> None:
    assert cli("paper", "deposit", "--amount", "10000").code == 0
    opened = cli(
        "policy", "set", "--allow-new-trades", "true", "--duplicate-window", "3600",
        "--reason", "open trading", "--yes",
    )  # fmt: skip
    assert opened.code == 0, opened.stderr
    order = ("trade", "open", "--symbol", BTC, "--side", "long", "--notional", "500")
    with running_worker(cli):
        first = cli(*order, "--reason", "first")
        second = cli(*order, "--reason", "second")
        other = cli("trade", "open", "--symbol", BTC, "--side", "short", "--notional", "500")

    assert first.code == 0, first.stderr
    assert second.code == 3, second.stderr
    assert "DUPLICATE_ORDER" in second.stderr
    assert other.code == 0, other.stderr
