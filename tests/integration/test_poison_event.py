"""A poison event (one a read model cannot apply) already in the log is survivable: the
failing read model is isolated and named, the others and the safety chain keep running, and
the recorded way out (a ProjectionSkip) recovers it and shows in ``verify``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal
from functools import partial

import pytest

from adapters.paper.venue import PaperVenue
from app.bootstrap import Core
from app.processes.flattener import positions_and_orders
from app.queries.cli_views import current_snapshot, policy_dict
from domain.drawdown import BreakerState
from domain.errors import InvalidCommand
from projections.rebuild import VerifyReport, verify
from projections.runner import ProjectionPosition
from tests.integration.paper_drill import place, worker_threads
from tests.poison import poison_policy_view
from tests.waiting import wait_for

BTC = "BTC/USDT:USDT"


def position(core: Core, name: str) -> ProjectionPosition:
    [found] = [p for p in core.runner.positions() if p.name == name]
    return found


def meets_poison(core: Core) -> bool:
    error = position(core, "policy_view").last_error
    return error is not None and "NumericValueOutOfRange" in error


def head(core: Core) -> int:
    return int(core.store.recorder.max_notification_id() or 0)


@pytest.fixture
def venue(core: Core) -> PaperVenue:
    venue = core.venue()
    assert isinstance(venue, PaperVenue)
    venue.admin().deposit(Decimal(10_000))
    venue.admin().set_price(BTC, Decimal(50_000))
    return venue


@pytest.fixture
def worker(core: Core) -> Iterator[Callable[[], None]]:
    with worker_threads(core) as start:
        yield start


def test_a_read_model_failing_on_an_event_is_recorded_with_the_event_and_the_others_go_on(
    core: Core,
) -> None:
    core.runner.catch_up()
    poison = poison_policy_view(core)
    core.runner.catch_up()  # meets the poison alone (with a repair in its batch it would heal)
    # Since the input validation, a change of limits must also replace the unstorable
    # leverage (every LimitsUpdated carries the whole set, and the set is validated whole).
    core.commands.update_policy(
        actor="op", reason="after", max_leverage="3", max_position_notional="12345"
    )

    core.runner.catch_up()  # does not raise: the failure is the policy view's alone

    failing = position(core, "policy_view")
    assert failing.position == poison - 1  # every event before the poison applied
    assert failing.failing_event_id == poison
    assert failing.failing_topic == "domain.policy:Policy.LimitsUpdated"
    assert failing.last_error is not None and "NumericValueOutOfRange" in failing.last_error
    assert failing.failing_since is not None and failing.failures == 1
    assert core.runner.failing() == ["policy_view"]
    for other in ("event_index", "trades", "dashboard", "sizing_learner", "model_status"):
        assert position(core, other).position == head(core), other
        assert position(core, other).last_error is None
    # A read answers from the aggregate while the view is behind: current, not wedged.
    snapshot, at = current_snapshot(core)
    shown = policy_dict(snapshot, at)
    assert shown["source"] == "aggregate" and shown["fresh"]
    assert shown["max_leverage"] == Decimal(3)
    assert shown["max_position_notional"] == Decimal(12345)


def test_a_recorded_skip_recovers_the_read_model_and_verify_lists_it(core: Core) -> None:
    core.runner.retry_after = 0.0  # retry at once: the backoff is not what is tested here
    core.runner.catch_up()
    poison = poison_policy_view(core)
    core.runner.catch_up()
    assert position(core, "policy_view").failing_event_id == poison
    skips = core.projection_skips()
    with pytest.raises(InvalidCommand, match="no read model"):
        skips.record(consumer="nope", event_id=poison, reason="r", actor="op")
    with pytest.raises(InvalidCommand, match="already passed"):
        skips.record(consumer="policy_view", event_id=poison - 1, reason="r", actor="op")
    with pytest.raises(InvalidCommand, match="not in the log"):
        skips.record(consumer="policy_view", event_id=head(core) + 10, reason="r", actor="op")

    skip, new = skips.record(
        consumer="policy_view", event_id=poison, reason="unstorable leverage", actor="op"
    )
    assert new and skip.event_id == poison and "NumericValueOutOfRange" in skip.error
    again, new = skips.record(consumer="policy_view", event_id=poison, reason="x", actor="op")
    assert not new and again == skip  # the same decision, recorded once

    core.runner.catch_up()
    healed = position(core, "policy_view")
    assert healed.position == head(core)
    assert healed.failing_event_id is None and healed.last_error is None
    # A limits change carries the whole set, so the operator puts a storable leverage back
    # (else the next change would carry the poison value again); the view follows it.
    core.commands.update_policy(
        actor="op", reason="repair", max_leverage="3", max_position_notional="12345"
    )
    core.runner.catch_up()
    snapshot, _ = current_snapshot(core)
    assert snapshot.source == "view" and snapshot.policy is not None
    assert snapshot.policy.max_leverage == Decimal(3)
    assert snapshot.policy.max_position_notional == Decimal(12345)

    report = VerifyReport()
    for projection in core.runner.projections:
        verify(core.runner, projection, report)
    assert report.consistent, report.differences
    [listed] = report.skips
    assert (listed["consumer"], listed["event_id"]) == ("policy_view", poison)
    assert listed["reason"] == "unstorable leverage" and listed["actor"] == "op"


def test_with_a_poison_event_in_the_log_the_worker_still_flattens_a_later_activation(
    core: Core, venue: PaperVenue, worker: Callable[[], None]
) -> None:
    poison = poison_policy_view(core)
    place(venue, BTC, "buy", "0.1")
    worker()
    wait_for(partial(meets_poison, core), what="the policy view meeting the poison")
    core.commands.activate_emergency(reason="drill after a poison event", actor="op")

    def flat() -> bool:
        emergency = core.commands.load_emergency()
        return emergency is not None and emergency.active and emergency.flat is True

    wait_for(flat, 30, what="the worker flattening the activation")
    assert positions_and_orders(venue) == (0, 0)
    assert position(core, "policy_view").failing_event_id == poison
    # The other read models kept advancing meanwhile (the activation, the flatten record).
    at = head(core)
    wait_for(lambda: position(core, "event_index").position >= at, what="the event index")
    wait_for(lambda: position(core, "dashboard").position >= at, what="the dashboard")


def test_with_a_poison_event_in_the_log_the_breaker_still_trips_and_the_worker_flattens(
    core: Core, venue: PaperVenue, worker: Callable[[], None]
) -> None:
    poison = poison_policy_view(core)
    place(venue, BTC, "buy", "0.16")  # 8,000 of BTC on 10,000: a 15 % fall is 12 %
    worker()
    wait_for(partial(meets_poison, core), what="the policy view meeting the poison")
    breaker = core.drawdown_breaker()
    wait_for(
        lambda: (a := breaker.load()) is not None and a.equity is not None,
        what="the breaker's first reading",
    )
    for factor in ("0.99", "0.97", "0.93", "0.85"):
        moved_at = core.clock()
        venue.admin().set_price(BTC, Decimal(50_000) * Decimal(factor))
        wait_for(partial(_read_since, core, moved_at), what=f"a reading at {factor}")

    def flat() -> bool:
        emergency = core.commands.load_emergency()
        return emergency is not None and emergency.active and emergency.flat is True

    wait_for(flat, 30, what="the breaker tripping and the account flat")
    account = breaker.load()
    assert account is not None and account.breaker_state is BreakerState.HARD_BREACH
    assert positions_and_orders(venue) == (0, 0)
    assert position(core, "policy_view").failing_event_id == poison


def _read_since(core: Core, at: object) -> bool:
    account = core.drawdown_breaker().load()
    last = account.last_reading_at if account is not None else None
    return last is not None and last > at  # type: ignore[operator]
