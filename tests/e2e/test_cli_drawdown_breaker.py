"""P0-07 through the CLI: a crash on the paper venue trips the breaker of a running worker."""

from __future__ import annotations

import json
import signal
import subprocess

from tests.e2e.conftest import TRADECORE, Cli
from tests.waiting import wait_for


def test_a_fifteen_percent_fall_under_a_running_worker_flattens_the_account(cli: Cli) -> None:
    assert cli("paper", "deposit", "--amount", "3000").code == 0
    allowed = cli("policy", "set", "--allow-new-trades", "true", "--reason", "drill", "--yes")
    assert allowed.code == 0, allowed.stderr
    # The worker first: the gate refuses entries the breaker cannot see (BREAKER_BLIND).
    worker = subprocess.Popen(
        [str(TRADECORE), "run", "--exchange", "paper", "--duration", "90"],
        env=cli.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(
            lambda: cli("risk", "status", "--json").json()["equity"] is not None,
            60,
            interval=0.2,
            what="the worker's first equity reading",
        )
        for symbol in ("BTC/USDT:USDT", "ETH/USDT:USDT"):
            opened = cli(
                "trade", "open", "--symbol", symbol, "--side", "long", "--notional", "4000",
                "--json",
            )  # fmt: skip
            assert opened.code == 0, opened.stderr
            assert opened.json()["outcome"] == "FILLED"
        for symbol, price in (("BTC/USDT:USDT", "51000"), ("ETH/USDT:USDT", "2550")):
            assert cli("paper", "price", "--symbol", symbol, "--price", price).code == 0

        def tripped() -> bool:
            em = cli("emergency", "status", "--json").json()
            return bool(em["active"] and em["flat"])

        wait_for(tripped, 60, interval=0.2, what="the emergency stop, flat")
        emergency = cli("emergency", "status", "--json").json()
        assert (emergency["active"], emergency["source"], emergency["flat"]) == (
            True,
            "drawdown",
            True,
        )
        risk = cli("risk", "status", "--json").json()
        assert risk["state"] == "hard_breach"
        assert float(risk["drawdown"]) <= float(risk["hard_threshold"])
        assert set(risk) >= {
            "equity",
            "peak",
            "drawdown",
            "soft_threshold",
            "hard_threshold",
            "state",
            "last_reading_at",
        }
        assert cli("positions", "--json").json() == []

        # The latch is not released while the breaker would trip it again at once.
        early = cli("emergency", "reset", "--reason", "too early", "--yes")
        assert early.code == 3 and "reset the peak first" in early.stderr
        assert cli("emergency", "status", "--json").json()["active"] is True

        # Only an operator's reset of the peak ends the hard breach.
        refused = cli("risk", "reset-peak", "--reason", "reviewed")
        assert refused.code == 2 and "--yes" in refused.stderr
        reset = cli("risk", "reset-peak", "--reason", "reviewed", "--yes")
        assert reset.code == 0, reset.stderr
        assert cli("risk", "status", "--json").json()["state"] == "normal"
        released = cli("emergency", "reset", "--reason", "reviewed", "--yes")
        assert released.code == 0, released.stderr
    finally:
        worker.send_signal(signal.SIGTERM)
        _, stderr = worker.communicate(timeout=30)
    assert worker.returncode == 0, stderr
    assert "DRAWDOWN HARD BREACH" in stderr


def test_reset_peak_before_any_reading_is_refused_with_exit_2(cli: Cli) -> None:
    refused = cli("risk", "reset-peak", "--reason", "x", "--yes")
    assert refused.code == 2
    assert "no equity reading" in refused.stderr
    status = cli("risk", "status", "--json")
    assert status.code == 0 and json.loads(status.stdout)["equity"] is None
