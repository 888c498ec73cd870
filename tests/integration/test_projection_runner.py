"""The projection runner: exactly once, resumes from its tracked position, polls."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import select

from adapters.errors import StoreUnavailable
from app.bootstrap import Core, bootstrap
from app.config import Settings
from projections.event_index import EventIndexProjection
from projections.policy_view import PolicyProjection
from projections.runner import Projection, ProjectionBusy
from projections.tables import policy_view, projection_tracking
from tests.integration.held_rows import tracking_row_held
from tests.waiting import wait_for


def tracked(core: Core) -> int:
    with core.engine.connect() as conn:
        return int(
            conn.execute(
                select(projection_tracking.c.position).where(
                    projection_tracking.c.name == "policy_view"
                )
            ).scalar_one()
        )


def view_version(core: Core) -> int:
    with core.engine.connect() as conn:
        return int(conn.execute(select(policy_view.c.version)).scalar_one())


def test_runner_resumes_from_its_tracked_position_after_a_restart(
    core: Core, settings: Settings
) -> None:
    assert core.runner.catch_up() > 0
    first, version = tracked(core), view_version(core)
    core.commands.update_policy(actor="a", reason="r", max_leverage="4")
    core.close()
    with bootstrap(settings) as restarted:
        # Only the one new event is applied, once by each read model that handles policy
        # events (the policy view and the event index; the trade store ignores it): nothing
        # before the tracked position again.
        assert restarted.runner.catch_up() == 2
        assert tracked(restarted) > first
        assert view_version(restarted) == version + 1
        assert restarted.runner.catch_up() == 0


def lock_waiters(core: Core) -> int:
    """Sessions on this test's database waiting for a lock held by another."""
    with core.engine.connect() as conn:
        return int(
            conn.exec_driver_sql(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            ).scalar_one()
        )


def test_two_runners_at_once_apply_each_event_once(core: Core, settings: Settings) -> None:
    # Caught up first: what is left are updates only, which a second application would not
    # refuse (a Created applied twice collides on its key and is rolled back instead).
    core.runner.catch_up()
    for i in range(30):
        core.commands.update_policy(actor="a", reason="r", max_position_notional=str(7000 + i))
    inside, release = threading.Event(), threading.Event()

    class HeldInItsBatch(PolicyProjection):
        """The first runner stops inside its first batch (its transaction open) until the
        second runner has started, so the two really run at once."""

        def apply_batch(self, conn, events):  # type: ignore[no-untyped-def]
            if not inside.is_set():
                inside.set()
                release.wait(30)
            super().apply_batch(conn, events)

    core.runner.projections[0] = HeldInItsBatch()
    with bootstrap(settings) as other:
        counts: dict[str, int] = {}
        errors: list[BaseException] = []
        started_while_first_held: list[bool] = []

        def run(name: str, runner: Core) -> None:
            if name == "second":
                started_while_first_held.append(inside.is_set() and not release.is_set())
            try:
                counts[name] = runner.runner.catch_up()
            except BaseException as error:  # surfaced below
                errors.append(error)

        first = threading.Thread(target=run, args=("first", core))
        second = threading.Thread(target=run, args=("second", other))
        first.start()
        try:
            wait_for(inside.is_set, 20, what="the first runner inside its first batch")
            second.start()
            # The second meets the first's batch: it waits on the locked tracking row (or,
            # were there no lock, would apply the same events itself and finish).
            wait_for(
                lambda: lock_waiters(core) > 0 or not second.is_alive(),
                20,
                what="the second runner blocked on the first's batch",
            )
        finally:
            release.set()
            first.join(timeout=60)
            second.join(timeout=60)
    assert not first.is_alive() and not second.is_alive(), "a runner did not finish in 60 s"
    assert not errors, errors
    assert started_while_first_held == [True], "the two runners did not overlap"
    # Each event was applied by exactly one of them: the policy view and the event index
    # take every one of these 30 changes, nothing else does.
    assert sum(counts.values()) == 30 * 2, counts
    assert view_version(core) == core.commands.load_policy().version  # type: ignore[union-attr]


