"""P0-07: every equity reading is judged as it arrives; a hard breach activates the emergency
stop in the same transaction; glitches and failed fetches never trip it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from decimal import Decimal
from functools import partial
from typing import Any

import pytest
from sqlalchemy import text

from adapters.eventstore import EVENTS_SCHEMA, EVENTS_TABLE
from adapters.paper.faults import FaultSettings
from adapters.paper.venue import PaperVenue
from app.bootstrap import Core, bootstrap
from app.commands.executor import Outcome, TradeIntent
from app.config import Settings
from app.processes.drawdown_breaker import DrawdownBreaker
from app.processes.flattener import positions_and_orders
from domain.account import Account
from domain.drawdown import BreakerState, Transition
from domain.emergency import Emergency
from domain.errors import RefusedBySafetyRule
from domain.venue import Balance, VenueUnavailable
from tests.integration.paper_drill import (
    breaker_reads,
    funded,
    long_book,
    move,
    place,
    worker_threads,
)
from tests.waiting import wait_for

BTC, ETH = "BTC/USDT:USDT", "ETH/USDT:USDT"
HARD = "domain.account:Account.HardBreach"
ACTIVATED = "domain.emergency:Emergency.Activated"


@pytest.fixture
def venue(core: Core) -> PaperVenue:
    return funded(core, {BTC: "50000", ETH: "3000"})


def account(breaker: DrawdownBreaker) -> Account:
    found = breaker.load()
    assert found is not None
    return found


def emergency_active(core: Core) -> bool:
    emergency = core.commands.load_emergency()
    return emergency is not None and emergency.active


def topics_by_transaction(core: Core, topics: list[str]) -> list[tuple[int, str]]:
    """(transaction id, topic) of the events with these topics, in log order."""
    with core.engine.connect() as conn:
        rows = conn.execute(
            text(
                f"SELECT xmin::text::bigint AS tx, topic FROM {EVENTS_SCHEMA}.{EVENTS_TABLE} "
                "WHERE topic = ANY(:topics) ORDER BY notification_id"
            ),
            {"topics": topics},
        ).all()
    return [(int(r.tx), str(r.topic)) for r in rows]


@pytest.fixture
def worker(core: Core) -> Iterator[Callable[[], None]]:
    with worker_threads(core) as start:
        yield start


def read_since(core: Core, at: datetime) -> bool:
    last = account(core.drawdown_breaker()).last_reading_at
    return last is not None and last > at


# -- the crash ---------------------------------------------------------------------------------


def test_a_crash_past_the_hard_threshold_activates_the_stop_atomically_and_the_worker_flattens(
    core: Core, venue: PaperVenue, worker: Callable[[], None]
) -> None:
    long_book(venue)
    worker()
    wait_for(
        lambda: (a := core.drawdown_breaker().load()) is not None and a.equity is not None,
        what="the breaker's first reading",
    )
    for factor in ("0.99", "0.98", "0.96", "0.93", "0.85"):  # the scripted path down
        move(venue, factor)
        # Each step is read (pushed by the mark move) before the next one comes. The time is
        # taken once the move is committed: a reading timed after it shows it (a reading
        # holds the paper account's row lock, which the move waits for), whereas one that
        # started before the move could be timed after the move began and still miss it.
        moved_at = core.clock()
        wait_for(partial(read_since, core, moved_at), what=f"a reading at {factor}")

    def flat() -> bool:
        emergency = core.commands.load_emergency()
        return emergency is not None and emergency.active and emergency.flat is True

    wait_for(flat, what="the emergency stop, flat")
    emergency = core.commands.load_emergency()
    assert emergency is not None and emergency.source == "drawdown"
    assert positions_and_orders(venue) == (0, 0)
    state = account(core.drawdown_breaker())
    assert state.breaker_state is BreakerState.HARD_BREACH
    assert state.drawdown <= Decimal("-0.10")
    # The breach and the activation: one transaction, never one without the other.
    rows = topics_by_transaction(core, [HARD, ACTIVATED])
    assert [topic for _, topic in rows] == [HARD, ACTIVATED]
    assert rows[0][0] == rows[1][0]
    # The causation chain: reading -> breach -> activation.
    events = list(core.store.events.get(state.id))
    [breach] = [e for e in events if isinstance(e, Account.HardBreach)]
    [activated] = [
        e for e in core.store.events.get(emergency.id) if isinstance(e, Emergency.Activated)
    ]
    assert activated.causation_id is not None
    assert activated.correlation_id == breach.correlation_id
    soft = [e for e in events if isinstance(e, Account.SoftBreach)]
    assert len(soft) == 1  # on the way down, before the hard breach


def test_a_worker_restarted_in_the_middle_of_a_crash_resumes_from_the_log_and_trips(
    core: Core, venue: PaperVenue, worker: Callable[[], None]
) -> None:
    long_book(venue)
    first = core.drawdown_breaker()
    first.poll()
    move(venue, "0.85")
    # The first worker records the breaching reading (pending: a jump) and dies before its
    # confirming re-read.
    pending = first.record(first.read("poll"))
    assert pending.needs_confirmation
    held = account(first).pending
    assert held is not None and not emergency_active(core)

    worker()  # a new process: nothing in memory, only the log
    wait_for(
        lambda: (e := core.commands.load_emergency()) is not None and e.flat is True,
        what="the emergency stop, flat",
    )
    [breach] = [
        e for e in core.store.events.get(account(first).id) if isinstance(e, Account.HardBreach)
    ]
    assert breach.confirmation is not None
    assert breach.confirmation["pending_version"] == held["version"]
    assert positions_and_orders(venue) == (0, 0)


# -- no false positives ------------------------------------------------------------------------


class ScriptedEquity:
    """The paper venue, except that each equity read returns the next scripted value (a
    Balance, or an exception to raise): how a venue's bad answers look to the feed."""

    def __init__(self, venue: PaperVenue, script: list[Balance | Exception]) -> None:
        self._venue = venue
        self.name = "scripted"
        self.script = list(script)

    def fetch_balance(self) -> Balance:
        item = self.script.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    def __getattr__(self, name: str) -> Any:
        return getattr(self._venue, name)


