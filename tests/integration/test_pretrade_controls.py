"""The pre-trade controls on the executor's path (real Postgres, the paper venue): each one
refuses with its own code, recorded, nothing sent; each lets a good order through; the rate
and duplicate checks hold across executors of separate cores (processes share only the
store); no throttle ever holds back the flattener or a reduce-only close."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from adapters.clock import utc_now
from adapters.paper.venue import PaperVenue
from app.bootstrap import Core, bootstrap
from app.commands.executor import Execution, Executor, Outcome
from app.commands.pretrade_controls import PreTradeCheck
from app.config import Settings
from app.queries.cli_views import current_snapshot, policy_dict, status_dict
from domain.ids import POLICY_ID
from domain.policy import Policy
from domain.refusal import RefusedIntent
from tests.integration.test_executor import BTC, all_events, funded, intent, requests_at_venue


@dataclass
class Clock:
    """The pre-trade controls' clock, moved by the test (the rest of the core runs on the
    wall clock)."""

    now: datetime = field(default_factory=utc_now)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def controlled(core: Core, clock: Clock) -> Executor:
    """The core's executor with its pre-trade controls on ``clock``."""
    base = core.executor()
    check = PreTradeCheck(core.engine, core.commands, clock, account=core.settings.account)
    return Executor(core.store, core.gate, base.venue, core.clock, base.order_flow, pretrade=check)


def set_controls(core: Core, **controls: str) -> None:
    core.commands.update_policy(actor="operator", reason="controls", pretrade=controls)


def refusals(core: Core) -> list[str]:
    return [e.code for e in all_events(core) if isinstance(e, RefusedIntent.Refused)]


def assert_refused(execution: Execution, code: str) -> None:
    assert (execution.outcome, execution.code) == (Outcome.REFUSED, code), execution


# -- per-order size ----------------------------------------------------------------------------


def test_an_order_over_the_per_order_notional_is_refused_and_one_under_it_is_sent(
    core: Core,
) -> None:
    funded(core)
    set_controls(core, max_order_notional="200")

    refused = core.executor().open(intent("1000"))  # 300 as sized (0.3x in regime HIGH)
    sent = core.executor().open(intent("500"))  # 150

    assert_refused(refused, "ORDER_NOTIONAL_LIMIT")
    assert sent.outcome is Outcome.FILLED
    assert refusals(core) == ["ORDER_NOTIONAL_LIMIT"]
    assert requests_at_venue(core, opening=True) == 1


def test_an_order_over_the_per_order_quantity_is_refused_and_one_under_it_is_sent(
    core: Core,
) -> None:
    funded(core)  # BTC at 50,000
    set_controls(core, max_order_quantity="0.005")

    refused = core.executor().open(intent("1000"))  # 0.006 BTC as sized (0.3x in HIGH)
    sent = core.executor().open(intent("500"))  # 0.003 BTC

    assert_refused(refused, "ORDER_QUANTITY_LIMIT")
    assert sent.outcome is Outcome.FILLED
    assert refusals(core) == ["ORDER_QUANTITY_LIMIT"]
    assert requests_at_venue(core, opening=True) == 1


# -- duplicate ---------------------------------------------------------------------------------


def test_the_same_order_within_the_window_is_a_duplicate_and_after_it_is_sent(
    core: Core,
) -> None:
    funded(core)
    clock = Clock()
    executor = controlled(core, clock)

    first = executor.open(intent("1000", key="a"))
    again = executor.open(intent("1000", key="b"))  # another key, same symbol/side/size
    other = executor.open(intent("900", key="c"))
    clock.advance(2.1)
    later = executor.open(intent("1000", key="d"))

    assert first.outcome is Outcome.FILLED
    assert_refused(again, "DUPLICATE_ORDER")
    assert (other.outcome, later.outcome) == (Outcome.FILLED, Outcome.FILLED)
    assert refusals(core) == ["DUPLICATE_ORDER"]
    assert requests_at_venue(core, opening=True) == 3


# -- rate throttle -----------------------------------------------------------------------------


@pytest.fixture
def second_core(settings: Settings) -> Iterator[Core]:
    """Another core on the same store: what a second process (the worker, a CLI) has."""
    with bootstrap(settings, pool_size=2) as built:
        yield built


def exhaust(executor: Executor, count: int) -> list[Execution]:
    # Distinct sizes: the duplicate check stays out of the way.
    return [executor.open(intent(str(100 + i))) for i in range(count)]


def test_the_throttle_counts_every_executor_of_the_account_and_frees_after_a_second(
    core: Core, second_core: Core
) -> None:
    funded(core)
    clock = Clock()
    set_controls(core, max_orders_per_second="3")
    here, there = controlled(core, clock), controlled(second_core, clock)

    admitted = [*exhaust(here, 2), there.open(intent("150"))]
    from_here = here.open(intent("160"))
    from_there = there.open(intent("170"))
    clock.advance(1)
    next_second = there.open(intent("180"))

    assert [e.outcome for e in admitted] == [Outcome.FILLED] * 3
    assert_refused(from_here, "ORDER_RATE_LIMIT")
    assert_refused(from_there, "ORDER_RATE_LIMIT")
    assert next_second.outcome is Outcome.FILLED
    assert refusals(core) == ["ORDER_RATE_LIMIT"] * 2
    assert requests_at_venue(core, opening=True) == 4


