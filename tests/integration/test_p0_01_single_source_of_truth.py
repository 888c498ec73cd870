"""P0-01: one policy, and every reader agrees with it the moment a change is committed."""

from __future__ import annotations

from decimal import Decimal

import pytest

from app.bootstrap import Core, bootstrap
from app.config import Settings
from app.queries.cli_views import current_snapshot
from app.queries.gate import GateCode
from domain.errors import InvalidCommand, RefusedBySafetyRule
from domain.ids import POLICY_ID
from tests.integration.paper_drill import breaker_reads


def readers_say(core: Core) -> dict[str, object]:
    """What the gate, the aggregate and the (caught-up) view each say about emergency mode."""
    decision = core.gate.can_open_new_trades()
    policy = core.commands.load_policy()
    assert policy is not None
    snapshot, head = current_snapshot(core)
    assert snapshot.policy is not None and snapshot.position == head
    return {
        "gate_emergency": decision.emergency_mode,
        "gate_allows": decision.allowed,
        "aggregate_emergency": policy.emergency_mode,
        "aggregate_allows": policy.allow_new_trades,
        "view_emergency": snapshot.policy.emergency_mode,
        "view_allows": snapshot.policy.allow_new_trades,
    }


def test_every_reader_says_emergency_once_activation_is_committed(core: Core) -> None:
    breaker_reads(core)  # the breaker sees the account: only the policy is in question
    before = readers_say(core)
    assert set(before.values()) == {False, True}
    assert before["gate_allows"] is True and before["gate_emergency"] is False

    core.commands.activate_emergency(reason="drill", actor="alice")

    decision = core.gate.can_open_new_trades()
    assert not decision.allowed
    assert decision.code is GateCode.EMERGENCY
    assert "drill" in decision.reason
    after = readers_say(core)
    assert after == {
        "gate_emergency": True,
        "gate_allows": False,
        "aggregate_emergency": True,
        "aggregate_allows": False,
        "view_emergency": True,
        "view_allows": False,
    }


def test_gate_is_fresh_before_the_view_has_caught_up(core: Core) -> None:
    core.runner.catch_up()
    core.commands.activate_emergency(reason="drill", actor="alice")
    # No catch-up: the view is one transaction behind, the gate must still see the change.
    decision = core.gate.can_open_new_trades()
    assert decision.source == "aggregate"
    assert decision.code is GateCode.EMERGENCY


def test_gate_answers_from_the_view_when_it_is_at_the_head(core: Core) -> None:
    breaker_reads(core)  # the breaker sees the account: only the policy is in question
    core.runner.catch_up()
    decision = core.gate.can_open_new_trades()
    assert decision.source == "view"
    assert decision.allowed


def test_activation_and_policy_change_are_one_transaction(core: Core) -> None:
    core.commands.activate_emergency(reason="drill", actor="alice")
    with core.engine.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT topic, xmin::text AS tx FROM eventstore.tradecore_events "
            "ORDER BY notification_id"
        ).all()
    by_topic = {r.topic.rsplit(".", 1)[-1]: r.tx for r in rows}
    assert by_topic["Activated"] == by_topic["EmergencyModeEntered"]


def test_activating_an_active_latch_records_nothing(core: Core) -> None:
    first = core.commands.activate_emergency(reason="drill", actor="alice")
    head = core.store.recorder.max_notification_id()
    second = core.commands.activate_emergency(reason="again", actor="bob")
    assert first.activated and not second.activated
    assert second.activation_number == first.activation_number
    assert core.store.recorder.max_notification_id() == head


def test_reset_leaves_new_trades_stopped_until_an_operator_allows_them(core: Core) -> None:
    breaker_reads(core)  # the breaker sees the account: only the policy is in question
    core.commands.activate_emergency(reason="drill", actor="alice")
    core.commands.reset_emergency(reason="all clear", actor="alice", venue_exposure=lambda: (0, 0))
    decision = core.gate.can_open_new_trades()
    assert not decision.emergency_mode
    assert decision.code is GateCode.NEW_TRADES_DISABLED
    core.commands.update_policy(actor="alice", reason="resume", allow_new_trades=True)
    assert core.gate.can_open_new_trades().allowed


def test_new_trades_cannot_be_allowed_during_an_emergency(core: Core) -> None:
    core.commands.activate_emergency(reason="drill", actor="alice")
    version = core.commands.load_policy().version  # type: ignore[union-attr]
    with pytest.raises(RefusedBySafetyRule):
        core.commands.update_policy(actor="bob", reason="yolo", allow_new_trades=True)
    assert core.commands.load_policy().version == version  # type: ignore[union-attr]


def test_resetting_an_inactive_latch_is_refused(core: Core) -> None:
    with pytest.raises(RefusedBySafetyRule):
        core.commands.reset_emergency(
            reason="nothing to reset", actor="alice", venue_exposure=lambda: (0, 0)
        )


def test_invalid_limits_record_nothing(core: Core) -> None:
    head = core.store.recorder.max_notification_id()
    with pytest.raises(InvalidCommand, match="drawdown_hard_threshold"):
        core.commands.update_policy(actor="a", reason="x", drawdown_hard_threshold="0.2")
    assert core.store.recorder.max_notification_id() == head


def test_latch_survives_a_restart(core: Core, settings: Settings) -> None:
    core.commands.activate_emergency(reason="drill", actor="alice")
    core.close()
    with bootstrap(settings) as restarted:
        decision = restarted.gate.can_open_new_trades()
        assert decision.emergency_mode and not decision.allowed
        emergency = restarted.commands.load_emergency()
        assert emergency is not None and emergency.active and emergency.reason == "drill"


def test_limits_round_trip_as_exact_decimals(core: Core) -> None:
    core.commands.update_policy(
        actor="a", reason="x", max_position_notional="12345.678901", max_leverage="2.5"
    )
    snapshot, _ = current_snapshot(core)
    assert snapshot.policy is not None
    assert snapshot.policy.max_position_notional == Decimal("12345.678901")
    assert snapshot.policy.max_leverage == Decimal("2.5")


def test_policy_is_rebuilt_from_a_snapshot_with_exact_limits(core: Core) -> None:
    start = core.commands.load_policy().version  # type: ignore[union-attr]
    for i in range(60):
        core.commands.update_policy(actor="a", reason="r", max_position_notional=f"{9000 + i}.5")
    assert core.store.snapshots is not None
    snapshots = list(core.store.snapshots.get(POLICY_ID))
    assert snapshots, "no snapshot was taken"
    policy = core.commands.load_policy()
    assert policy is not None and policy.version == start + 60
    assert policy.limits.max_position_notional == Decimal("9059.5")
