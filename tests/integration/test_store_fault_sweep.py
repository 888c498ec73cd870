"""The store-fault sweep: for each safety path, a fault at every store call in turn.

Each path's store calls are counted on a clean run first (``test_each_path_makes_the_store
calls_the_sweep_covers`` pins the counts, so a path that changes its calls makes the sweep
change with it). Then one case per (path, call index, fault kind) injects that fault at that
call and asserts the outcome is safe:

- never "success and not flat" (the operator's activation, the worker's flatten);
- never "allowed" when the state cannot be proved (the gate);
- never a lost or doubled event (one activation, one trade per intent, every order at the
  venue recorded first; the read models' ``verify`` consistent after healing);
- never a hang past the stated bound (adapters.repository.WRITER_BOUND, the flatten deadline).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError as SAOperationalError

from adapters.errors import StoreUnavailable
from adapters.paper import tables as t
from adapters.paper.venue import PaperVenue
from adapters.repository import WRITER_BOUND
from app.bootstrap import Core, bootstrap
from app.commands.executor import Outcome, TradeIntent
from app.config import Settings
from app.processes.flattener import FlattenReport, positions_and_orders
from domain.account import Account
from domain.emergency import Emergency
from domain.ids import EMERGENCY_ID, account_id
from domain.trade import Trade, trade_id_for
from domain.venue import VenueError
from projections.rebuild import VerifyReport, verify
from tests.conftest import TEST_BREAKER_SIGHT
from tests.integration.paper_drill import breaker_reads, open_account, place
from tests.postgres import PgTestServer, app_address
from tests.store_faults import FAULT_KINDS, FaultKind, StoreFaults

BTC = "BTC/USDT:USDT"
DEADLINE = 2.0  # the flatten deadline of these cores, seconds
# A case must end within this (a loaded machine: 4x the stated bounds).
HANG_BOUND = 4 * (WRITER_BOUND + DEADLINE)


@dataclass(frozen=True)
class SafetyPath:
    setup: Callable[[Core], None]
    act: Callable[[Core], Any]
    check: Callable[[Core, Any, BaseException | None], None]  # after the faulty act
    heal: Callable[[Core], None]  # the same path again, no fault: it must recover
    engine: bool = False  # the engine's statements count as store calls too


# -- helpers ------------------------------------------------------------------------------------


def events_of(core: Core, aggregate_id: Any) -> list[Any]:
    return list(core.store.events.get(aggregate_id))


def activations(core: Core) -> int:
    return sum(isinstance(e, Emergency.Activated) for e in events_of(core, EMERGENCY_ID))


def latch_and_policy_agree(core: Core) -> None:
    emergency, policy = core.commands.load_emergency(), core.commands.load_policy()
    assert emergency is not None and policy is not None
    assert emergency.active == policy.emergency_mode, "the latch and the policy disagree"


def venue(core: Core) -> PaperVenue:
    v = core.venue()
    assert isinstance(v, PaperVenue)
    return v


def flatten_safely(report: FlattenReport | None, core: Core) -> None:
    """A flatten's report never says flat (or 'nothing to do') while the account is not."""
    exposure = positions_and_orders(venue(core))
    if report is None:
        emergency = core.commands.load_emergency()
        assert emergency is None or not emergency.active, "active emergency read as 'none'"
    elif report.flat:
        assert exposure == (0, 0), f"reported flat with {exposure} open"


# -- the paths ----------------------------------------------------------------------------------


def positions_open(core: Core) -> None:
    open_account(venue(core), symbols=2, resting=1)


def activate_and_flatten(core: Core) -> FlattenReport | None:
    """What `emergency activate` does: latch, then flatten (exit 0 only if flat)."""
    core.commands.activate_emergency(reason="drill", actor="test")
    return core.flattener().run()


def check_activation(core: Core, report: Any, error: BaseException | None) -> None:
    if error is not None:
        assert isinstance(error, StoreUnavailable), repr(error)  # exit 4, said as such
    else:
        flatten_safely(report, core)
    assert activations(core) <= 1
    latch_and_policy_agree(core)


def heal_activation(core: Core) -> None:
    report = activate_and_flatten(core)
    assert report is not None and report.flat
    assert activations(core) == 1


def activated(core: Core) -> None:
    positions_open(core)
    core.commands.activate_emergency(reason="drill", actor="test")


def flatten_once(core: Core) -> FlattenReport | None:
    return core.flattener().run()


