"""The Emergency latch's rules, without any I/O."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from domain.emergency import Emergency, EmergencyNotActive, activation_id
from domain.errors import InvalidCommand

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def activate(latch: Emergency, reason: str = "drill") -> bool:
    return latch.activate(reason=reason, actor="alice", source="operator", timestamp=T0)


def test_activation_latches_with_reason_actor_and_source() -> None:
    latch = Emergency(timestamp=T0)
    assert activate(latch)
    assert latch.active
    assert (latch.reason, latch.activated_by, latch.source) == ("drill", "alice", "operator")
    assert latch.activation_number == 1
    assert latch.activation_id == activation_id(1)


def test_activating_an_active_latch_is_idempotent() -> None:
    latch = Emergency(timestamp=T0)
    activate(latch)
    latch.collect_events()
    assert not activate(latch, reason="again")
    assert latch.collect_events() == []
    assert latch.reason == "drill"


def test_reset_releases_the_latch_and_a_new_activation_gets_a_new_id() -> None:
    latch = Emergency(timestamp=T0)
    activate(latch)
    first = latch.activation_id
    latch.reset(reason="ok", actor="bob", timestamp=T0)
    assert not latch.active and latch.reset_by == "bob"
    activate(latch, reason="second")
    assert latch.activation_number == 2
    assert latch.activation_id != first


def test_resetting_an_inactive_latch_is_refused() -> None:
    latch = Emergency(timestamp=T0)
    with pytest.raises(EmergencyNotActive):
        latch.reset(reason="ok", actor="bob", timestamp=T0)


def test_activation_requires_reason_actor_and_a_known_source() -> None:
    latch = Emergency(timestamp=T0)
    with pytest.raises(InvalidCommand, match="reason"):
        latch.activate(reason=" ", actor="a", source="operator", timestamp=T0)
    with pytest.raises(InvalidCommand, match="actor"):
        latch.activate(reason="r", actor="", source="operator", timestamp=T0)
    with pytest.raises(InvalidCommand, match="source"):
        latch.activate(reason="r", actor="a", source="martians", timestamp=T0)
    assert not latch.active


def test_activation_ids_are_stable_across_replays() -> None:
    assert activation_id(3) == activation_id(3)
    assert activation_id(3) != activation_id(4)
