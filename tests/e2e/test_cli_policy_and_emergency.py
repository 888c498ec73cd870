"""The operator's commands, end to end, against a real database."""

from __future__ import annotations

from tests.e2e.conftest import Cli, running_worker


def version(cli: Cli) -> int:
    shown = cli("policy", "show", "--json")
    assert shown.code == 0, shown.stderr
    return int(shown.json()["version"])


def test_policy_show_prints_the_default_policy(cli: Cli) -> None:
    shown = cli("policy", "show", "--json")
    assert shown.code == 0, shown.stderr
    data = shown.json()
    assert data["emergency_mode"] is False
    assert data["allow_new_trades"] is False  # fail closed until an operator opens trading
    assert data["emergency_reason"] is None and data["emergency_activated_at"] is None
    assert data["drawdown_soft_threshold"] == "-0.05"
    assert data["drawdown_hard_threshold"] == "-0.10"
    for key in ("max_leverage", "max_position_notional", "version", "updated_by", "updated_at"):
        assert key in data


def test_emergency_activation_is_seen_by_policy_show_and_emergency_status(cli: Cli) -> None:
    activated = cli("emergency", "activate", "--reason", "drill", "--yes", "--actor", "carol")
    assert activated.code == 0, activated.stderr

    policy = cli("policy", "show", "--json").json()
    assert policy["emergency_mode"] is True
    assert policy["allow_new_trades"] is False
    assert policy["emergency_reason"] == "drill"
    assert policy["emergency_activated_at"] is not None
    assert policy["updated_by"] == "carol"

    status = cli("emergency", "status", "--json").json()
    assert status["active"] is True
    assert status["reason"] == "drill"
    assert status["activated_by"] == "carol"
    assert status["source"] == "operator"
    assert {"activated_at", "reset_at", "reset_by"} <= status.keys()

    overall = cli("status", "--json").json()
    assert overall["gate"]["allowed"] is False
    assert overall["gate"]["code"] == "EMERGENCY_ACTIVE"
    names = [p["name"] for p in overall["projections"]]
    assert names == [
        "policy_view",
        "event_index",
        "trades",
        "model_status",
        "sizing_learner",
        "dashboard",
    ]
    for projection in overall["projections"]:
        assert {"position", "head", "lag"} <= projection.keys()


def test_activation_without_a_reason_exits_2_and_records_nothing(cli: Cli) -> None:
    before = version(cli)
    result = cli("emergency", "activate", "--yes")
    assert result.code == 2
    assert "--reason" in result.stderr
    assert version(cli) == before


def test_an_empty_reason_exits_2(cli: Cli) -> None:
    before = version(cli)
    result = cli("emergency", "activate", "--reason", "  ", "--yes")
    assert result.code == 2
    assert "reason must not be empty" in result.stderr
    assert version(cli) == before


def test_a_hard_threshold_above_zero_exits_2_naming_it(cli: Cli) -> None:
    before = version(cli)
    result = cli("policy", "set", "--drawdown-hard", "0.2", "--reason", "x", "--yes")
    assert result.code == 2
    assert "--drawdown-hard" in result.stderr
    assert "Traceback" not in result.stderr
    assert version(cli) == before


def test_a_non_boolean_allow_new_trades_exits_2(cli: Cli) -> None:
    result = cli("policy", "set", "--allow-new-trades", "maybe", "--reason", "x", "--yes")
    assert result.code == 2
    assert "--allow-new-trades" in result.stderr


def test_dangerous_commands_do_not_prompt_without_a_terminal(cli: Cli) -> None:
    before = version(cli)
    result = cli("emergency", "activate", "--reason", "drill")
    assert result.code == 2
    assert "--yes" in result.stderr
    assert cli("emergency", "status", "--json").json()["active"] is False
    assert version(cli) == before


def test_policy_set_records_negative_thresholds_and_the_actor(cli: Cli) -> None:
    result = cli(
        "policy",
        "set",
        "--drawdown-soft",
        "-0.04",
        "--drawdown-hard",
        "-0.08",
        "--max-leverage",
        "3",
        "--reason",
        "tighten",
        "--actor",
        "dave",
        "--yes",
    )
    assert result.code == 0, result.stderr
    data = cli("policy", "show", "--json").json()
    assert (data["drawdown_soft_threshold"], data["drawdown_hard_threshold"]) == ("-0.04", "-0.08")
    assert data["max_leverage"] == "3"
    assert data["updated_by"] == "dave"


def test_safety_refusals_exit_3(cli: Cli) -> None:
    reset = cli("emergency", "reset", "--reason", "nothing to reset", "--yes")
    assert reset.code == 3, reset.stderr
    assert cli("emergency", "activate", "--reason", "drill", "--yes").code == 0
    allow = cli("policy", "set", "--allow-new-trades", "true", "--reason", "x", "--yes")
    assert allow.code == 3
    assert "emergency" in allow.stderr


def test_reset_then_explicit_allow_reopens_trading(cli: Cli) -> None:
    assert cli("emergency", "activate", "--reason", "drill", "--yes").code == 0
    assert cli("emergency", "reset", "--reason", "ok", "--yes").code == 0
    status = cli("status", "--json").json()
    assert status["gate"]["code"] == "NEW_TRADES_DISABLED"
    assert cli("policy", "set", "--allow-new-trades", "true", "--reason", "go", "--yes").code == 0
    # Open to entries, but not while no worker's breaker watches the account.
    assert cli("status", "--json").json()["gate"]["code"] == "BREAKER_BLIND"
    with running_worker(cli):
        assert cli("status", "--json").json()["gate"]["allowed"] is True
