"""Models through the CLI: train twice, promote v2, and with the worker running every
consumer reports v2; bad data files exit 2 naming the line."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from adapters.data import sample_path
from tests.e2e.conftest import TRADECORE, Cli
from tests.waiting import wait_for


def test_train_twice_promote_and_every_consumer_runs_the_promoted_version(
    cli: Cli, tmp_path: Path
) -> None:
    env = cli.env | {"TRADECORE_ARTIFACT_DIR": str(tmp_path / "artifacts")}
    cli = Cli(env)
    sample = str(sample_path())
    first = cli("model", "train", "--data", sample, "--name", "signal", "--json", timeout=120)
    second = cli(
        "model", "train", "--data", sample, "--name", "signal", "--seed", "8", "--json", timeout=120
    )
    assert first.code == 0 and second.code == 0, first.stderr + second.stderr
    assert (first.json()["version"], second.json()["version"]) == (1, 2)
    assert {"accuracy", "logloss"} <= second.json()["metrics"].keys()

    promoted = cli("model", "promote", "signal", "2", "--reason", "test", "--yes")
    assert promoted.code == 0, promoted.stderr
    worker = subprocess.Popen(
        [str(TRADECORE), "run", "--duration", "60"],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        reported: list[Any] = []

        def every_consumer_runs_v2() -> bool:
            reported[:] = cli("model", "status", "--json").json()
            return len(reported) == 3 and {s["version"] for s in reported} == {2}

        wait_for(every_consumer_runs_v2, timeout=45.0, what="all 3 consumers on version 2")
        status = reported
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    assert {s["consumer"] for s in status} == {
        "signal_engine",
        "position_monitor",
        "insights_logger",
    }
    assert all(s["model"] == "signal" and s["last_error"] is None for s in status)
    listed = cli("model", "list", "--json").json()
    assert listed[0]["promoted"] == 2 and len(listed[0]["versions"]) == 2


def test_a_bad_data_file_exits_2_naming_the_line(cli: Cli, tmp_path: Path) -> None:
    lines = sample_path().read_text().splitlines()
    broken = tmp_path / "broken.csv"
    bad = lines[6].split(",")
    bad[4] = "abc"  # the close of the row on line 7
    broken.write_text("\n".join([*lines[:6], ",".join(bad), *lines[7:]]) + "\n")

    result = cli("model", "train", "--data", str(broken), "--name", "signal")

    assert result.code == 2
    assert "broken.csv" in result.stderr and "line 7" in result.stderr
    assert cli("model", "list", "--json").json() == []


def test_promoting_an_unknown_version_exits_2(cli: Cli) -> None:
    result = cli("model", "promote", "signal", "3", "--reason", "x", "--yes")
    assert result.code == 2 and "signal" in result.stderr
