"""P0-03: the log is the buffer. Outages, kills and lost notifications lose nothing, and no
event is applied twice; read models can be rebuilt live and verified against a replay."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from adapters.embedded_pg import EmbeddedPostgres
from adapters.errors import StoreUnavailable
from app.bootstrap import Core, bootstrap
from app.config import Settings
from app.worker import Worker
from domain.policy import Policy
from projections.policy_view import PolicyProjection, read_policy_snapshot
from projections.rebuild import VerifyReport, rebuild, verify
from projections.tables import event_index, worker_status
from tests.postgres import PgTestServer, app_address
from tests.waiting import wait_for


def verify_all(core: Core) -> VerifyReport:
    report = VerifyReport()
    for projection in core.runner.projections:
        verify(core.runner, projection, report)
    return report


def indexed(core: Core, *, topic_suffix: str | None = None) -> int:
    query = select(func.count()).select_from(event_index)
    if topic_suffix:
        query = query.where(event_index.c.topic.like(f"%{topic_suffix}"))
    with core.engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def recorded(core: Core, *, readings: bool = True) -> int:
    """Events in the log; without ``readings``, leaving out the worker's own equity readings
    (its breaker records one a second whatever else happens)."""
    where = "" if readings else " WHERE topic NOT LIKE 'domain.account:%%'"
    with core.engine.connect() as conn:
        return int(
            conn.exec_driver_sql(
                f"SELECT count(*) FROM eventstore.tradecore_events{where}"
            ).scalar_one()
        )


def backlog(core: Core, count: int, *, per_save: int = 200) -> None:
    """``count`` policy changes, ``per_save`` to a transaction (a fast way to a long log).

    Bounded per save: one save of thousands of events stalls the library's pipelined insert.
    """
    now = datetime.now(UTC)
    for start in range(0, count, per_save):
        policy = core.commands.load_policy()
        assert policy is not None
        for i in range(start, min(start + per_save, count)):
            policy.update_limits(
                actor="backlog", reason="r", timestamp=now, max_position_notional=str(20_000 + i)
            )
        core.store.save(policy)


@pytest.mark.slow
def test_commands_fail_fast_during_an_outage_and_every_consumer_catches_up_after_it(
    own_server: EmbeddedPostgres, caplog: pytest.LogCaptureFixture
) -> None:
    with bootstrap(Settings(database_url=own_server.address.url, poll_interval=0.2)) as core:
        core.commands.ensure_initialised()
        stop = threading.Event()
        worker = threading.Thread(target=Worker(core).run, args=(stop,))
        worker.start()
        try:
            wait_for(lambda: core.runner.positions()[0].lag == 0)
            events_before = recorded(core, readings=False)

            own_server.stop(mode="immediate")
            started = time.monotonic()
            for i in range(100):
                with pytest.raises(StoreUnavailable):
                    core.commands.update_policy(
                        actor="op", reason="during outage", max_position_notional=str(1000 + i)
                    )
            assert time.monotonic() - started < 10  # failed fast: no long retries each
            assert not core.gate.can_open_new_trades().allowed
            # The store stays down until the worker has met the outage itself: on a slow
            # machine its first round (model load, reconciliation) can outlast the commands.
            noticed = "store unavailable, retrying"
            wait_for(
                lambda: any(noticed in r.getMessage() for r in caplog.records),
                60,
                what="the worker noticing the outage",
            )

            own_server.start()
            # The event store's pool reconnects in the background after a restart: until it
            # holds a live connection a command fails fast with StoreUnavailable (exit 4),
            # recording nothing. Wait, bounded, for a read through that same pool.
            wait_for(lambda: store_answers(core), 30, what="the event store's pool reconnecting")
            for i in range(100):
                core.commands.update_policy(
                    actor="op", reason="after outage", max_position_notional=str(5000 + i)
                )
            # Nothing of the outage was recorded. (Count rows: an immediate shutdown makes
            # the notification id sequence skip values, as Postgres sequences do.)
            assert recorded(core, readings=False) == events_before + 100
            head = core.store.recorder.max_notification_id()
            wait_for(lambda: all(p.position == head for p in core.runner.positions()))
        finally:
            stop.set()
            worker.join(timeout=20)

        assert indexed(core, topic_suffix="LimitsUpdated") == 100  # each applied once
        assert verify_all(core).consistent
        with core.engine.connect() as conn:
            status = conn.execute(select(worker_status)).one()
        assert status.outages >= 1
        assert status.last_catch_up_events is not None


WORKER = textwrap.dedent(
    """
    import sys, threading
    from app.bootstrap import bootstrap
    from app.config import Settings
    from app.worker import Worker

    with bootstrap(Settings(database_url=sys.argv[1], poll_interval=0.05)) as core:
        core.runner.batch_size = 200
        print("ready", flush=True)
        Worker(core).run(threading.Event())
    """
)


@pytest.mark.slow
def test_a_worker_killed_mid_batch_loses_nothing_and_applies_nothing_twice(
    pg_server: PgTestServer, migrated_template: str
) -> None:
    trials = 10
    for trial in range(trials):
        rng = random.Random(trial)
        address = app_address(pg_server.create_database(template=migrated_template))
        try:
            with bootstrap(Settings(database_url=address.url)) as core:
                core.commands.ensure_initialised()
                backlog(core, 3000)
                child = subprocess.Popen(
                    [sys.executable, "-c", WORKER, address.url], stdout=subprocess.PIPE, text=True
                )
                assert child.stdout is not None
                assert child.stdout.readline().strip() == "ready"
                writing = threading.Event()

                def write(core: Core = core, writing: threading.Event = writing) -> None:
                    while not writing.is_set():
                        backlog(core, 50)

                writer = threading.Thread(target=write)
                writer.start()
                time.sleep(rng.uniform(0.05, 0.6))
                child.send_signal(signal.SIGKILL)
                child.wait(timeout=30)
                writing.set()
                writer.join()

                core.runner.catch_up()  # the restart
                assert indexed(core) == recorded(core), trial  # every event once, none missing
                report = verify_all(core)
                assert report.consistent, (trial, report.differences)
        finally:
            pg_server.drop_database(address)


def test_a_handler_that_fails_once_is_retried_and_its_event_applied(core: Core) -> None:
    failures = []

    class FlakyOnce(PolicyProjection):
        def apply_batch(self, conn, events):  # type: ignore[no-untyped-def]
            changes = [p for p, e in events if isinstance(e, Policy.LimitsUpdated)]
            if changes and not failures:
                failures.append(changes[0])
                raise RuntimeError("transient")
            super().apply_batch(conn, events)

    core.runner.catch_up()
    core.runner.projections = [FlakyOnce()]
    core.commands.update_policy(actor="a", reason="r", max_leverage="2")
    stop = threading.Event()
    thread = threading.Thread(
        target=core.runner.run, args=(stop, stop.wait), kwargs={"poll_interval": 0.1}
    )
    thread.start()
    try:
        wait_for(lambda: core.runner.positions()[0].lag == 0)
    finally:
        stop.set()
        thread.join(timeout=10)
    assert failures, "the handler never failed"
    [position] = core.runner.positions()
    assert position.last_error is None  # cleared once the event was applied
    policy = core.commands.load_policy()
    assert policy is not None
    with core.engine.connect() as conn:
        snapshot = read_policy_snapshot(conn)
    assert snapshot.policy is not None and snapshot.policy.version == policy.version


def test_a_rebuild_while_events_are_written_never_shows_an_empty_model(core: Core) -> None:
    backlog(core, 2000)
    core.runner.catch_up()
    done = threading.Event()
    seen: list[int] = []
    errors: list[BaseException] = []

    def read() -> None:
        while not done.is_set():
            seen.append(indexed(core))

    def write() -> None:
        try:
            while not done.is_set():
                backlog(core, 20)
                core.runner.catch_up()
        except BaseException as error:  # surfaced below
            errors.append(error)

    threads = [threading.Thread(target=read), threading.Thread(target=write)]
    for thread in threads:
        thread.start()
    try:
        for projection in core.runner.projections:
            rebuild(core.runner, projection)
    finally:
        done.set()
        for thread in threads:
            thread.join(timeout=30)
    assert not errors, errors
    assert seen and min(seen) > 0
    assert seen == sorted(seen)  # never went back, never emptied
    core.runner.catch_up()
    assert indexed(core) == recorded(core)
    assert verify_all(core).consistent


def test_verify_reports_a_tampered_read_model(core: Core) -> None:
    core.runner.catch_up()
    with core.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE readmodel.policy_view SET max_leverage = 99")
    report = verify_all(core)
    assert not report.consistent
    [difference] = report.differences
    assert difference["table"] == "policy_view"
    assert difference["live"]["max_leverage"] == 99


def store_answers(core: Core) -> bool:
    """Whether a read through the event store's own pool succeeds now."""
    try:
        core.commands.load_policy()
    except StoreUnavailable:
        return False
    return True
