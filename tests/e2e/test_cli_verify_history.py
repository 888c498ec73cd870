"""`tradecore verify` checks the events' hash chain and names the first altered event.

The incident this answers: an owner rewrote the actor of a recorded event around the
immutability trigger; after a rebuild every read model matched the (rewritten) log, and
`verify` called it consistent.
"""

from __future__ import annotations

import shutil

import pytest

from adapters.database import DatabaseAddress
from adapters.eventstore import EVENTS_SCHEMA, EVENTS_TABLE
from tests.e2e.conftest import Cli
from tests.postgres import private_temp_home

EVENTS = f"{EVENTS_SCHEMA}.{EVENTS_TABLE}"


def alices_event(cli: Cli, owner: DatabaseAddress) -> tuple[int, str, int]:
    """Alice opens trading, bob then closes it; alice's event (id, originator, version)."""
    for actor, allow in (("alice", "true"), ("bob", "false")):
        done = cli(
            "policy", "set", "--allow-new-trades", allow, "--reason", "drill", "--actor", actor,
            "--yes",
        )  # fmt: skip
        assert done.code == 0, done.stderr
    with owner.connect() as conn:
        rows = conn.execute(
            f"SELECT notification_id, originator_id::text, originator_version FROM {EVENTS} "
            "WHERE convert_from(state, 'UTF8') LIKE '%%\"actor\":\"alice\"%%'"
        ).fetchall()
    assert len(rows) == 1, rows
    return int(rows[0][0]), str(rows[0][1]), int(rows[0][2])


def test_verify_says_history_is_intact_on_a_clean_log(
    cli: Cli, owner_database: DatabaseAddress
) -> None:
    alices_event(cli, owner_database)

    verified = cli("verify")
    as_json = cli("verify", "--json")

    assert verified.code == 0, verified.stdout + verified.stderr
    assert "history intact:" in verified.stdout
    history = as_json.json()["history"]
    assert history["intact"] is True and history["first_altered"] is None
    assert history["events"] >= 3 and len(history["head"]["chain_hash"]) == 64


@pytest.mark.parametrize(
    "around_the_trigger",
    [
        (
            f"ALTER TABLE {EVENTS} DISABLE TRIGGER tradecore_events_immutable_rows",
            f"ALTER TABLE {EVENTS} ENABLE TRIGGER tradecore_events_immutable_rows",
        ),
        ("SET session_replication_role = replica", "SET session_replication_role = DEFAULT"),
    ],
    ids=["owner-disables-the-trigger", "superuser-replica-mode"],
)
def test_verify_names_the_event_whose_actor_the_owner_rewrote_even_after_a_rebuild(
    cli: Cli, owner_database: DatabaseAddress, around_the_trigger: tuple[str, str]
) -> None:
    notification_id, originator_id, version = alices_event(cli, owner_database)
    lift, restore = around_the_trigger
    with owner_database.connect() as conn:
        conn.execute(lift)
        edited = conn.execute(
            f"UPDATE {EVENTS} SET state = convert_to(replace(convert_from(state, 'UTF8'), "
            '\'"actor":"alice"\', \'"actor":"mallory"\'), \'UTF8\') '
            "WHERE notification_id = %s",
            (notification_id,),
        )
        conn.execute(restore)
    assert edited.rowcount == 1
    # The read models now agree with the rewritten log: only the chain can tell.
    rebuilt = cli("projections", "rebuild", "--all", "--yes")
    assert rebuilt.code == 0, rebuilt.stderr

    as_json = cli("verify", "--json")
    verified = cli("verify")

    assert as_json.code == 3, as_json.stdout + as_json.stderr
    report = as_json.json()
    assert report["consistent"] is True  # the read models alone would have passed
    assert report["history"]["intact"] is False
    altered = report["history"]["first_altered"]
    assert (altered["notification_id"], altered["originator_id"]) == (
        notification_id,
        originator_id,
    )
    assert altered["originator_version"] == version
    assert verified.code == 3
    named = [line for line in verified.stdout.splitlines() if "HISTORY ALTERED" in line]
    assert len(named) == 1, verified.stdout
    assert f"event {notification_id} (originator {originator_id}, version {version}" in named[0]


def test_the_embedded_default_runs_as_the_app_role_and_its_history_verifies(
    bare_cli: Cli,
) -> None:
    folder = private_temp_home("tradecore-e2e-role-")
    args = ("--home", str(folder / "home"))
    try:
        opened = bare_cli(*args, "policy", "set", "--allow-new-trades", "true", "--reason",
                          "open", "--actor", "alice", "--yes")  # fmt: skip
        status = bare_cli(*args, "status", "--json")
        verified = bare_cli(*args, "verify", "--json")
    finally:
        stopped = bare_cli(*args, "db", "stop")
        shutil.rmtree(folder, ignore_errors=True)

    assert opened.code == 0, opened.stderr
    assert status.json()["store"]["embedded"] is True
    assert status.json()["store"]["database"].startswith("postgresql://tradecore_app@")
    assert verified.code == 0, verified.stdout + verified.stderr
    assert verified.json()["history"]["intact"] is True
    assert stopped.code == 0, stopped.stderr


def test_verify_with_an_anchor_names_an_event_rewritten_with_every_hash_after_it(
    cli: Cli, owner_database: DatabaseAddress
) -> None:
    notification_id, _, _ = alices_event(cli, owner_database)
    head = cli("verify", "--json").json()["history"]["head"]
    anchor = f"{head['notification_id']}:{head['chain_hash']}"
    with owner_database.connect() as conn:
        conn.execute("SET session_replication_role = replica")
        conn.execute(
            f"UPDATE {EVENTS} SET state = convert_to(replace(convert_from(state, 'UTF8'), "
            '\'"actor":"alice"\', \'"actor":"mallory"\'), \'UTF8\') '
            "WHERE notification_id = %s",
            (notification_id,),
        )
        conn.execute(
            f"DO $$ DECLARE r record; previous bytea; BEGIN FOR r IN SELECT * FROM {EVENTS} "
            "ORDER BY notification_id LOOP previous := eventstore.event_chain_hash(previous, "
            "r.notification_id, r.originator_id, r.originator_version, r.topic, r.state); "
            f"UPDATE {EVENTS} SET chain_hash = previous "
            "WHERE notification_id = r.notification_id; END LOOP; END $$"
        )

    unanchored = cli("verify", "--json")
    anchored = cli("verify", "--anchor", anchor)
    malformed = cli("verify", "--anchor", "12:not-a-hash")

    # Every link matches again (the read models, not rebuilt, still differ): only an
    # anchor can tell.
    assert unanchored.json()["history"]["intact"] is True
    assert anchored.code == 3, anchored.stdout + anchored.stderr
    named = [line for line in anchored.stdout.splitlines() if "HISTORY ALTERED" in line]
    assert len(named) == 1, anchored.stdout
    assert f"event {head['notification_id']} now has hash" in named[0]
    assert malformed.code == 2
    assert "64 hex digits" in malformed.stderr and len(malformed.stderr.splitlines()) == 1
