"""Operations on the read models, and a stopped store, through the CLI."""

from __future__ import annotations

from adapters.embedded_pg import EmbeddedPostgres
from app.bootstrap import bootstrap
from app.config import Settings
from tests.e2e.conftest import Cli, base_env
from tests.poison import poison_policy_view


def test_projections_status_rebuild_and_verify(cli: Cli) -> None:
    for leverage in ("3", "4"):
        assert cli("policy", "set", "--max-leverage", leverage, "--reason", "r", "--yes").code == 0
    # A write command leaves the views at the head; a read only reads them.
    assert cli("policy", "show", "--json").code == 0
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
    # A write leaves the views at the head (a read such as `policy show` only reads them).
    assert cli("policy", "set", "--max-leverage", "3", "--reason", "r", "--yes").code == 0
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


def test_a_poison_event_leaves_reads_answering_and_projections_skip_recovers_it(
    cli: Cli,
    database,  # type: ignore[no-untyped-def]
) -> None:
    assert cli("policy", "set", "--max-leverage", "3", "--reason", "r", "--yes").code == 0
    with bootstrap(Settings(database_url=database.url)) as core:
        poison = poison_policy_view(core)
    # A write command's own catch-up meets the poison: recorded, and the command still ends 0.
    # (Closing trading never re-judges the limits in force, poison or not.)
    closed = cli("policy", "set", "--allow-new-trades", "false", "--reason", "r", "--yes")
    assert closed.code == 0, closed.stderr

    status = cli("status", "--json")
    assert status.code == 0, status.stderr
    [view] = [p for p in status.json()["projections"] if p["name"] == "policy_view"]
    assert view["failing_event_id"] == poison
    assert "NumericValueOutOfRange" in view["last_error"]
    store = status.json()["safeguards"]["safeguards"]["p0_01_policy_store"]
    assert store["status"] == "DEGRADED"
    assert f"cannot apply event {poison}" in store["evidence"]["reason"]
    text = cli("status")
    assert text.code == 0 and f"policy_view: position {poison - 1}" in text.stdout
    assert f"FAILING at event {poison}" in text.stdout
    shown = cli("policy", "show", "--json")
    assert shown.code == 0, shown.stderr
    assert shown.json()["source"] == "aggregate"
    assert shown.json()["allow_new_trades"] is False
    assert cli("emergency", "status", "--json").code == 0
    listed = cli("projections", "status", "--json")
    assert listed.code == 0
    [view] = [p for p in listed.json() if p["name"] == "policy_view"]
    assert view["failing_event_id"] == poison and view["failures"] >= 1
    # A read model held back before an event is no full replay of the log: not consistent.
    held = cli("verify", "--json")
    assert held.code == 3, held.stdout
    [failing] = held.json()["failing"]
    assert failing["projection"] == "policy_view" and failing["event_id"] == poison

    args = ("projections", "skip", "--name", "policy_view", "--event", str(poison))
    refused = cli(*args, "--reason", "unstorable leverage")  # no --yes, no terminal
    assert refused.code == 2 and "--yes" in refused.stderr
    assert cli(*args[:4], "--event", "999999", "--reason", "r", "--yes").code == 2
    skipped = cli(*args, "--reason", "unstorable leverage", "--yes")
    assert skipped.code == 0, skipped.stderr
    assert f"policy_view passes over event {poison}" in skipped.stdout
    # The next event carries the whole limit set again: put a storable leverage back.
    assert cli("policy", "set", "--max-leverage", "2", "--reason", "repair", "--yes").code == 0

    [view] = [
        p for p in cli("projections", "status", "--json").json() if p["name"] == "policy_view"
    ]
    assert view["lag_events"] == 0 and view["failing_event_id"] is None
    assert cli("policy", "show", "--json").json()["source"] == "view"
    verified = cli("verify", "--json")
    assert verified.code == 0, verified.stdout
    [skip] = verified.json()["skips"]
    assert skip["event_id"] == poison and skip["reason"] == "unstorable leverage"
    assert f"skipped: policy_view passes over event {poison}" in cli("verify").stdout