def balance(equity: str) -> Balance:
    return Balance("USDT", Decimal(equity), Decimal(0))


def test_glitch_readings_are_rejected_or_unconfirmed_and_never_trip(
    core: Core, venue: PaperVenue
) -> None:
    long_book(venue)
    script: list[Balance | Exception] = [
        balance("10000"),  # the first reading is held for confirmation ...
        balance("10000"),  # ... and confirmed by the immediate re-read
        balance("0"),  # zero while positions are open
        Balance("USDT", Decimal("NaN"), Decimal(0)),
        balance("-50"),
        balance("5000"),  # -50 % ...
        balance("10000"),  # ... contradicted by the immediate re-read
        VenueUnavailable("timeout"),  # a failed fetch: a missing reading, not 0
        balance("9990"),
    ]
    scripted = ScriptedEquity(venue, script)
    breaker = DrawdownBreaker(core.store, core.commands, scripted, core.clock)  # type: ignore[arg-type]
    polls = [breaker.poll() for _ in range(7)]

    assert scripted.script == []
    assert polls[5].error is not None and polls[5].evaluations == []
    state = account(breaker)
    events = list(core.store.events.get(state.id))
    rejected = [e for e in events if isinstance(e, Account.EquityReadingRejected)]
    assert [r.reason.split(" (")[0] for r in rejected] == [
        "equity is zero while positions are open",
        "equity is not a finite number",
        "equity is negative",
    ]
    [unconfirmed] = [e for e in events if isinstance(e, Account.ReadingUnconfirmed)]
    assert unconfirmed.pending_equity == Decimal(5000)
    assert not [e for e in events if isinstance(e, Account.HardBreach | Account.SoftBreach)]
    assert state.breaker_state is BreakerState.NORMAL and state.peak == Decimal(10000)
    assert not emergency_active(core)
    assert positions_and_orders(venue)[0] == 2


def test_a_feed_that_cannot_fetch_records_nothing_and_never_trips(
    core: Core, venue: PaperVenue
) -> None:
    long_book(venue)
    breaker = core.drawdown_breaker()
    breaker.poll()
    version = account(breaker).version
    venue.admin().set_faults(FaultSettings(error_rate=Decimal(1), seed=1))
    polls = [breaker.poll() for _ in range(5)]
    assert all(p.error and "network error" in p.error for p in polls)
    assert account(breaker).version == version
    assert not emergency_active(core)


# -- soft breach -------------------------------------------------------------------------------


