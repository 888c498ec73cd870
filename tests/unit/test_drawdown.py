"""P0-07, the pure part: drawdown arithmetic, the breaker's states and the glitch guard."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from uuid import uuid4

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.account import Account, Evaluation
from domain.drawdown import (
    BreakerState,
    Reading,
    Thresholds,
    Transition,
    drawdown,
    rejection,
    transition,
)
from domain.errors import InvalidCommand

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
LIMITS = Thresholds(soft=Decimal("-0.05"), hard=Decimal("-0.10"))


class Feed:
    """An Account fed readings one second apart, as the worker would.

    ``confirm_first``: the first reading is re-read at once, as the breaker's poll does for
    any reading held for confirmation (so most tests start from an accepted first reading).
    """

    def __init__(
        self, *, entries_allowed: bool = True, daily_reset: bool = False, confirm_first: bool = True
    ) -> None:
        self.confirm_first = confirm_first
        self.account = Account.open(account="test", timestamp=T0)
        self.at = T0
        self.entries_allowed = entries_allowed
        self.emergency_active = False
        self.breaker_stopped = False
        self.daily_reset = daily_reset
        self.log: list[object] = []

    def read(
        self,
        equity: str | Decimal,
        *,
        positions_open: bool = True,
        at: datetime | None = None,
        step: timedelta = timedelta(seconds=1),
    ) -> Evaluation:
        first = self.account.equity is None and self.account.pending is None
        evaluation = self._read(equity, positions_open=positions_open, at=at, step=step)
        if first and self.confirm_first and evaluation.needs_confirmation:
            evaluation = self._read(equity, positions_open=positions_open, at=None, step=step)
        return evaluation

    def _read(
        self,
        equity: str | Decimal,
        *,
        positions_open: bool,
        at: datetime | None,
        step: timedelta,
    ) -> Evaluation:
        self.at = at or self.at + step
        value = Decimal(equity)
        evaluation = self.account.record_reading(
            Reading(value, value, Decimal(0), "test", self.at),
            thresholds=LIMITS,
            positions_open=positions_open,
            emergency_active=self.emergency_active,
            entries_allowed=self.entries_allowed,
            breaker_stopped_entries=self.breaker_stopped,
            timestamp=self.at,
            correlation_id=uuid4(),
            daily_reset=self.daily_reset,
        )
        self.log.extend(self.account.collect_events())
        # What app.processes.drawdown_breaker does to the policy and the latch, in miniature.
        if evaluation.transition is Transition.HARD_BREACH:
            self.emergency_active, self.entries_allowed = True, False
        elif evaluation.transition is Transition.SOFT_BREACH and self.entries_allowed:
            self.entries_allowed, self.breaker_stopped = False, True
        elif evaluation.reallows_entries:
            self.entries_allowed, self.breaker_stopped = True, False
        return evaluation

    def events(self, cls: type) -> list[object]:
        return [e for e in self.log if isinstance(e, cls)]


# -- arithmetic ---------------------------------------------------------------------------------

equities = st.decimals(min_value=Decimal("0.01"), max_value=Decimal(10**9), places=2)


@given(st.lists(equities, min_size=1, max_size=60))
@settings(max_examples=200, deadline=None)
def test_peak_never_falls_and_drawdown_stays_within_minus_one_and_zero(
    path: list[Decimal],
) -> None:
    feed = Feed()
    peaks = []
    for equity in path:
        feed.read(equity)
        feed.emergency_active = False  # keep judging: every reading is evaluated
        peaks.append(feed.account.peak)
        assert Decimal(-1) <= feed.account.drawdown <= 0
    assert peaks == sorted(peaks)


@given(equities, equities)
def test_drawdown_is_equity_over_peak_minus_one_clamped(equity: Decimal, peak: Decimal) -> None:
    dd = drawdown(equity, peak)
    assert Decimal(-1) <= dd <= 0
    if equity <= peak:
        assert dd == equity / peak - 1


def test_a_peak_of_zero_gives_no_drawdown() -> None:
    assert drawdown(Decimal(0), Decimal(0)) == 0


# -- rejected readings --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("equity", "positions_open", "why"),
    [
        (Decimal("NaN"), True, "not a finite number"),
        (Decimal("Infinity"), False, "not a finite number"),
        (Decimal(-5), False, "negative"),
        (Decimal(0), True, "zero while positions are open"),
    ],
)
def test_unusable_readings_are_rejected_with_the_reason(
    equity: Decimal, positions_open: bool, why: str
) -> None:
    feed = Feed()
    feed.read("10000")
    evaluation = feed.read(equity, positions_open=positions_open)
    assert evaluation.status == "rejected" and why in (evaluation.reason or "")
    assert feed.account.equity == Decimal(10000) and feed.account.rejected_count == 1
    [rejected] = feed.events(Account.EquityReadingRejected)
    assert why in rejected.reason  # type: ignore[attr-defined]


def test_a_reading_older_than_the_last_is_rejected() -> None:
    feed = Feed()
    feed.read("10000", at=T0 + timedelta(seconds=10))
    evaluation = feed.read("5000", at=T0 + timedelta(seconds=5))
    assert evaluation.status == "rejected" and "older than the last" in (evaluation.reason or "")
    assert feed.account.breaker_state is BreakerState.NORMAL


def test_rejection_accepts_zero_equity_with_nothing_open() -> None:
    reading = Reading(Decimal(0), Decimal(0), Decimal(0), "t", T0)
    assert rejection(reading, last_at=None, positions_open=False) is None


# -- the glitch guard ---------------------------------------------------------------------------


@pytest.mark.parametrize("glitch", ["5000", "0.01", "25000"])
def test_a_single_glitch_contradicted_by_the_next_reading_never_trips(glitch: str) -> None:
    feed = Feed()
    feed.read("10000")
    first = feed.read(glitch)
    assert first.needs_confirmation and first.transition is Transition.NONE
    back = feed.read("10000")
    assert back.unconfirmed and back.status == "accepted"
    assert feed.account.breaker_state is BreakerState.NORMAL and not feed.emergency_active
    assert feed.account.peak == Decimal(10000)  # an upward spike never raised the peak
    [unconfirmed] = feed.events(Account.ReadingUnconfirmed)
    assert unconfirmed.pending_equity == Decimal(glitch)  # type: ignore[attr-defined]
    assert feed.events(Account.HardBreach) == []


def test_a_real_crash_is_confirmed_by_the_next_reading_and_trips_with_the_confirmation() -> None:
    feed = Feed()
    feed.read("10000")
    first = feed.read("8500")
    assert first.needs_confirmation
    confirmed = feed.read("8490", step=timedelta(milliseconds=5))
    assert confirmed.transition is Transition.HARD_BREACH and feed.emergency_active
    [breach] = feed.events(Account.HardBreach)
    confirmation = breach.confirmation  # type: ignore[attr-defined]
    assert confirmation["pending_equity"] == "8500"
    assert confirmation["confirmed_by_equity"] == "8490"
    assert breach.causation_id == confirmed.reading_event_id  # type: ignore[attr-defined]


def test_a_gradual_fall_trips_without_waiting_for_confirmation() -> None:
    feed = Feed()
    results = [feed.read(str(e)) for e in (10000, 9800, 9600, 9400, 9200, 9000, 8990)]
    assert [r.transition for r in results].count(Transition.SOFT_BREACH) == 1
    assert results[-2].transition is Transition.HARD_BREACH  # 9000: exactly -10 %
    assert not any(r.needs_confirmation for r in results)


def test_an_inflated_first_reading_never_becomes_the_peak() -> None:
    feed = Feed(confirm_first=False)
    first = feed.read("100000")  # x10: a glitch before anything was accepted
    assert first.needs_confirmation and feed.account.peak == 0
    results = [feed.read("10000") for _ in range(3)]
    assert results[0].unconfirmed and results[0].needs_confirmation
    assert [r.status for r in results] == ["pending", "accepted", "accepted"]
    assert all(r.transition is Transition.NONE for r in results)
    assert feed.account.peak == Decimal(10000) and feed.account.drawdown == 0
    assert feed.account.breaker_state is BreakerState.NORMAL and not feed.emergency_active
    [unconfirmed] = feed.events(Account.ReadingUnconfirmed)
    assert unconfirmed.pending_equity == Decimal(100000)  # type: ignore[attr-defined]
    assert feed.events(Account.HardBreach) == feed.events(Account.SoftBreach) == []


def test_a_first_reading_is_accepted_once_the_next_one_confirms_it() -> None:
    feed = Feed(confirm_first=False)
    assert feed.read("10000").needs_confirmation
    confirmed = feed.read("9990")
    assert confirmed.status == "accepted" and feed.account.peak == Decimal(9990)


def test_a_second_jump_replaces_a_contradicted_pending_reading() -> None:
    feed = Feed()
    feed.read("10000")
    feed.read("5000")
    second = feed.read("8000")  # contradicts 5000, and is itself a jump from 10000
    assert second.unconfirmed and second.needs_confirmation
    assert feed.read("8000").transition is Transition.HARD_BREACH


# -- soft breach, recovery, hard breach ---------------------------------------------------------


def test_a_soft_breach_stops_entries_and_recovery_past_the_hysteresis_gives_them_back() -> None:
    feed = Feed()
    feed.read("10000")
    feed.read("9750")
    soft = feed.read("9490")
    assert soft.transition is Transition.SOFT_BREACH and not feed.entries_allowed
    assert feed.read("9560").transition is Transition.NONE  # -4.4 %: inside the hysteresis
    recovered = feed.read("9610")  # -3.9 %: above -5 % + 1 %
    assert recovered.transition is Transition.RECOVERED and recovered.reallows_entries
    assert feed.entries_allowed and feed.account.breaker_state is BreakerState.NORMAL


def test_recovery_does_not_give_back_entries_someone_else_stopped() -> None:
    feed = Feed(entries_allowed=False)  # an operator had stopped them
    feed.read("10000")
    feed.read("9750")
    soft = feed.read("9490")
    assert soft.transition is Transition.SOFT_BREACH
    [event] = feed.events(Account.SoftBreach)
    assert event.stops_entries is False  # type: ignore[attr-defined]
    recovered = feed.read("9700")  # -3 %: above -5 % + 1 %
    assert recovered.transition is Transition.RECOVERED and not recovered.reallows_entries
    assert not feed.entries_allowed


def test_a_hard_breach_holds_until_an_operator_resets_the_peak() -> None:
    feed = Feed()
    for equity in ("10000", "9800", "9600", "9400", "9200", "9000"):
        feed.read(equity)
    assert feed.account.breaker_state is BreakerState.HARD_BREACH
    for equity in ("9100", "9300", "9500", "9700"):
        assert feed.read(equity).transition is Transition.NONE
    assert feed.account.breaker_state is BreakerState.HARD_BREACH
    feed.account.reset_peak(actor="alice", reason="post-incident review done", timestamp=feed.at)
    assert feed.account.breaker_state is BreakerState.NORMAL
    assert feed.account.peak == Decimal(9700) and feed.account.drawdown == 0


def test_a_hard_breach_trips_again_if_the_latch_is_released_while_still_past_the_threshold() -> (
    None
):
    feed = Feed()
    for equity in ("10000", "9800", "9600", "9400", "9200", "9000"):
        feed.read(equity)
    assert feed.emergency_active
    feed.emergency_active = False  # an operator reset the latch but not the peak
    assert feed.read("8950").transition is Transition.HARD_BREACH


def test_an_operator_activation_already_on_is_not_a_reason_to_skip_the_breach_record() -> None:
    state = BreakerState.NORMAL
    assert (
        transition(state, Decimal("-0.2"), LIMITS, emergency_active=True) is Transition.HARD_BREACH
    )


def test_the_daily_reset_moves_the_peak_but_never_ends_a_hard_breach() -> None:
    feed = Feed(daily_reset=True)
    for equity in ("10000", "9800", "9600", "9400", "9200", "9000"):
        feed.read(equity)
    feed.read("9000", step=timedelta(days=1))
    [reset] = feed.events(Account.PeakReset)
    assert reset.new_peak == Decimal(9000)  # type: ignore[attr-defined]
    assert feed.account.breaker_state is BreakerState.HARD_BREACH


def test_resetting_the_peak_before_any_reading_is_refused() -> None:
    account = Account.open(account="test", timestamp=T0)
    with pytest.raises(InvalidCommand, match="no equity reading"):
        account.reset_peak(actor="alice", reason="x", timestamp=T0)


@pytest.mark.parametrize(("soft", "hard"), [("-0.10", "-0.05"), ("0.05", "-0.10"), ("-0.05", "-1")])
def test_thresholds_out_of_order_are_refused(soft: str, hard: str) -> None:
    with pytest.raises(InvalidCommand, match="thresholds"):
        Thresholds(soft=Decimal(soft), hard=Decimal(hard))


# -- ordering without the local clock ------------------------------------------------------------


def record(
    account: Account,
    equity: str,
    *,
    local_at: datetime,
    venue_at: datetime | None = None,
    feed: str = "f1",
    sequence: int,
) -> Evaluation:
    """One reading as the breaker records it: dated by the venue when ``venue_at`` is given,
    else by the local clock, and numbered by its feed."""
    value = Decimal(equity)
    evaluation = account.record_reading(
        Reading(
            value,
            value,
            Decimal(0),
            "test",
            venue_at or local_at,
            venue_clock=venue_at is not None,
            feed=feed,
            sequence=sequence,
        ),
        thresholds=LIMITS,
        positions_open=True,
        emergency_active=False,
        entries_allowed=True,
        breaker_stopped_entries=False,
        timestamp=local_at,
        correlation_id=uuid4(),
    )
    return evaluation


def started(local_at: datetime, **dated: datetime) -> Account:
    account = Account.open(account="test", timestamp=T0)
    record(account, "10000", local_at=local_at, sequence=1, **dated)
    record(account, "10000", local_at=local_at, sequence=2, **dated)
    assert account.equity == Decimal(10000)
    account.collect_events()
    return account


def test_a_new_feed_whose_clock_is_minutes_behind_is_judged_and_the_step_recorded() -> None:
    account = started(T0)
    behind = T0 - timedelta(minutes=2) + timedelta(seconds=1)
    evaluation = record(account, "9990", local_at=behind, feed="f2", sequence=1)
    assert evaluation.status == "accepted" and evaluation.clock_step is not None
    crash = [
        record(account, "8500", local_at=behind + timedelta(seconds=1), feed="f2", sequence=2),
        record(account, "8490", local_at=behind + timedelta(seconds=1), feed="f2", sequence=3),
    ]
    assert crash[-1].transition is Transition.HARD_BREACH
    events = account.collect_events()
    [step] = [e for e in events if isinstance(e, Account.ClockStepDetected)]
    assert "ran 119.000 s backwards" in step.detail
    assert not [e for e in events if isinstance(e, Account.EquityReadingRejected)]


def test_a_venue_dated_reading_is_judged_whatever_the_local_clock_says() -> None:
    account = started(T0, venue_at=T0)
    ahead = T0 + timedelta(minutes=2)
    evaluation = record(
        account, "9990", local_at=ahead, venue_at=T0 + timedelta(seconds=1), sequence=3
    )
    assert evaluation.status == "accepted"
    assert evaluation.clock_step is not None and "ahead of the venue's clock" in (
        evaluation.clock_step
    )


def test_within_a_feed_the_sequence_orders_readings_not_the_clock() -> None:
    account = started(T0)
    later_clock = T0 + timedelta(minutes=5)
    stale = record(account, "5000", local_at=later_clock, sequence=2)
    assert stale.status == "rejected" and "out of order" in (stale.reason or "")
    assert account.equity == Decimal(10000)


def test_a_reading_the_venue_dated_before_the_last_one_is_rejected() -> None:
    account = started(T0, venue_at=T0)
    old = record(
        account, "5000", local_at=T0, venue_at=T0 - timedelta(seconds=1), feed="f2", sequence=1
    )
    assert old.status == "rejected" and "by the venue's clock" in (old.reason or "")


def test_a_small_drift_between_the_clocks_is_not_a_step() -> None:
    account = started(T0, venue_at=T0)
    drift = record(
        account,
        "9990",
        local_at=T0 + timedelta(seconds=3),
        venue_at=T0 + timedelta(seconds=1),
        sequence=3,
    )
    assert drift.status == "accepted" and drift.clock_step is None