def check_flatten(core: Core, report: Any, error: BaseException | None) -> None:
    assert error is None, f"a flatten raised {error!r}; the worker's run would stop on it"
    flatten_safely(report, core)
    assert activations(core) == 1


def heal_flatten(core: Core) -> None:
    report = flatten_once(core)
    assert report is not None and report.flat
    assert positions_and_orders(venue(core)) == (0, 0)


def crash_pending(core: Core) -> None:
    """A 10,000 account holding 0.1 BTC; its peak recorded; then the price falls 30%."""
    admin = venue(core).admin()
    admin.deposit(Decimal(10_000))
    admin.set_price(BTC, Decimal(50_000))
    place(venue(core), BTC, "buy", "0.1")
    core.drawdown_breaker().poll()
    admin.set_price(BTC, Decimal(35_000))


def breaker_poll(core: Core) -> Any:
    return core.drawdown_breaker().poll()


def check_breaker(core: Core, _: Any, error: BaseException | None) -> None:
    if error is not None:
        assert isinstance(error, StoreUnavailable), repr(error)
    assert activations(core) <= 1
    latch_and_policy_agree(core)


def heal_breaker(core: Core) -> None:
    core.drawdown_breaker().poll()
    emergency = core.commands.load_emergency()
    assert emergency is not None and emergency.active, "the crash was never acted on"
    assert activations(core) == 1
    breaches = [
        e
        for e in events_of(core, account_id(core.settings.account))
        if isinstance(e, Account.HardBreach)
    ]
    assert len(breaches) == 1


def emergency_on(core: Core) -> None:
    core.commands.activate_emergency(reason="drill", actor="test")
    core.runner.catch_up()


def gate_decision(core: Core) -> Any:
    return core.gate.can_open_new_trades()


def check_gate(core: Core, decision: Any, error: BaseException | None) -> None:
    assert error is None, f"the gate raised {error!r} instead of deciding"
    assert not decision.allowed, "allowed during an emergency"
    assert decision.emergency_mode


def heal_gate(core: Core) -> None:
    decision = gate_decision(core)
    assert not decision.allowed and decision.emergency_mode


def funded(core: Core) -> None:
    admin = venue(core).admin()
    admin.deposit(Decimal(100_000))
    admin.set_price(BTC, Decimal(50_000))
    breaker_reads(core)  # the gate refuses entries while the breaker cannot see (BREAKER_BLIND)
    core.runner.catch_up()


INTENT = TradeIntent(
    symbol=BTC, side="long", notional=Decimal(1000), actor="test", reason="sweep", key="sweep-1"
)


def execute_intent(core: Core) -> Any:
    return core.executor().open(INTENT)


def opening_requests(core: Core) -> int:
    query = select(func.count()).select_from(t.requests).where(t.requests.c.reduce_only.is_(False))
    with core.engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


# The paper venue keeps its books in the same database, so the engine's statements on this
# path include the venue's; it raises its own database errors as they come (its callers see
# a failed command, never a success). Any of these is a failure, which is safe here.
INTENT_FAILURES = (StoreUnavailable, VenueError, SAOperationalError)


def check_intent(core: Core, execution: Any, error: BaseException | None) -> None:
    if error is not None:
        assert isinstance(error, INTENT_FAILURES), repr(error)
    trade_events = [e for e in events_of_trade(core) if isinstance(e, Trade.OrderSubmitted)]
    # Every order the venue received was recorded first; never two for one intent.
    assert opening_requests(core) <= len(trade_events) <= 1
    if execution is not None and execution.outcome is Outcome.FILLED:
        assert trade_events


def events_of_trade(core: Core) -> list[Any]:
    return events_of(core, trade_id_for(f"intent:{INTENT.key}"))


def heal_intent(core: Core) -> None:
    execution = execute_intent(core)
    assert execution.outcome in (Outcome.DUPLICATE, Outcome.FILLED, Outcome.REFUSED), execution
    assert opening_requests(core) <= 1


def flat_and_active(core: Core) -> None:
    core.commands.activate_emergency(reason="drill", actor="test")
    report = core.flattener().run()
    assert report is not None and report.flat


def reset(core: Core) -> Any:
    return core.commands.reset_emergency(
        reason="all clear", actor="test", venue_exposure=lambda: positions_and_orders(venue(core))
    )


