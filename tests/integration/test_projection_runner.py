"""The projection runner: exactly once, resumes from its tracked position, polls."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import select

from adapters.errors import StoreUnavailable
from app.bootstrap import Core, bootstrap
from app.config import Settings
from projections.event_index import EventIndexProjection
from projections.policy_view import PolicyProjection
from projections.tables import policy_view, projection_tracking


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


def test_two_runners_at_once_apply_each_event_once(core: Core, settings: Settings) -> None:
    head = core.store.recorder.max_notification_id() or 0
    for i in range(30):
        core.commands.update_policy(actor="a", reason="r", max_position_notional=str(7000 + i))
    with bootstrap(settings) as other:
        counts: list[int] = []
        threads = [
            threading.Thread(target=lambda c=c: counts.append(c.runner.catch_up()))
            for c in (core, other)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    # Each event was applied by exactly one of them (an update applied twice would also
    # fail: the Created insert would collide on the primary key).
    # The policy view and the event index take every one of these events; the dashboard
    # takes the latch's creation.
    assert sum(counts) == (head + 30) * 2 + 1
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
        deadline = time.monotonic() + 5
        while view_version(core) != expected:
            assert time.monotonic() < deadline, "the runner did not poll"
            time.sleep(0.05)
    finally:
        stop.set()
        worker.join(timeout=5)


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
