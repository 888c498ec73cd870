"""Two roles, two URLs: the application runs as tradecore_app, migrations as the owner."""

from __future__ import annotations

from adapters.database import DatabaseAddress
from tests.e2e.conftest import Cli, base_env


def one_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, text
    return lines[0]


def test_db_upgrade_runs_as_the_owner_url_and_says_so_when_given_only_the_app_role(
    cli: Cli, owner_database: DatabaseAddress
) -> None:
    as_app = cli("db", "upgrade")
    as_owner = Cli(cli.env | {"TRADECORE_OWNER_DATABASE_URL": owner_database.url})(
        "db", "upgrade", "--json"
    )

    assert as_app.code == 4, as_app.stdout + as_app.stderr
    line = one_line(as_app.stderr)
    assert "cannot migrate as role tradecore_app" in line
    assert "TRADECORE_OWNER_DATABASE_URL" in line
    assert as_owner.code == 0, as_owner.stderr
    assert as_owner.json()["current"] == as_owner.json()["head"]


def test_tradecore_refuses_to_run_as_the_owner_with_exit_3_and_one_line(
    owner_database: DatabaseAddress,
) -> None:
    as_owner = Cli(base_env() | {"TRADECORE_DATABASE_URL": owner_database.url})

    refused = as_owner("policy", "show", "--json")

    assert refused.code == 3, refused.stdout + refused.stderr
    line = one_line(refused.stderr)
    assert "superuser" in line and "could rewrite recorded events" in line
    assert refused.stdout == ""