def test_an_exhausted_throttle_never_holds_back_a_reduce_only_close(core: Core) -> None:
    funded(core)
    clock = Clock()
    executor = controlled(core, clock)
    opened = exhaust(executor, 10)
    assert_refused(executor.open(intent("99")), "ORDER_RATE_LIMIT")

    closes = [executor.close(e.trade_id, reason="signal", actor="test") for e in opened[:3]]

    assert [c.outcome for c in closes] == [Outcome.FILLED] * 3
    assert requests_at_venue(core, opening=False) == 3


def test_an_exhausted_throttle_never_holds_back_the_flattener(core: Core) -> None:
    venue = funded(core)
    clock = Clock()
    executor = controlled(core, clock)
    assert all(e.outcome is Outcome.FILLED for e in exhaust(executor, 10))
    assert_refused(executor.open(intent("99")), "ORDER_RATE_LIMIT")

    core.commands.activate_emergency(reason="drill", actor="test")
    report = core.flattener().run()

    assert report is not None and report.flat
    assert isinstance(venue, PaperVenue) and venue.fetch_positions() == []


# -- loss streak -------------------------------------------------------------------------------


def losing_round_trip(core: Core, executor: Executor, notional: str) -> None:
    venue = core.venue()
    assert isinstance(venue, PaperVenue)
    venue.admin().set_price(BTC, Decimal(50_000))
    opened = executor.open(intent(notional))
    assert opened.outcome is Outcome.FILLED and opened.trade_id is not None
    venue.admin().set_price(BTC, Decimal(49_000))
    assert executor.close(opened.trade_id, reason="signal", actor="test").outcome is (
        Outcome.FILLED
    )


def streak_events(core: Core) -> list[Any]:
    kinds = (Policy.LossStreakStopped, Policy.LossStreakCleared)
    return [e for e in all_events(core) if isinstance(e, kinds)]


def test_after_n_losing_closes_entries_stop_until_an_operator_reallows_them(core: Core) -> None:
    funded(core)
    clock = Clock()
    set_controls(core, loss_streak_losses="2")
    executor = controlled(core, clock)
    losing_round_trip(core, executor, "1000")
    losing_round_trip(core, executor, "900")
    core.runner.catch_up()  # the streak is read from the trade read model

    stopped = executor.open(intent("800"))
    still = executor.open(intent("700"))
    shown = policy_dict(*current_snapshot(core))

    assert_refused(stopped, "LOSS_STREAK_STOP")
    assert_refused(still, "LOSS_STREAK_STOP")
    assert [type(e).__name__ for e in streak_events(core)] == ["LossStreakStopped"]
    assert shown["loss_stop_until"] is not None
    assert "policy reallow-entries" in shown["loss_stop_reason"]
    assert status_dict(core)["policy"]["loss_stop_until"] == shown["loss_stop_until"]

    core.commands.clear_loss_streak_stop(actor="operator", reason="reviewed")
    core.runner.catch_up()
    assert executor.open(intent("600")).outcome is Outcome.FILLED
    assert policy_dict(*current_snapshot(core))["loss_stop_until"] is None


def test_the_loss_streak_stop_ends_with_its_cooldown_and_its_losses_do_not_restart_it(
    core: Core,
) -> None:
    funded(core)
    clock = Clock()
    set_controls(core, loss_streak_losses="2", loss_streak_cooldown_s="60")
    executor = controlled(core, clock)
    losing_round_trip(core, executor, "1000")
    losing_round_trip(core, executor, "900")
    core.runner.catch_up()
    assert_refused(executor.open(intent("800")), "LOSS_STREAK_STOP")

    # 61 s after the last loss, which the core stamped with the wall clock after this test's
    # clock was set: advancing from the test's start failed when a busy machine (load 25)
    # made the round trips take more than a second.
    clock.now = utc_now() + timedelta(seconds=61)

    assert executor.open(intent("700")).outcome is Outcome.FILLED
    assert len(streak_events(core)) == 1


def test_a_loss_then_a_win_does_not_stop_entries(core: Core) -> None:
    venue = funded(core)
    assert isinstance(venue, PaperVenue)
    clock = Clock()
    set_controls(core, loss_streak_losses="2")
    executor = controlled(core, clock)
    losing_round_trip(core, executor, "1000")
    venue.admin().set_price(BTC, Decimal(50_000))
    won = executor.open(intent("900"))
    assert won.trade_id is not None
    venue.admin().set_price(BTC, Decimal(51_000))
    executor.close(won.trade_id, reason="signal", actor="test")
    core.runner.catch_up()

    assert executor.open(intent("800")).outcome is Outcome.FILLED
    assert streak_events(core) == []


def test_the_controls_and_the_stop_survive_a_policy_snapshot(core: Core) -> None:
    for i in range(52):  # the policy is snapshotted every 50 versions
        set_controls(core, max_orders_per_second=str(3 + i % 2))
    core.commands.stop_for_loss_streak(losses=5, last_loss_at=utc_now(), actor="test")
    assert core.store.snapshots is not None
    assert list(core.store.snapshots.get(POLICY_ID))  # it loads from a snapshot

    loaded = core.commands.load_policy()

    assert loaded is not None and loaded.pretrade.max_orders_per_second == 4
    assert loaded.pretrade_state.loss_stop.active(utc_now())