def test_runner_catches_up_by_polling_when_no_notification_arrives(core: Core) -> None:
    core.runner.catch_up()
    expected = view_version(core) + 1
    stop = threading.Event()

    def deaf_waiter(timeout: float) -> None:  # as if every NOTIFY were lost
        stop.wait(timeout)

    worker = threading.Thread(
        target=core.runner.run, args=(stop, deaf_waiter), kwargs={"poll_interval": 0.2}
    )
    worker.start()
    try:
        core.commands.update_policy(actor="a", reason="r", max_leverage="3")
        wait_for(
            lambda: view_version(core) == expected,
            5,
            interval=0.05,
            what="the runner polling the change in (no notification came)",
        )
    finally:
        stop.set()
        worker.join(timeout=5)
    assert not worker.is_alive(), "the runner did not stop within 5 s"


def test_a_failing_projection_records_its_error_does_not_advance_and_the_others_go_on(
    core: Core,
) -> None:
    class Broken(PolicyProjection):
        def apply(self, conn, event, position):  # type: ignore[no-untyped-def]
            raise RuntimeError("boom")

    core.runner.projections = [Broken(), EventIndexProjection()]
    core.runner.catch_up()  # no raise: only the broken one is held back
    broken, index = core.runner.positions()
    assert broken.position == 0
    assert broken.last_error is not None and "boom" in broken.last_error
    assert broken.failing_event_id == 1  # the first event it handles
    assert index.position == index.head > 0 and index.last_error is None
    assert core.runner.failing() == ["policy_view"]
    # Held back for its backoff: another pass within it does not try it again.
    core.runner.catch_up()
    [broken, _] = core.runner.positions()
    assert broken.failures == 1


def test_a_store_outage_is_raised_not_recorded_as_a_read_model_failure(core: Core) -> None:
    def down() -> None:
        raise StoreUnavailable("down")

    class Broken(PolicyProjection):
        def apply(self, conn, event, position):  # type: ignore[no-untyped-def]
            raise RuntimeError("connection lost")

    core.runner.projections = [Broken()]
    core.runner.probe = down
    with pytest.raises(RuntimeError, match="connection lost"):
        core.runner.catch_up()
    assert core.runner.failing() == []


def policy_view_one_event_behind(core: Core) -> Projection:
    """The policy view caught up, then one policy change recorded that it has not applied."""
    core.runner.catch_up()
    core.commands.update_policy(actor="a", reason="r", max_leverage="4")
    return core.runner.projection(PolicyProjection.default_name)


def test_a_bounded_catch_up_gives_up_on_a_held_tracking_row_and_records_nothing(
    core: Core,
) -> None:
    view = policy_view_one_event_behind(core)
    before = tracked(core)
    with (
        tracking_row_held(core.engine, view.name),
        pytest.raises(ProjectionBusy, match="policy_view is being written by another"),
    ):
        core.runner.catch_up_projection(view, lock_wait=0.2)
    [position] = [p for p in core.runner.positions() if p.name == view.name]
    assert position.position == before and position.last_error is None
    assert position.failures == 0 and core.runner.failing() == []
    # Free again: the same bounded call applies the pending event.
    assert core.runner.catch_up_projection(view, lock_wait=0.2) == 1
    assert tracked(core) > before


def test_after_a_failed_batch_the_one_by_one_path_keeps_the_bound_on_a_held_row(
    core: Core,
) -> None:
    # A batch that fails for another reason (here once, on purpose) sends the catch-up to
    # the one-event-at-a-time path; that path too waits at most lock_wait for a held row.
    view = policy_view_one_event_behind(core)
    step = core.runner.step
    failed: list[str] = []

    def failing_once(*args, **kwargs):  # type: ignore[no-untyped-def]
        if not failed:
            failed.append("step")
            raise RuntimeError("a batch that failed for another reason")
        return step(*args, **kwargs)

    core.runner.step = failing_once  # type: ignore[method-assign]
    with tracking_row_held(core.engine, view.name):
        finished = threading.Event()
        raised: list[BaseException] = []

        def catch_up() -> None:
            try:
                core.runner.catch_up_projection(view, lock_wait=0.2)
            except BaseException as e:  # recorded for the assertions below
                raised.append(e)
            finished.set()

        threading.Thread(target=catch_up, daemon=True).start()
        # Bounded, so that a path that waits for the holder fails this test, never hangs it.
        waited = finished.wait(30)
    assert waited, "the one-by-one path waited for the row's holder"
    assert failed and len(raised) == 1 and isinstance(raised[0], ProjectionBusy), raised
    [position] = [p for p in core.runner.positions() if p.name == view.name]
    assert position.last_error is None and position.failures == 0
