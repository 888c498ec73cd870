"""The drawdown breaker cannot be silently disabled: what it could never evaluate is refused
up front with exit 2, not discovered as a breaker loop that logs forever."""

from __future__ import annotations

from tests.e2e.conftest import Cli


def version(cli: Cli) -> int:
    shown = cli("policy", "show", "--json")
    assert shown.code == 0, shown.stderr
    return int(shown.json()["version"])


def test_thresholds_inside_the_hysteresis_exit_2_naming_the_constraint(cli: Cli) -> None:
    before = version(cli)
    result = cli(
        "policy",
        "set",
        "--drawdown-soft",
        "-0.005",
        "--drawdown-hard",
        "-0.01",
        "--reason",
        "tight",
        "--yes",
    )
    assert result.code == 2, result.stderr
    assert "soft threshold plus the hysteresis must stay below 0" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert version(cli) == before


def test_a_worker_on_a_venue_that_cannot_report_equity_is_refused_with_exit_2(cli: Cli) -> None:
    env = cli.env | {"TRADECORE_GATE_API_KEY": "k", "TRADECORE_GATE_API_SECRET": "s"}
    result = Cli(env)("run", "--exchange", "ccxt:gate", "--duration", "5", timeout=60)
    assert result.code == 2, result.stderr
    assert "ccxt:gate cannot report equity" in result.stderr
    assert "wallet and unrealized PnL" in result.stderr
    assert "worker running" not in result.stderr


def test_a_worker_whose_hysteresis_does_not_fit_the_policy_is_refused_with_exit_2(
    cli: Cli,
) -> None:
    assert version(cli) >= 1
    env = cli.env | {"TRADECORE_DRAWDOWN_HYSTERESIS": "0.06"}  # the policy's soft is -0.05
    result = Cli(env)("run", "--exchange", "paper", "--duration", "5", timeout=60)
    assert result.code == 2, result.stderr
    assert "hysteresis" in result.stderr and "worker running" not in result.stderr
