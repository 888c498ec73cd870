"""Events are a permanent schema: events recorded by earlier versions keep loading."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from eventsourcing.persistence import StoredEvent

from app.bootstrap import Core, bootstrap
from app.config import Settings
from domain.emergency import LEGACY_INSTALLATION, Emergency
from domain.ids import EMERGENCY_ID, POLICY_ID
from domain.policy import Policy

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def as_version_1(core: Core, event: object, drop: str) -> StoredEvent:
    """The event as version 1 stored it: without ``drop`` and without a class_version."""
    stored = core.store.mapper.to_stored_event(event)  # type: ignore[arg-type]
    state = json.loads(stored.state)
    state.pop(drop)
    state.pop("class_version", None)
    return StoredEvent(
        originator_id=stored.originator_id,
        originator_version=stored.originator_version,
        topic=stored.topic,
        state=json.dumps(state).encode(),
    )


def test_version_1_creation_events_load_with_their_old_meaning(settings: Settings) -> None:
    with bootstrap(settings) as core:
        [policy_created] = Policy.create(actor="v1", reason="old", timestamp=T0).collect_events()
        [latch_created] = Emergency(
            installation_id=LEGACY_INSTALLATION, timestamp=T0
        ).collect_events()
        core.store.recorder.insert_events(
            [
                as_version_1(core, policy_created, drop="allow_new_trades"),
                as_version_1(core, latch_created, drop="installation_id"),
            ]
        )
        policy = core.store.repository.get(POLICY_ID)
        latch = core.store.repository.get(EMERGENCY_ID)
        assert isinstance(policy, Policy) and isinstance(latch, Emergency)
        assert policy.allow_new_trades is True  # what version 1 policies started with
        assert latch.installation_id == LEGACY_INSTALLATION
        # And the projection, which replays the same events, agrees.
        core.runner.catch_up()
        assert core.gate.can_open_new_trades().allowed
