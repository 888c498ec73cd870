"""With no database URL, tradecore starts, migrates and reuses its own embedded server."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.e2e.conftest import Cli
from tests.postgres import private_temp_home


@pytest.fixture
def home() -> Iterator[Path]:
    folder = private_temp_home("tradecore-e2e-")
    yield folder / "home"
    shutil.rmtree(folder, ignore_errors=True)


def test_a_fresh_home_gets_a_migrated_embedded_server_shared_by_concurrent_commands(
    bare_cli: Cli, home: Path
) -> None:
    args = ("--home", str(home))
    try:
        # Two commands at once on a home with no server yet: one starts it, both use it.
        with ThreadPoolExecutor(2) as pool:
            results = list(
                pool.map(lambda _: bare_cli(*args, "policy", "show", "--json"), range(2))
            )
        for result in results:
            assert result.code == 0, result.stderr
            assert result.json()["emergency_mode"] is False
        assert results[0].json()["version"] == results[1].json()["version"] == 1

        assert bare_cli(*args, "emergency", "activate", "--reason", "drill", "--yes").code == 0
        assert bare_cli(*args, "policy", "show", "--json").json()["emergency_mode"] is True
        status = bare_cli(*args, "db", "status", "--json").json()
        assert status["current"] == status["head"]
        assert (home / "pgdata" / "PG_VERSION").exists()
    finally:
        stopped = bare_cli(*args, "db", "stop")
        assert stopped.code == 0, stopped.stderr
