"""The kill switch is always reachable: a crowd of commands cannot crowd it out, the worker
keeps its embedded server running, and a lost server is reported as such (exit 4)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg
import pytest

from adapters import embedded_pg
from adapters.embedded_pg import EmbeddedPostgres
from adapters.locks import lock_key
from domain.ids import ORDER_FLOW_LOCK
from tests.e2e.conftest import TRADECORE, Cli, Result, base_env
from tests.postgres import private_temp_home
from tests.waiting import StreamLines, wait_for

BTC = "BTC/USDT:USDT"


class Home:
    """A tradecore home on the embedded default, driven through the installed CLI."""

    def __init__(self, path: Path, **env: str) -> None:
        self.path = path
        self.server = EmbeddedPostgres(path)
        self.env = base_env() | {"TRADECORE_HOME": str(path)} | env
        self.cli = Cli(self.env)

    def __call__(self, *args: str, timeout: float = 120) -> Result:
        return self.cli(*args, timeout=timeout)

    def start(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [str(TRADECORE), *args],
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def kill_server(self) -> None:
        """SIGKILL the postmaster, as an OOM killer or a careless operator would."""
        pid = int((self.path / "pgdata" / "postmaster.pid").read_text().splitlines()[0])
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not self.server.is_running(), 20, what="the server to be gone")

    def open_position(self) -> None:
        for args in (
            ("paper", "deposit", "--amount", "10000"),
            ("paper", "price", "--symbol", BTC, "--price", "50000"),
            ("paper", "order", "--symbol", BTC, "--side", "buy", "--qty", "0.01"),
        ):
            done = self(*args)
            assert done.code == 0, (args, done.stderr)
        assert len(self("positions", "--json").json()) == 1


@pytest.fixture
def home() -> Iterator[Home]:
    folder = private_temp_home("tradecore-reach-")
    made = Home(folder / "home")
    yield made
    made.server.stop(mode="immediate")
    shutil.rmtree(folder, ignore_errors=True)


def finish(process: subprocess.Popen[str], timeout: float) -> int:
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)
        raise


def test_forty_commands_at_once_never_crowd_out_an_emergency_activation(home: Home) -> None:
    assert home("policy", "show").code == 0  # the server is up before the crowd comes
    commands = [("emergency", "activate", "--reason", f"crowd {i}", "--yes") for i in range(20)]
    commands += [
        ("policy", "set", "--max-leverage", str(2 + i % 3), "--reason", f"crowd {i}", "--yes")
        for i in range(20)
    ]
    # All forty started at once: a thread each, so none waits for another to finish.
    with ThreadPoolExecutor(len(commands)) as pool:
        results = list(pool.map(lambda args: home(*args, timeout=600), commands))

    unavailable = [(c, r.stderr) for c, r in zip(commands, results, strict=True) if r.code == 4]
    assert unavailable == []
    activations = results[:20]
    assert [r.code for r in activations] == [0] * 20, [r.stderr for r in activations]
    assert home("emergency", "status", "--json").json()["active"] is True


def test_too_many_connections_is_said_as_such_and_exits_4(
    home: Home, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A server with few connection slots (raising=False: the same test runs on code that
    # has no such setting, against its server's own limit), every one of them taken.
    monkeypatch.setattr(embedded_pg, "MAX_CONNECTIONS", 5, raising=False)
    address = home.server.ensure_running()
    held: list[psycopg.Connection[Any]] = []
    try:
        while len(held) < 400:
            try:
                held.append(psycopg.connect(address.url, connect_timeout=5))
            except psycopg.OperationalError as e:
                assert "too many clients" in str(e), e
                break
        result = home("policy", "show")
    finally:
        for conn in held:
            conn.close()
    assert result.code == 4, (result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "too many connections" in lines[0], lines[0]


def test_an_activation_that_loses_the_server_mid_way_exits_4(home: Home) -> None:
    home.open_position()
    # The activation goes on trying to flatten until its deadline (30 s by default) before it
    # says the store is gone; a short one keeps the drill short and changes nothing else.
    home.env["TRADECORE_FLATTEN_DEADLINE"] = "3"
    address = home.server.address
    # An order sender holds the order flow, so the activation's flattener waits at its
    # barrier (in the server) when the server dies under it.
    sender = psycopg.connect(address.url, autocommit=True)
    sender.execute("SELECT pg_advisory_lock_shared(%s)", (lock_key(ORDER_FLOW_LOCK),))
    activate = home.start("emergency", "activate", "--reason", "drill", "--yes")
    stderr = StreamLines(activate.stderr)
    try:
        wait_for(lambda: stderr.saw("emergency stop ACTIVE"), 120, what="the activation")
        with psycopg.connect(address.url, autocommit=True) as watcher:
            wait_for(
                lambda: (
                    watcher.execute(
                        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                        "AND query LIKE '%pg_advisory_xact_lock%'"
                    ).fetchone()
                    == (1,)
                ),
                8,
                what="the flattener to wait at its barrier",
            )
        home.kill_server()
        code = finish(activate, 120)
    finally:
        if activate.poll() is None:
            activate.kill()
        sender.close()
    text = stderr.text()
    assert code == 4, text
    assert "store unavailable" in text
    assert "unexpected failure" not in text and "Traceback" not in text


def test_the_worker_restarts_a_killed_embedded_server_and_flattens_the_account(
    home: Home,
) -> None:
    home.open_position()
    assert home("paper", "faults", "--error-rate", "1").code == 0
    home.env["TRADECORE_FLATTEN_DEADLINE"] = "1"
    # The activation cannot flatten (every venue request fails): the latch stays on and the
    # worker keeps retrying the flatten.
    assert home("emergency", "activate", "--reason", "drill", "--yes").code != 0
    worker = home.start("run")
    worker_err = StreamLines(worker.stderr)
    try:
        wait_for(lambda: worker_err.saw("worker running"), 120, what="the worker to start")
        home.kill_server()
        # Nobody but the worker may bring it back: the test only looks, without starting it.
        wait_for(home.server.is_running, 60, interval=0.2, what="the worker to restart it")
        assert home("paper", "faults", "--off").code == 0
        wait_for(
            lambda: home("positions", "--json").json() == [],
            120,
            interval=0.5,
            what="the worker to flatten the account",
        )
        wait_for(
            lambda: (home("status", "--json").json()["worker"] or {}).get("outages", 0) >= 1,
            60,
            interval=0.5,
            what="the outage to be counted",
        )
    finally:
        worker.send_signal(signal.SIGTERM)
        finish(worker, 60)
    assert "EMBEDDED SERVER NOT ANSWERING" in worker_err.text()


def peak_connections(home: Home, *args: str) -> int:
    """The most server connections the command held at once (pg_stat_activity, polled
    throughout; a poll can miss a peak, never invent one)."""
    tag = f"peak-{os.getpid()}-{threading.get_ident()}"
    peak, done = 0, threading.Event()

    def poll() -> None:
        nonlocal peak
        with psycopg.connect(home.server.address.url, autocommit=True) as conn:
            while not done.is_set():
                row = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (tag,)
                ).fetchone()
                peak = max(peak, row[0] if row else 0)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    try:
        result = Cli(home.env | {"PGAPPNAME": tag})(*args, timeout=120)
    finally:
        done.set()
        poller.join(timeout=10)
    assert result.code == 0, (args, result.stderr)
    return peak


def test_a_command_holds_at_most_two_server_connections(home: Home) -> None:
    home.open_position()
    peaks = {
        "policy show": peak_connections(home, "policy", "show"),
        "policy set": peak_connections(
            home, "policy", "set", "--max-leverage", "3", "--reason", "x", "--yes"
        ),
        "paper order": peak_connections(
            home, "paper", "order", "--symbol", BTC, "--side", "buy", "--qty", "0.01"
        ),
        # While it flattens it also holds the activation's flatten lock: one more.
        "emergency activate": peak_connections(
            home, "emergency", "activate", "--reason", "drill", "--yes"
        ),
    }
    assert all(peak >= 1 for peak in peaks.values()), peaks  # the measure sees something
    assert peaks["emergency activate"] <= 3, peaks
    del peaks["emergency activate"]
    assert max(peaks.values()) <= 2, peaks
