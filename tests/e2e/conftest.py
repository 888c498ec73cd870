"""Run the installed ``tradecore`` command in subprocesses, as an operator would."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from adapters.database import DatabaseAddress
from tests.waiting import wait_for

TRADECORE = Path(sys.executable).with_name("tradecore")


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


class Cli:
    def __init__(self, env: dict[str, str]) -> None:
        self.env = env

    def __call__(self, *args: str, timeout: float = 60) -> Result:
        done = subprocess.run(
            [str(TRADECORE), *args],
            capture_output=True,
            text=True,
            env=self.env,
            stdin=subprocess.DEVNULL,  # never a terminal: dangerous commands must not prompt
            timeout=timeout,
            check=False,
        )
        return Result(done.returncode, done.stdout, done.stderr)


def base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADECORE_")}
    env["TRADECORE_LOG_LEVEL"] = "ERROR"
    return env


@pytest.fixture
def cli(database: DatabaseAddress) -> Cli:
    """The CLI pointed at this test's fresh database."""
    assert TRADECORE.exists(), f"tradecore is not installed next to {sys.executable}"
    return Cli(base_env() | {"TRADECORE_DATABASE_URL": database.url})


@pytest.fixture
def bare_cli() -> Cli:
    """The CLI with no tradecore configuration at all."""
    return Cli(base_env())


@contextmanager
def running_worker(cli: Cli) -> Iterator[subprocess.Popen[str]]:
    """``tradecore run`` in the background, entered once its drawdown breaker has accepted a
    reading (until then the gate refuses entries: BREAKER_BLIND); stopped with SIGTERM."""
    worker = subprocess.Popen(
        [str(TRADECORE), "run", "--exchange", "paper", "--duration", "300"],
        env=cli.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        wait_for(
            lambda: cli("risk", "status", "--json").json()["equity"] is not None,
            60,
            interval=0.2,
            what="the worker's first equity reading",
        )
        yield worker
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
