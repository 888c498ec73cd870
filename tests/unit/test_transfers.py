"""Transfers are not losses (issue 15): the Account moves its peak with each cash transfer,
once per venue id, so the drawdown is measured on transfer-adjusted equity."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from uuid import uuid4

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.account import Account
from domain.drawdown import BreakerState, Transition
from domain.errors import InvalidCommand
from domain.venue import CashTransfer, TransferKind
from tests.unit.test_drawdown import Feed


def transfer(
    feed: Feed,
    kind: TransferKind,
    amount: str,
    venue_id: str = "t-1",
    *,
    at: datetime | None = None,
) -> bool:
    """Record a transfer on the feed's account, as the breaker does before a reading (by
    default the transfer is half a second after the last reading)."""
    at = at or feed.at + timedelta(milliseconds=500)
    recorded = feed.account.record_transfer(
        CashTransfer(venue_id, kind, Decimal(amount), "USDT", at),
        timestamp=at,
        correlation_id=uuid4(),
    )
    feed.log.extend(feed.account.collect_events())
    return recorded


def settled(equity: str = "10000") -> Feed:
    """An account whose peak is ``equity`` (read twice: a first reading may need confirming)."""
    feed = Feed()
    feed.read(equity)
    feed.read(equity)
    assert feed.account.peak == Decimal(equity)
    return feed


def test_a_fifteen_percent_withdrawal_lowers_the_peak_and_the_wallet_after_it_is_no_loss() -> None:
    feed = settled()
    assert transfer(feed, "withdrawal", "1500")
    assert (feed.account.peak, feed.account.equity) == (Decimal(8500), Decimal(8500))
    after = feed.read("8500")
    # Not held as a 15 % jump either: the reference equity moved with the cash.
    assert after.status == "accepted" and after.transition is Transition.NONE
    assert after.drawdown == 0
    assert feed.account.breaker_state is BreakerState.NORMAL
    [recorded] = feed.events(Account.TransferRecorded)
    assert isinstance(recorded, Account.TransferRecorded)
    assert (recorded.kind, recorded.amount, recorded.venue_id) == ("withdrawal", 1500, "t-1")
    assert recorded.peak == Decimal(8500)


def test_a_deposit_cannot_hide_a_loss_made_before_it_and_a_loss_after_it_trips_hard() -> None:
    feed = settled()
    assert feed.read("9200").needs_confirmation  # -8 %: a jump, held ...
    assert feed.read("9200").transition is Transition.SOFT_BREACH  # ... and confirmed
    assert transfer(feed, "deposit", "2000")
    assert feed.account.peak == Decimal(12000)  # not 11,200: the 800 lost still counts
    assert feed.read("11200").status == "accepted"
    # A fall of 800 more: 7 % of the inflated 11,200 (no hard breach by the old rule), but
    # 1,600 lost of the 12,000 at stake: -13.3 %.
    assert feed.read("10400").needs_confirmation
    breach = feed.read("10400")
    assert breach.transition is Transition.HARD_BREACH
    assert breach.drawdown is not None and breach.drawdown < Decimal("-0.13")


def test_a_transfer_is_recorded_once_whatever_number_of_times_the_venue_reports_it() -> None:
    feed = settled()
    assert transfer(feed, "withdrawal", "1000", venue_id="w-7")
    assert not transfer(feed, "withdrawal", "1000", venue_id="w-7")
    assert len(feed.events(Account.TransferRecorded)) == 1
    assert feed.account.peak == Decimal(9000)
    assert feed.account.net_transfers == Decimal(-1000)
    assert list(feed.account.transfer_ids) == ["w-7"]


def test_a_transfer_found_while_a_jump_is_pending_drops_the_reading_that_may_include_it() -> None:
    feed = settled()
    assert feed.read("8500").needs_confirmation  # the wallet moved before the ledger showed it
    assert transfer(feed, "withdrawal", "1500")
    assert feed.account.pending is None
    [recorded] = feed.events(Account.TransferRecorded)
    assert isinstance(recorded, Account.TransferRecorded) and recorded.discarded_pending
    after = feed.read("8500")  # the re-read, judged against the moved reference
    assert after.status == "accepted" and after.transition is Transition.NONE
    assert feed.account.drawdown == 0


def test_a_transfer_before_the_first_reading_is_left_to_the_first_reading() -> None:
    feed = Feed()
    assert transfer(feed, "deposit", "10000")
    assert feed.account.peak == 0 and feed.account.equity is None
    feed.read("10000")
    feed.read("10000")
    assert feed.account.peak == Decimal(10000)


def test_a_transfer_reported_after_the_readings_that_show_it_is_not_counted_twice() -> None:
    feed = settled()
    deposited_at = feed.at + timedelta(milliseconds=500)
    feed.read("10200")  # a 2 % deposit: no jump, and the new peak
    withdrawn_at = feed.at + timedelta(milliseconds=500)
    feed.read("10100")  # a 100 withdrawal: a -1 % dip
    # The ledger trails the wallet: both are reported only now.
    assert transfer(feed, "deposit", "200", venue_id="d", at=deposited_at)
    assert feed.account.peak == Decimal(10200)  # set by a reading that shows the deposit
    assert transfer(feed, "withdrawal", "100", venue_id="w", at=withdrawn_at)
    # The peak predates the withdrawal: it moves; the last reading already shows it.
    assert (feed.account.peak, feed.account.equity) == (Decimal(10100), Decimal(10100))
    assert feed.read("10100").drawdown == 0


@pytest.mark.parametrize(
    ("kind", "amount", "venue_id"),
    [
        ("withdrawal", "0", "t"),
        ("withdrawal", "-5", "t"),
        ("deposit", "NaN", "t"),
        ("gift", "5", "t"),
        ("deposit", "5", " "),
    ],
)
def test_a_transfer_that_is_not_one_is_refused_and_nothing_is_recorded(
    kind: str, amount: str, venue_id: str
) -> None:
    feed = settled()
    version = feed.account.version
    with pytest.raises(InvalidCommand):
        transfer(feed, kind, amount, venue_id=venue_id)  # type: ignore[arg-type]
    assert feed.account.version == version and feed.account.peak == Decimal(10000)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["deposit", "withdrawal", "transfer_in", "transfer_out"]),
            st.integers(min_value=1, max_value=60),  # percent of the current equity
        ),
        min_size=1,
        max_size=8,
    )
)
def test_transfers_of_any_size_with_no_trading_never_move_the_drawdown(
    moves: list[tuple[TransferKind, int]],
) -> None:
    feed = settled()
    equity = Decimal(10000)
    for n, (kind, percent) in enumerate(moves):
        amount = equity * percent / 100
        assert transfer(feed, kind, str(amount), venue_id=f"t-{n}")
        equity += amount if kind in ("deposit", "transfer_in") else -amount
        evaluation = feed.read(equity)
        assert evaluation.status == "accepted"
        assert evaluation.drawdown == 0 and evaluation.transition is Transition.NONE
    assert feed.account.breaker_state is BreakerState.NORMAL