def intent(symbol: str = BTC) -> TradeIntent:
    return TradeIntent(
        symbol=symbol, side="long", notional=Decimal(2000), actor="test", reason="test"
    )


def test_a_soft_breach_blocks_entries_allows_exits_and_recovery_gives_back_only_its_own_stop(
    core: Core, venue: PaperVenue
) -> None:
    breaker_reads(core)  # the breaker has seen the account before any entry
    executor = core.executor()
    opened = executor.open(intent())
    assert opened.outcome is Outcome.FILLED and opened.trade_id is not None
    place(venue, ETH, "buy", "3")  # 9,000 more of longs from outside: a visible drawdown
    breaker = core.drawdown_breaker()
    breaker.poll()
    move(venue, "0.93")  # about -6 %
    breaker.poll()
    assert account(breaker).breaker_state is BreakerState.SOFT_BREACH
    policy = core.commands.load_policy()
    assert policy is not None and not policy.allow_new_trades and not policy.emergency_mode

    refused = executor.open(intent(ETH))
    assert refused.outcome is Outcome.REFUSED
    closed = executor.close(opened.trade_id, reason="signal", actor="test")
    assert closed.outcome is Outcome.FILLED  # a reduce-only exit is never blocked

    move(venue, "0.99")  # back above -5 % + 1 %
    breaker.poll()
    assert account(breaker).breaker_state is BreakerState.NORMAL
    policy = core.commands.load_policy()
    assert policy is not None and policy.allow_new_trades

    # Now an operator stops entries during the next soft breach: recovery leaves them off.
    move(venue, "0.93")
    breaker.poll()
    core.commands.update_policy(actor="alice", reason="hold", allow_new_trades=False)
    move(venue, "0.99")
    breaker.poll()
    assert account(breaker).breaker_state is BreakerState.NORMAL
    policy = core.commands.load_policy()
    assert policy is not None and not policy.allow_new_trades
    assert policy.allowance_changed_by == "alice"


def test_an_operator_reset_of_the_peak_ends_a_hard_breach(core: Core, venue: PaperVenue) -> None:
    long_book(venue)
    breaker = core.drawdown_breaker()
    breaker.poll()
    move(venue, "0.85")
    breaker.poll()
    assert account(breaker).breaker_state is BreakerState.HARD_BREACH
    report = core.flattener().run()
    assert report is not None and report.flat

    # The latch stays while the breaker would trip it again at its next reading.
    def flat_venue() -> tuple[int, int]:
        return positions_and_orders(venue)

    with pytest.raises(RefusedBySafetyRule, match="reset the peak first"):
        core.commands.reset_emergency(reason="early", actor="alice", venue_exposure=flat_venue)
    emergency = core.commands.load_emergency()
    assert emergency is not None and emergency.active

    reset = breaker.reset_peak(actor="alice", reason="reviewed")
    assert reset.breaker_state is BreakerState.NORMAL and reset.peak == reset.equity
    breaker.poll()
    assert account(breaker).breaker_state is BreakerState.NORMAL
    core.commands.reset_emergency(reason="reviewed", actor="alice", venue_exposure=flat_venue)
    emergency = core.commands.load_emergency()
    assert emergency is not None and not emergency.active


def test_a_policy_change_made_by_another_process_is_judged_by_the_breakers_next_reading(
    core: Core, venue: PaperVenue, settings: Settings
) -> None:
    # The breaker keeps the policy it last loaded between readings; each reading asks the
    # store whether a newer version exists, so a change recorded by any other process is
    # what the very next reading is judged by.
    long_book(venue)
    breaker = core.drawdown_breaker()
    assert breaker.poll().last is not None
    move(venue, "0.98")  # about -1.6 %: nothing under the default thresholds (-5 %, -10 %)
    second = breaker.poll().last
    assert (
        second is not None and second.status == "accepted" and second.transition is Transition.NONE
    )
    with bootstrap(settings, pool_size=2) as other:  # another process: its own store client
        other.commands.update_policy(
            actor="operator",
            reason="tighter",
            drawdown_soft_threshold="-0.02",
            drawdown_hard_threshold="-0.03",
        )
    move(venue, "0.96")  # about -3.2 %: a hard breach under the new thresholds only
    third = breaker.poll().last
    assert third is not None and third.transition is Transition.HARD_BREACH
    assert emergency_active(core)
