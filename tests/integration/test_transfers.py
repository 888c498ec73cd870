"""Transfers are not losses (issue 15): the breaker records each cash transfer of the paper
venue's ledger before the reading that shows it, so a withdrawal never trips it and a
deposit never hides a loss."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select

from adapters.paper import tables as t
from adapters.paper.venue import PaperVenue
from app.bootstrap import Core
from app.processes.drawdown_breaker import DrawdownBreaker
from domain.account import Account
from domain.drawdown import BreakerState, Transition
from domain.errors import InvalidCommand
from domain.venue import CashTransfer, VenueUnavailable
from projections.tables import risk_view
from tests.integration.paper_drill import funded
from tests.integration.test_p0_07_drawdown_breaker import (
    account,
    emergency_active,
    long_book,
    move,
)

BTC, ETH = "BTC/USDT:USDT", "ETH/USDT:USDT"


@pytest.fixture
def venue(core: Core) -> PaperVenue:
    """10,000 deposited (booked in the venue's ledger), BTC at 50,000, ETH at 3,000."""
    return funded(core, {BTC: "50000", ETH: "3000"})


def breach_events(core: Core, breaker: DrawdownBreaker) -> list[Any]:
    return [
        e
        for e in core.store.events.get(account(breaker).id)
        if isinstance(e, Account.SoftBreach | Account.HardBreach)
    ]


def transfers_recorded(core: Core, breaker: DrawdownBreaker) -> list[Account.TransferRecorded]:
    return [
        e
        for e in core.store.events.get(account(breaker).id)
        if isinstance(e, Account.TransferRecorded)
    ]


def test_withdrawing_fifteen_percent_with_no_position_never_breaches(
    core: Core, venue: PaperVenue
) -> None:
    breaker = core.drawdown_breaker()
    breaker.poll()
    breaker.poll()
    assert account(breaker).peak == Decimal(10000)

    balance = venue.admin().withdraw(Decimal(1500))
    assert balance.wallet == Decimal(8500)
    assert breaker.record_transfers() == 1
    # The dashboards' risk view shows the moved peak from the transfer alone.
    core.runner.catch_up()
    with core.engine.connect() as conn:
        row = conn.execute(select(risk_view)).one()
    assert (row.peak, row.equity, row.drawdown, row.state) == (8500, 8500, 0, "normal")
    for _ in range(3):
        last = breaker.poll().last
        assert last is not None and last.status == "accepted"
        assert last.transition is Transition.NONE

    state = account(breaker)
    assert (state.peak, state.equity, state.drawdown) == (Decimal(8500), Decimal(8500), 0)
    assert state.breaker_state is BreakerState.NORMAL
    assert breach_events(core, breaker) == []
    assert not emergency_active(core)
    # The deposit the fixture made (before the first reading) and the withdrawal, each once.
    kinds = [(e.kind, e.amount) for e in transfers_recorded(core, breaker)]
    assert kinds == [("deposit", Decimal(10000)), ("withdrawal", Decimal(1500))]


def test_a_real_loss_right_after_a_deposit_breaches_hard(core: Core, venue: PaperVenue) -> None:
    long_book(venue)  # 8,000 of longs on 10,000
    breaker = core.drawdown_breaker()
    breaker.poll()
    breaker.poll()
    peak = account(breaker).peak
    move(venue, "0.90")  # -800: a soft breach
    assert breaker.poll().last is not None
    assert account(breaker).breaker_state is BreakerState.SOFT_BREACH
    venue.admin().deposit(Decimal(2000))
    breaker.poll()
    assert account(breaker).peak == peak + 2000  # the 800 lost are still lost
    assert not emergency_active(core)

    move(venue, "0.80")  # -800 more: 7 % of the equity after the deposit, 13 % of the peak
    last = breaker.poll().last
    assert last is not None and last.transition is Transition.HARD_BREACH
    state = account(breaker)
    assert state.breaker_state is BreakerState.HARD_BREACH
    assert state.drawdown < Decimal("-0.12")
    emergency = core.commands.load_emergency()
    assert emergency is not None and emergency.active and emergency.source == "drawdown"


class LateLedger:
    """The paper venue, except that its ledger shows each transfer one read late: the
    wallet has moved before the transfer appears (as a venue's ledger service can trail)."""

    def __init__(self, venue: PaperVenue) -> None:
        self._venue = venue
        self.name = "late-ledger"
        self._shown: set[str] = set()

    def fetch_transfers(self, since: datetime | None) -> list[CashTransfer]:
        found = self._venue.fetch_transfers(since)
        shown = [t for t in found if t.venue_id in self._shown]
        self._shown = {t.venue_id for t in found}
        return shown

    def __getattr__(self, name: str) -> Any:
        return getattr(self._venue, name)


def test_a_withdrawal_the_ledger_shows_late_is_held_as_a_jump_and_adjusted_by_the_re_read(
    core: Core, venue: PaperVenue
) -> None:
    late = LateLedger(venue)
    breaker = DrawdownBreaker(core.store, core.commands, late, core.clock)  # type: ignore[arg-type]
    for _ in range(3):
        breaker.poll()
    assert account(breaker).peak == Decimal(10000)

    venue.admin().withdraw(Decimal(1500))
    poll = breaker.poll()
    # The wallet shows the withdrawal first: a 15 % jump, held; the re-read reads the
    # ledger first, finds the transfer, and judges the wallet against the moved peak.
    assert [e.status for e in poll.evaluations] == ["pending", "accepted"]
    assert poll.evaluations[-1].drawdown == 0
    [withdrawal] = [e for e in transfers_recorded(core, breaker) if e.kind == "withdrawal"]
    assert withdrawal.discarded_pending
    assert account(breaker).breaker_state is BreakerState.NORMAL
    assert breach_events(core, breaker) == [] and not emergency_active(core)


def test_a_withdrawal_beyond_the_free_balance_is_refused_and_nothing_is_booked(
    core: Core, venue: PaperVenue
) -> None:
    long_book(venue)  # 8,000 of notional at leverage 10 holds 800 as margin
    admin = venue.admin()
    before = admin.fetch_balance()
    with pytest.raises(InvalidCommand, match="exceeds the free balance"):
        admin.withdraw(before.wallet)
    with pytest.raises(InvalidCommand, match="must be positive"):
        admin.withdraw(Decimal(0))
    assert admin.fetch_balance().wallet == before.wallet
    with core.engine.connect() as conn:
        withdrawals = conn.execute(
            select(func.count()).where(t.transfers.c.kind == "withdrawal")
        ).scalar_one()
    assert withdrawals == 0
    # What is free can leave.
    assert admin.withdraw(Decimal(1000)).wallet == before.wallet - 1000


class NoLedger(LateLedger):
    """The paper venue with a transfer ledger that cannot be read."""

    def fetch_transfers(self, since: datetime | None) -> list[CashTransfer]:
        raise VenueUnavailable("ledger endpoint down")


def test_a_ledger_that_cannot_be_read_never_blinds_the_breaker(
    core: Core, venue: PaperVenue
) -> None:
    breaker = DrawdownBreaker(core.store, core.commands, NoLedger(venue), core.clock)  # type: ignore[arg-type]
    polls = [breaker.poll() for _ in range(3)]
    assert all(p.error is None and p.last is not None for p in polls)
    assert account(breaker).equity == Decimal(10000)
    assert transfers_recorded(core, breaker) == []


class SlowLedger(LateLedger):
    """The paper venue with a costly ledger, as a ccxt venue's: read at most hourly."""

    transfer_interval = 3600.0

    def __init__(self, venue: PaperVenue) -> None:
        super().__init__(venue)
        self.ledger_reads = 0

    def fetch_transfers(self, since: datetime | None) -> list[CashTransfer]:
        self.ledger_reads += 1
        return self._venue.fetch_transfers(since)


def test_a_costly_ledger_is_read_at_its_interval_and_always_before_a_re_read(
    core: Core, venue: PaperVenue
) -> None:
    slow = SlowLedger(venue)
    breaker = DrawdownBreaker(core.store, core.commands, slow, core.clock)  # type: ignore[arg-type]
    for _ in range(3):
        breaker.poll()
    # The first reading is a jump from nothing: held, and its re-read reads the ledger again.
    assert slow.ledger_reads == 2
    venue.admin().withdraw(Decimal(1500))
    poll = breaker.poll()  # the wallet moved; the ledger is not due: a jump, held ...
    assert [e.status for e in poll.evaluations] == ["pending", "accepted"]
    assert slow.ledger_reads == 3  # ... and the re-read read it first
    assert account(breaker).peak == Decimal(8500)
    assert not emergency_active(core)
