"""The one repository helper: not found, store unavailable and conflict are different
things, and a commit whose acknowledgement was lost is a success."""

from __future__ import annotations

from decimal import Decimal
from uuid import uuid4

import pytest

from adapters.errors import StoreUnavailable
from adapters.repository import Conflict, Repository
from app.bootstrap import Core
from domain.ids import POLICY_ID
from domain.policy import Policy
from tests.store_faults import StoreFaults, is_insert


def limits_updates(core: Core) -> int:
    return sum(isinstance(e, Policy.LimitsUpdated) for e in core.store.events.get(POLICY_ID))


def test_a_command_whose_commit_acknowledgement_was_lost_succeeds_once(core: Core) -> None:
    before = limits_updates(core)
    with StoreFaults().attach(core) as faults:
        faults.rule = lambda name, _i, _t: "lost_ack" if is_insert(name) else None
        change = core.commands.update_policy(
            actor="op", reason="lost ack", max_position_notional="1234"
        )
        assert faults.injected, "the insert was never reached"
    assert change.changed
    assert limits_updates(core) == before + 1  # recorded once, not retried as a new write
    policy = core.commands.load_policy()
    assert policy is not None and policy.limits.max_position_notional == Decimal(1234)


def test_a_concurrent_writer_is_a_conflict_and_nothing_of_the_loser_is_recorded(
    core: Core,
) -> None:
    repository = Repository(core.store)
    first, second = (repository.find(Policy, POLICY_ID) for _ in range(2))
    assert first is not None and second is not None
    for copy, notional in ((first, "1000"), (second, "2000")):
        copy.update_limits(
            actor="op", reason="race", timestamp=core.clock(), max_position_notional=notional
        )
    repository.save(first)
    with pytest.raises(Conflict):
        repository.save(second)
    policy = repository.find(Policy, POLICY_ID)
    assert policy is not None and policy.limits.max_position_notional == Decimal(1000)


def test_never_recorded_is_none_and_an_unanswered_read_is_store_unavailable(
    core: Core,
) -> None:
    repository = Repository(core.store)

    assert repository.find(Policy, uuid4()) is None
    with StoreFaults().attach(core) as faults:
        faults.rule = lambda _n, _i, _t: "error"
        with pytest.raises(StoreUnavailable):
            repository.find(Policy, POLICY_ID)
