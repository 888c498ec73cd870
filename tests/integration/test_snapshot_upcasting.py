"""A snapshot written by an older version of an aggregate class still loads through the
store: the repository starts from it, upcasts it to the current class version and applies
the events after it."""

from __future__ import annotations

import json
from typing import Any

from eventsourcing.persistence import StoredEvent

from app.bootstrap import Core
from domain.base import TradecoreAggregate
from domain.emergency import LEGACY_INSTALLATION

# The attributes version 1 of each class did not have (what its upcasters add).
EMERGENCY_V2_V3 = (
    "installation_id",
    "forced_reset",
    "flatten_attempts",
    "flat",
    "positions_closed",
    "orders_canceled",
    "time_to_flat_ms",
    "triggered",
    "correlation_id",
)
POLICY_V2 = ("allowance_changed_by",)


def store_as_version_1(
    core: Core, aggregate: TradecoreAggregate, added_later: tuple[str, ...]
) -> None:
    """Put a snapshot of ``aggregate`` as version 1 of its class wrote it: without the
    attributes added since and without a class_version."""
    snapshot = type(aggregate).Snapshot.take(aggregate)
    stored = core.store.mapper.to_stored_event(snapshot)
    state: dict[str, Any] = json.loads(stored.state)
    assert state["state"].pop("class_version") > 1
    for name in added_later:
        state["state"].pop(name)
    assert core.store.snapshots is not None
    core.store.snapshots.recorder.insert_events(
        [
            StoredEvent(
                originator_id=stored.originator_id,
                originator_version=stored.originator_version,
                topic=stored.topic,
                state=json.dumps(state).encode(),
            )
        ]
    )


def test_a_version_1_emergency_snapshot_loads_upcast_and_takes_new_events(core: Core) -> None:
    core.commands.activate_emergency(reason="first", actor="alice")
    assert core.flattener().run().flat  # type: ignore[union-attr]
    core.commands.reset_emergency(reason="drill over", actor="alice", venue_exposure=lambda: (0, 0))
    current = core.commands.load_emergency()
    assert current is not None and current.installation_id != LEGACY_INSTALLATION
    store_as_version_1(core, current, EMERGENCY_V2_V3)

    loaded = core.commands.load_emergency()  # from the snapshot: nothing after it yet

    assert loaded is not None and loaded.version == current.version
    assert loaded.installation_id == LEGACY_INSTALLATION  # the upcast's value: the snapshot
    assert (loaded.flatten_attempts, loaded.flat, loaded.triggered) == (0, None, False)
    assert loaded.correlation_id is None and loaded.forced_reset is None
    assert (loaded.active, loaded.activation_number) == (False, 1)

    # The events after the snapshot apply to the upcast state, and it takes new commands.
    core.commands.activate_emergency(reason="second", actor="bob")
    report = core.flattener().run()
    assert report is not None and report.flat and report.activation_number == 2
    again = core.commands.load_emergency()
    assert again is not None and again.active and again.flat is True
    assert again.reason == "second" and again.installation_id == LEGACY_INSTALLATION


def test_a_version_1_policy_snapshot_loads_upcast_and_takes_new_events(core: Core) -> None:
    current = core.commands.load_policy()
    assert current is not None and current.allowance_changed_by == "operator"
    store_as_version_1(core, current, POLICY_V2)

    loaded = core.commands.load_policy()

    assert loaded is not None and loaded.version == current.version
    assert loaded.allowance_changed_by is None  # the upcast's value: the snapshot was used
    assert loaded.allow_new_trades is True
    core.commands.update_policy(actor="carol", reason="after the snapshot", max_leverage="3")
    after = core.commands.load_policy()
    assert after is not None and after.version == current.version + 1
    assert str(after.limits.max_leverage) == "3"
    assert after.allowance_changed_by is None  # a limit change leaves the allowance's author
