"""Transfers are not losses (issue 15), through the CLI: a withdrawal under a running worker
leaves the emergency stop off and the breaker normal."""

from __future__ import annotations

import signal
import subprocess
from decimal import Decimal
from typing import Any

from tests.e2e.conftest import TRADECORE, Cli
from tests.waiting import wait_for


def risk(cli: Cli) -> Any:
    status = cli("risk", "status", "--json")
    assert status.code == 0, status.stderr
    return status.json()


def test_withdrawing_1500_of_10000_under_a_running_worker_leaves_the_stop_off_and_normal(
    cli: Cli,
) -> None:
    assert cli("paper", "deposit", "--amount", "10000").code == 0
    worker = subprocess.Popen(
        [str(TRADECORE), "run", "--exchange", "paper", "--duration", "90"],
        env=cli.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(
            lambda: risk(cli)["peak"] is not None and Decimal(risk(cli)["peak"]) == 10000,
            60,
            interval=0.2,
            what="the breaker's first peak",
        )
        withdrawn = cli("paper", "withdraw", "--amount", "1500", "--json")
        assert withdrawn.code == 0, withdrawn.stderr
        assert Decimal(withdrawn.json()["wallet"]) == 8500

        def judged_after_the_withdrawal() -> bool:
            now = risk(cli)
            return (
                now["last_transfer_at"] is not None
                and Decimal(now["net_transfers"]) == 10000 - 1500
                and now["last_reading_at"] > now["last_transfer_at"]
                and not now["pending_confirmation"]
            )

        wait_for(judged_after_the_withdrawal, 60, interval=0.2, what="a reading after it")
        after = risk(cli)
        assert after["state"] == "normal"
        assert Decimal(after["peak"]) == 8500 and Decimal(after["equity"]) == 8500
        assert Decimal(after["drawdown"]) == 0
        emergency = cli("emergency", "status", "--json")
        assert emergency.code == 0 and emergency.json()["active"] is False
    finally:
        worker.send_signal(signal.SIGTERM)
        _, stderr = worker.communicate(timeout=30)
    assert worker.returncode == 0, stderr
    assert "DRAWDOWN" not in stderr


def test_a_withdrawal_beyond_the_free_balance_exits_2_and_books_nothing(cli: Cli) -> None:
    assert cli("paper", "deposit", "--amount", "1000").code == 0
    refused = cli("paper", "withdraw", "--amount", "1000.01")
    assert refused.code == 2
    assert refused.stderr.strip().count("\n") == 0  # one line
    assert "exceeds the free balance" in refused.stderr
    for bad in ("0", "-5", "nan", "x"):
        assert cli("paper", "withdraw", "--amount", bad).code == 2
    kept = cli("paper", "deposit", "--amount", "1", "--json")  # reads the wallet back
    assert Decimal(kept.json()["wallet"]) == 1001
