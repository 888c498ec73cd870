"""Operations on the read models, and a stopped store, through the CLI."""

from __future__ import annotations

from adapters.embedded_pg import EmbeddedPostgres
from tests.e2e.conftest import Cli, base_env


def test_projections_status_rebuild_and_verify(cli: Cli) -> None:
    for leverage in ("3", "4"):
        assert cli("policy", "set", "--max-leverage", leverage, "--reason", "r", "--yes").code == 0
    assert cli("policy", "show", "--json").code == 0  # any read catches the views up
    status = cli("projections", "status", "--json")
    assert status.code == 0, status.stderr
    consumers = status.json()
    assert {c["name"] for c in consumers} == {
        "policy_view",
        "event_index",
        "trades",
        "model_status",
        "sizing_learner",
        "dashboard",
    }
    for consumer in consumers:
        assert consumer["lag_events"] == 0
        assert {"position", "head", "lag_seconds", "last_error", "replayed_since_start"} <= (
            consumer.keys()
        )

    rebuilt = cli("projections", "rebuild", "--all", "--yes")
    assert rebuilt.code == 0, rebuilt.stderr
    verified = cli("verify", "--json")
    assert verified.code == 0, verified.stderr
    assert verified.json()["consistent"] is True
    assert verified.json()["differences"] == []


def test_rebuild_needs_a_known_name_or_all(cli: Cli) -> None:
    assert cli("projections", "rebuild", "nope", "--yes").code == 2
    assert cli("projections", "rebuild", "--yes").code == 2


def test_verify_exits_3_when_a_read_model_was_tampered_with(cli: Cli, database) -> None:  # type: ignore[no-untyped-def]
    assert cli("policy", "show", "--json").code == 0
    with database.connect() as conn:
        conn.execute("UPDATE readmodel.policy_view SET max_leverage = 99")
    verified = cli("verify", "--json")
    assert verified.code == 3
    assert verified.json()["consistent"] is False


def test_a_command_against_a_stopped_server_exits_4_and_records_nothing(
    own_server: EmbeddedPostgres,
) -> None:
    cli = Cli(base_env() | {"TRADECORE_DATABASE_URL": own_server.address.url})
    # Open trading first, so that the command below would be a real change.
    assert cli("policy", "set", "--allow-new-trades", "true", "--reason", "open", "--yes").code == 0
    before = cli("policy", "show", "--json").json()["version"]
    own_server.stop(mode="immediate")
    result = cli("policy", "set", "--allow-new-trades", "false", "--reason", "x", "--yes")
    assert result.code == 4
    assert len([line for line in result.stderr.splitlines() if line.strip()]) == 1
    own_server.start()
    after = cli("policy", "show", "--json").json()
    assert after["version"] == before
    assert after["allow_new_trades"] is True