def check_reset(core: Core, _: Any, error: BaseException | None) -> None:
    if error is not None:
        assert isinstance(error, StoreUnavailable), repr(error)
    latch_and_policy_agree(core)
    resets = [e for e in events_of(core, EMERGENCY_ID) if isinstance(e, Emergency.Reset)]
    assert len(resets) <= 1


def heal_reset(core: Core) -> None:
    emergency = core.commands.load_emergency()
    assert emergency is not None
    if emergency.active:
        reset(core)
    latch_and_policy_agree(core)
    emergency = core.commands.load_emergency()
    assert emergency is not None and not emergency.active


PATHS: dict[str, SafetyPath] = {
    "activation": SafetyPath(
        positions_open, activate_and_flatten, check_activation, heal_activation
    ),
    "flatten": SafetyPath(activated, flatten_once, check_flatten, heal_flatten),
    "breaker": SafetyPath(crash_pending, breaker_poll, check_breaker, heal_breaker),
    "gate": SafetyPath(emergency_on, gate_decision, check_gate, heal_gate, engine=True),
    "intent": SafetyPath(funded, execute_intent, check_intent, heal_intent, engine=True),
    "reset": SafetyPath(flat_and_active, reset, check_reset, heal_reset),
}

# The store calls each path makes on a clean run (pinned by the first test below).
CALLS: dict[str, int] = {
    # One read of the activation's record before the flat record (closes whose answer was
    # lost are looked up, and every position a close hit is counted).
    "activation": 13,
    "flatten": 8,
    # The re-read's judgement asks whether the policy and the latch it holds are still
    # current (one version check) instead of loading both again.
    "breaker": 11,
    "gate": 4,
    # + the paper venue's reads of the position mode, of the exposure (positions, orders,
    # balance) and of the leverage it sets, and the pre-trade controls (the loss streak
    # read, the rate/duplicate transaction); a venue read of one statement takes no lock
    # and no savepoint, a balance (with the venue's time) is one statement; the order's
    # transaction first bounds its wait for the account (the venue's request timeout).
    "intent": 62,
    "reset": 7,
}

CASES = [
    pytest.param(path, index, kind, id=f"{path}-call{index}-{kind}")
    for path, count in CALLS.items()
    for index in range(count)
    for kind in FAULT_KINDS
]


@pytest.fixture
def fresh_core(pg_server: PgTestServer, migrated_template: str) -> Iterator[Core]:
    address = app_address(pg_server.create_database(template=migrated_template))
    try:
        settings = Settings(
            database_url=address.url,
            flatten_deadline=DEADLINE,
            breaker_blind_after=TEST_BREAKER_SIGHT,
        )
        with bootstrap(settings, pool_size=4) as core:
            core.commands.update_policy(actor="operator", reason="open", allow_new_trades=True)
            yield core
    finally:
        pg_server.drop_database(address)


def count_calls(core: Core, path: SafetyPath) -> list[str]:
    path.setup(core)
    with StoreFaults().attach(core, engine=path.engine) as faults:
        path.act(core)
        return list(faults.calls)


@pytest.mark.parametrize("name", list(PATHS))
def test_each_path_makes_the_store_calls_the_sweep_covers(fresh_core: Core, name: str) -> None:
    calls = count_calls(fresh_core, PATHS[name])
    print(f"{name}: {len(calls)} store calls: {calls}")
    assert len(calls) == CALLS[name], f"{name} now makes {len(calls)} store calls: {calls}"


@pytest.mark.slow
@pytest.mark.parametrize(("name", "index", "kind"), CASES)
def test_a_store_fault_at_any_call_of_a_safety_path_leaves_it_safe(
    fresh_core: Core, name: str, index: int, kind: FaultKind
) -> None:
    core, path = fresh_core, PATHS[name]
    path.setup(core)
    outcome: Any = None
    error: BaseException | None = None
    started = time.monotonic()
    with StoreFaults().attach(core, engine=path.engine) as faults:
        faults.fail_at(index, kind)
        try:
            outcome = path.act(core)
        except Exception as e:
            error = e
        injected = list(faults.injected)
    elapsed = time.monotonic() - started
    assert injected, f"call {index} was never reached"
    assert elapsed < HANG_BOUND, f"took {elapsed:.1f}s"
    path.check(core, outcome, error)
    path.heal(core)
    core.runner.catch_up()
    report = VerifyReport()
    for projection in core.runner.projections:
        verify(core.runner, projection, report)
    assert report.consistent, report.differences
