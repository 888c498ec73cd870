"""Store problems give one clear line on stderr and exit code 4, never a traceback."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

import pytest

from adapters.database import DatabaseAddress
from tests.e2e.conftest import Cli
from tests.postgres import app_address


def assert_one_line_exit_4(result, *fragments: str) -> None:  # type: ignore[no-untyped-def]
    assert result.code == 4, (result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_a_refused_connection_exits_4(bare_cli: Cli) -> None:
    result = bare_cli("--database-url", "postgresql://u:secret@127.0.0.1:1/x", "policy", "show")
    assert_one_line_exit_4(result, "store unavailable", "127.0.0.1:1")
    assert "secret" not in result.stderr


def test_a_url_that_is_not_postgres_exits_4(bare_cli: Cli) -> None:
    result = bare_cli("--database-url", "mysql://u:secret@localhost/db", "policy", "show")
    assert_one_line_exit_4(result, "postgresql://")
    assert "secret" not in result.stderr


def test_an_unknown_role_exits_4(bare_cli: Cli, database: DatabaseAddress) -> None:
    wrong = DatabaseAddress(database.host, database.port, database.dbname, "nobody", "pw")
    result = bare_cli("--database-url", wrong.url, "policy", "show")
    assert_one_line_exit_4(result, "nobody")


def test_an_unmigrated_database_exits_4_and_says_how_to_fix_it(
    bare_cli: Cli, empty_database: DatabaseAddress
) -> None:
    result = bare_cli("--database-url", empty_database.url, "policy", "show")
    assert_one_line_exit_4(result, "tradecore db upgrade")


def test_db_upgrade_then_status_reports_the_head(
    bare_cli: Cli, empty_database: DatabaseAddress
) -> None:
    url = ("--database-url", empty_database.url)
    before = bare_cli(*url, "db", "status", "--json")
    assert before.code == 0, before.stderr
    assert before.json()["current"] is None
    for _ in range(2):  # idempotent
        upgraded = bare_cli(*url, "db", "upgrade", "--json")
        assert upgraded.code == 0, upgraded.stderr
    after = bare_cli(*url, "db", "status", "--json").json()
    assert after["current"] == after["head"] == before.json()["head"]
    # The schema's owner migrates; the application runs as the app role.
    as_app = ("--database-url", app_address(empty_database).url)
    assert bare_cli(*as_app, "policy", "show", "--json").json()["emergency_mode"] is False


@pytest.mark.skipif(os.geteuid() != 0, reason="the refusal protects private folders from root")
def test_root_refuses_a_home_whose_parents_it_would_have_to_open(bare_cli: Cli) -> None:
    private = Path(tempfile.mkdtemp(prefix="tradecore-private-"))  # mode 0700
    try:
        result = bare_cli("--home", str(private / "home"), "policy", "show")
        assert result.code == 2, result.stderr
        assert "refusing" in result.stderr
        assert stat.S_IMODE(private.stat().st_mode) == 0o700  # untouched
        assert not (private / "home").exists()
    finally:
        private.rmdir()
