"""The Account aggregate: the equity readings of one venue account and its drawdown breaker.

Every reading is recorded as it arrives — accepted, pending confirmation, or rejected with
its reason — and judged in the same call by the rule in ``domain.drawdown``, so the peak,
the drawdown and the breaker's state are a fold over this aggregate's own events: a
restarted worker resumes exactly where the log stops. What a breach does to the policy and
the emergency latch is saved in the same transaction by ``app.processes.drawdown_breaker``.

Cash transfers are recorded here too (``TransferRecorded``, once per venue id), before the
reading that first shows them: they move the peak and the reference equity, so the drawdown
is measured on transfer-adjusted equity (``domain.drawdown``). A transfer the venue reports
late (its time is before the reading that set the peak, or the last accepted reading) is
already in that figure and does not move it again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, ClassVar
from uuid import UUID

from eventsourcing.domain import event

from domain.base import TradecoreAggregate, event_id, require_aware, require_text, trace_ids
from domain.drawdown import (
    BREAKER_ACTOR,
    ZERO,
    BreakerState,
    Reading,
    Thresholds,
    Transition,
    clock_step,
    drawdown,
    is_jump,
    next_peak,
    rejection,
    shifted,
    transition,
)
from domain.errors import InvalidCommand
from domain.ids import account_id
from domain.venue import INFLOWS, TRANSFER_KINDS, CashTransfer

# Drawdown is kept to this many places (a ratio of two exact figures has 28 digits).
PLACES = Decimal("1e-10")


@dataclass(frozen=True)
class Evaluation:
    """What one reading did."""

    status: str  # accepted | pending | rejected
    transition: Transition
    reason: str | None = None  # why rejected
    drawdown: Decimal | None = None
    reading_event_id: UUID | None = None
    breach_event_id: UUID | None = None  # the soft/hard breach or recovery event
    unconfirmed: bool = False  # a pending reading was contradicted and discarded
    clock_step: str | None = None  # the local clock stepped since the last reading (how)
    reallows_entries: bool = False  # a recovery that gives back what the soft breach stopped

    @property
    def needs_confirmation(self) -> bool:
        return self.status == "pending"


class Account(TradecoreAggregate):
    """One per venue account, id :func:`domain.ids.account_id`."""

    # Version 2 (as held in snapshots) orders readings by feed sequence and venue clock.
    class_version = 2

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        # Nothing known of older readings' feeds or clocks: nothing is ordered against them.
        state.update(
            feed=None,
            feed_sequence=None,
            last_venue_at=None,
            last_local_at=None,
            last_accepted_local_at=None,
            clock_offset_s=None,
            rejected_since_accepted=0,
            last_rejection=None,
        )

    class Created(TradecoreAggregate.Created):
        account: str

    class EquityRecorded(TradecoreAggregate.Event):
        operator_name: ClassVar[str] = "account.equity.updated"
        equity: Decimal
        wallet: Decimal
        unrealized: Decimal
        source: str
        venue_at: datetime
        status: str  # accepted | pending
        peak: Decimal  # after this reading (unchanged while pending)
        drawdown: Decimal
        confirms: int | None  # the version of the pending reading this one confirms
        correlation_id: UUID
        # Version 2: venue_at is the venue's own time (else the local clock's); the feed that
        # read it and its sequence number within that feed.
        class_version = 2
        venue_clock: bool
        feed: str | None
        sequence: int | None

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            # Unknown for older readings: not ordered against by venue time or sequence.
            state.update(venue_clock=False, feed=None, sequence=None)

    class EquityReadingRejected(TradecoreAggregate.Event):
        operator_name: ClassVar[str] = "account.equity.rejected"
        reason: str
        # As text: a rejected value may be NaN or anything else a venue sent.
        equity: str
        wallet: str
        unrealized: str
        source: str
        venue_at: datetime
        correlation_id: UUID

    class ClockStepDetected(TradecoreAggregate.Event):
        """The local clock moved apart from the venue's (or ran backwards) between readings;
        the reading was judged all the same: its order comes from the venue and the feed."""

        operator_name: ClassVar[str] = "account.clock.step_detected"
        detail: str
        local_at: datetime
        previous_local_at: datetime | None
        venue_at: datetime
        venue_clock: bool
        feed: str | None
        correlation_id: UUID

    class ReadingUnconfirmed(TradecoreAggregate.Event):
        operator_name: ClassVar[str] = "account.equity.unconfirmed"
        pending_version: int
        pending_equity: Decimal
        contradicted_by: Decimal
        correlation_id: UUID

    class SoftBreach(TradecoreAggregate.Event):
        operator_name: ClassVar[str] = "risk.drawdown.soft_breach"
        equity: Decimal
        peak: Decimal
        drawdown: Decimal
        threshold: Decimal
        stops_entries: bool  # new entries were allowed, and this breach stops them
        correlation_id: UUID
        causation_id: UUID

    class HardBreach(TradecoreAggregate.Event):
        operator_name: ClassVar[str] = "risk.drawdown.hard_breach"
        equity: Decimal
        peak: Decimal
        drawdown: Decimal
        threshold: Decimal
        # {"pending_version", "pending_equity", "pending_at", "confirmed_by_equity",
        #  "confirmed_at"} when the breach waited for a confirming re-read; else None.
        confirmation: dict[str, Any] | None
        correlation_id: UUID
        causation_id: UUID

    class Recovered(TradecoreAggregate.Event):
        operator_name: ClassVar[str] = "risk.drawdown.recovered"
        equity: Decimal
        peak: Decimal
        drawdown: Decimal
        reallows_entries: bool
        correlation_id: UUID
        causation_id: UUID

    class PeakReset(TradecoreAggregate.Event):
        operator_name: ClassVar[str] = "risk.drawdown.peak_reset"
        old_peak: Decimal
        new_peak: Decimal
        actor: str
        reason: str
        correlation_id: UUID | None

    class TransferRecorded(TradecoreAggregate.Event):
        operator_name: ClassVar[str] = "account.transfer.recorded"
        amount: Decimal  # > 0, in the settlement currency
        kind: str  # deposit | withdrawal | transfer_in | transfer_out
        venue_id: str
        venue_at: datetime
        currency: str
        # The breaker's figures after the transfer (equity None before the first reading,
        # when the transfer is already in whatever the first reading will show).
        equity: Decimal | None
        peak: Decimal
        drawdown: Decimal
        discarded_pending: bool  # a reading held for confirmation may have shown it: dropped
        correlation_id: UUID

    # Class-level defaults: an Account restored from a snapshot taken before transfers were
    # recorded has none of these in its state.
    transfer_ids: tuple[str, ...] | list[str] = ()
    net_transfers: Decimal = ZERO  # signed sum of every recorded transfer
    last_transfer_at: datetime | None = None  # venue time of the latest recorded transfer
    # Venue time of the reading that set the peak (None: unknown): a transfer older than it
    # was already in that reading, so it must not move the peak again.
    peak_at: datetime | None = None

    @staticmethod
    def create_id(*_: Any, account: str, **__: Any) -> UUID:
        return account_id(account)

    @classmethod
    def open(cls, *, account: str, timestamp: datetime) -> Account:
        name = require_text(account, "account")
        return cls._create(cls.Created, account=name, timestamp=require_aware(timestamp))

    @event(Created)
    def __init__(self, *, account: str) -> None:
        self.account = account
        self.equity: Decimal | None = None  # the last accepted reading
        self.peak = ZERO
        self.drawdown = ZERO
        self.state = BreakerState.NORMAL.value  # a string: snapshots hold plain values
        self.last_reading_at: datetime | None = None  # venue time of the last usable reading
        self.last_accepted_at: datetime | None = None
        self.peak_reset_at: datetime | None = None  # when the current high-water mark began
        self.soft_stopped_entries = False
        self.pending: dict[str, Any] | None = None  # {"version", "equity", "venue_at"}
        self.rejected_count = 0
        self.rejected_since_accepted = 0  # readings rejected since the last accepted one
        self.last_rejection: str | None = None
        # Ordering (never by the local clock): the last usable reading's feed and sequence,
        # and the venue's time of the last reading the venue dated.
        self.feed: str | None = None
        self.feed_sequence: int | None = None
        self.last_venue_at: datetime | None = None
        # The local clock, only to date things and to notice when it steps.
        self.last_local_at: datetime | None = None
        self.last_accepted_local_at: datetime | None = None
        self.clock_offset_s: float | None = None  # local minus venue time, last dated reading

    @property
    def breaker_state(self) -> BreakerState:
        return BreakerState(self.state)

    # -- readings ---------------------------------------------------------------------------

    def record_reading(
        self,
        reading: Reading,
        *,
        thresholds: Thresholds,
        positions_open: bool,
        emergency_active: bool,
        entries_allowed: bool,
        breaker_stopped_entries: bool,
        timestamp: datetime,
        correlation_id: UUID,
        daily_reset: bool = False,
    ) -> Evaluation:
        """Record ``reading`` and what it does to the breaker.

        ``entries_allowed``: the policy allows new entries now (a soft breach stops them).
        ``breaker_stopped_entries``: the policy's entries were last stopped by this breaker,
        so a recovery may re-allow them (anyone else's stop stands).
        """
        trace_ids(correlation_id, None)
        require_aware(timestamp)
        last_feed = (
            (self.feed, self.feed_sequence)
            if self.feed is not None and self.feed_sequence is not None
            else None
        )
        reason = rejection(
            reading,
            last_at=self.last_venue_at,
            positions_open=positions_open,
            last_feed=last_feed,
        )
        if reason is not None:
            self._rejected(
                reason=reason,
                equity=str(reading.equity),
                wallet=str(reading.wallet),
                unrealized=str(reading.unrealized),
                source=reading.source,
                venue_at=reading.venue_at,
                correlation_id=correlation_id,
                timestamp=timestamp,
            )
            return Evaluation("rejected", Transition.NONE, reason=reason)
        step = clock_step(
            local_at=timestamp,
            offset=timestamp - reading.venue_at if reading.venue_clock else None,
            last_local_at=self.last_local_at,
            last_offset=(
                None if self.clock_offset_s is None else timedelta(seconds=self.clock_offset_s)
            ),
        )
        if step is not None:
            self._clock_step(
                detail=step,
                local_at=timestamp,
                previous_local_at=self.last_local_at,
                venue_at=reading.venue_at,
                venue_clock=reading.venue_clock,
                feed=reading.feed,
                correlation_id=correlation_id,
                timestamp=timestamp,
            )
        equity = reading.equity
        if daily_reset and self._new_day(timestamp):
            self._peak_reset(
                old_peak=self.peak,
                new_peak=self.equity if self.equity is not None else equity,
                actor=BREAKER_ACTOR,
                reason="daily reset of the high-water mark",
                correlation_id=correlation_id,
                timestamp=timestamp,
            )
        unconfirmed = False
        confirms: dict[str, Any] | None = None
        if self.pending is not None:
            pending_equity: Decimal = self.pending["equity"]
            if is_jump(pending_equity, equity, thresholds.glitch_bound):
                unconfirmed = True
                self._unconfirmed(
                    pending_version=self.pending["version"],
                    pending_equity=pending_equity,
                    contradicted_by=equity,
                    correlation_id=correlation_id,
                    timestamp=timestamp,
                )
            else:
                confirms = self.pending
        # The first reading is a jump from nothing: it is confirmed like any other, so one
        # inflated first figure can never become the peak.
        if confirms is None and (
            self.equity is None or is_jump(self.equity, equity, thresholds.glitch_bound)
        ):
            self._recorded(
                **_figures(reading, equity),
                status="pending",
                peak=self.peak,
                drawdown=self.drawdown,
                confirms=None,
                correlation_id=correlation_id,
                timestamp=timestamp,
            )
            return Evaluation(
                "pending",
                Transition.NONE,
                drawdown=drawdown(equity, self.peak),
                reading_event_id=event_id(self.id, self.version),
                unconfirmed=unconfirmed,
                clock_step=step,
            )
        peak = next_peak(self.peak, equity)
        dd = drawdown(equity, peak).quantize(PLACES)
        self._recorded(
            **_figures(reading, equity),
            status="accepted",
            peak=peak,
            drawdown=dd,
            confirms=None if confirms is None else confirms["version"],
            correlation_id=correlation_id,
            timestamp=timestamp,
        )
        reading_id = event_id(self.id, self.version)
        change = transition(self.breaker_state, dd, thresholds, emergency_active=emergency_active)
        common: dict[str, Any] = {
            "equity": equity,
            "peak": peak,
            "drawdown": dd,
            "correlation_id": correlation_id,
            "causation_id": reading_id,
            "timestamp": timestamp,
        }
        reallow = False
        if change is Transition.HARD_BREACH:
            confirmation = None
            if confirms is not None:
                confirmation = {
                    "pending_version": confirms["version"],
                    "pending_equity": str(confirms["equity"]),
                    "pending_at": confirms["venue_at"].isoformat(),
                    "confirmed_by_equity": str(equity),
                    "confirmed_at": reading.venue_at.isoformat(),
                }
            self._hard_breach(threshold=thresholds.hard, confirmation=confirmation, **common)
        elif change is Transition.SOFT_BREACH:
            self._soft_breach(threshold=thresholds.soft, stops_entries=entries_allowed, **common)
        elif change is Transition.RECOVERED:
            reallow = self.soft_stopped_entries and breaker_stopped_entries and not entries_allowed
            self._recovered(reallows_entries=reallow, **common)
        breach_id = None if change is Transition.NONE else event_id(self.id, self.version)
        return Evaluation(
            "accepted",
            change,
            drawdown=dd,
            reading_event_id=reading_id,
            breach_event_id=breach_id,
            unconfirmed=unconfirmed,
            reallows_entries=reallow,
            clock_step=step,
        )

    # -- transfers --------------------------------------------------------------------------

    def record_transfer(
        self, transfer: CashTransfer, *, timestamp: datetime, correlation_id: UUID
    ) -> bool:
        """Record ``transfer`` unless its venue id is already recorded; returns whether it was.

        The peak and the last accepted equity move by its signed amount (``domain.drawdown``),
        each unless the reading that set it is later than the transfer (it already shows it).
        A reading pending confirmation is dropped: it may or may not include the transfer,
        so it can be judged against neither reference (the next reading is judged afresh).
        Raises InvalidCommand for a transfer that is not one (amount not a positive finite
        number, unknown kind, empty id, naive time).
        """
        trace_ids(correlation_id, None)
        require_aware(timestamp)
        venue_id = require_text(transfer.venue_id, "transfer venue id")
        if venue_id in self.transfer_ids:
            return False
        amount = transfer.amount
        if not isinstance(amount, Decimal) or not amount.is_finite() or amount <= 0:
            raise InvalidCommand(f"a transfer amount must be a positive number, got {amount}")
        if transfer.kind not in TRANSFER_KINDS:
            raise InvalidCommand(f"unknown transfer kind {transfer.kind!r}")
        equity, peak = self.equity, self.peak
        at = require_aware(transfer.at)
        # A venue's ledger can trail its wallet: a transfer may be reported after readings
        # that already show it. It moves only the figures set by readings older than it.
        # Before the first reading nothing moves: the first reading will show the transfer.
        if equity is not None:
            if self.last_accepted_at is None or at > self.last_accepted_at:
                equity = shifted(equity, transfer.net)
            if self.peak_at is None or at > self.peak_at:
                peak = shifted(peak, transfer.net)
        self._transfer_recorded(
            amount=amount,
            kind=transfer.kind,
            venue_id=venue_id,
            venue_at=at,
            currency=require_text(transfer.currency, "transfer currency"),
            equity=equity,
            peak=peak,
            drawdown=self.drawdown if equity is None else drawdown(equity, peak).quantize(PLACES),
            discarded_pending=self.pending is not None,
            correlation_id=correlation_id,
            timestamp=timestamp,
        )
        return True

    def reset_peak(
        self,
        *,
        actor: str,
        reason: str,
        timestamp: datetime,
        correlation_id: UUID | None = None,
    ) -> None:
        """An operator starts a new high-water mark at the last accepted equity; the breaker
        returns to normal. The only way out of a hard breach."""
        actor, reason = require_text(actor, "actor"), require_text(reason, "reason")
        trace_ids(correlation_id, None)
        if self.equity is None:
            raise InvalidCommand("no equity reading has been accepted yet: nothing to reset to")
        self._peak_reset(
            old_peak=self.peak,
            new_peak=self.equity,
            actor=actor,
            reason=reason,
            correlation_id=correlation_id,
            timestamp=require_aware(timestamp),
        )

    def blind_reason(self, now: datetime, bound: timedelta) -> str | None:
        """Why the breaker cannot see the account now, or None when it can: it sees only
        while its last accepted reading is at most ``bound`` old (by the local clock that
        recorded it, against ``now``) and no reading has been rejected since."""
        if self.equity is None or self.last_accepted_local_at is None:
            return "no equity reading has been accepted yet (is the worker running?)"
        if self.rejected_since_accepted:
            return (
                f"the last {self.rejected_since_accepted} equity reading(s) were rejected "
                f"({self.last_rejection})"
            )
        age = now - self.last_accepted_local_at
        if age > bound:
            return (
                f"the last accepted equity reading is {age.total_seconds():.1f} s old "
                f"(bound {bound.total_seconds():g} s; is the worker running?)"
            )
        return None

    def _new_day(self, at: datetime) -> bool:
        return self.peak_reset_at is not None and at.date() > self.peak_reset_at.date()

    # -- events -----------------------------------------------------------------------------

    @event(EquityRecorded)
    def _recorded(
        self,
        *,
        equity: Decimal,
        wallet: Decimal,
        unrealized: Decimal,
        source: str,
        venue_at: datetime,
        status: str,
        peak: Decimal,
        drawdown: Decimal,
        confirms: int | None,
        correlation_id: UUID,
        timestamp: datetime,
        venue_clock: bool = False,
        feed: str | None = None,
        sequence: int | None = None,
    ) -> None:
        self.last_reading_at = venue_at
        self.feed, self.feed_sequence = feed, sequence
        self.last_local_at = timestamp
        if venue_clock:
            self.last_venue_at = venue_at
            self.clock_offset_s = (timestamp - venue_at).total_seconds()
        else:
            self.clock_offset_s = None
        if status == "pending":
            # Applied before the version moves on: this event is version + 1.
            self.pending = {"version": self.version + 1, "equity": equity, "venue_at": venue_at}
            return
        self.pending = None
        if self.peak_at is None or peak > self.peak:
            self.peak_at = venue_at
        self.equity, self.peak, self.drawdown = equity, peak, drawdown
        self.last_accepted_at = venue_at
        self.last_accepted_local_at = timestamp
        self.rejected_since_accepted = 0
        if self.peak_reset_at is None:
            self.peak_reset_at = timestamp  # the first high-water mark starts here

    @event(EquityReadingRejected)
    def _rejected(
        self,
        *,
        reason: str,
        equity: str,
        wallet: str,
        unrealized: str,
        source: str,
        venue_at: datetime,
        correlation_id: UUID,
        timestamp: datetime,
    ) -> None:
        self.rejected_count += 1
        self.rejected_since_accepted += 1
        self.last_rejection = reason

    @event(ClockStepDetected)
    def _clock_step(
        self,
        *,
        detail: str,
        local_at: datetime,
        previous_local_at: datetime | None,
        venue_at: datetime,
        venue_clock: bool,
        feed: str | None,
        correlation_id: UUID,
        timestamp: datetime,
    ) -> None:
        pass  # a fact for the operator; the reading that follows carries the new offset

    @event(ReadingUnconfirmed)
    def _unconfirmed(
        self,
        *,
        pending_version: int,
        pending_equity: Decimal,
        contradicted_by: Decimal,
        correlation_id: UUID,
        timestamp: datetime,
    ) -> None:
        self.pending = None

    @event(SoftBreach)
    def _soft_breach(
        self,
        *,
        equity: Decimal,
        peak: Decimal,
        drawdown: Decimal,
        threshold: Decimal,
        stops_entries: bool,
        correlation_id: UUID,
        causation_id: UUID,
        timestamp: datetime,
    ) -> None:
        self.state = BreakerState.SOFT_BREACH.value
        self.soft_stopped_entries = stops_entries

    @event(HardBreach)
    def _hard_breach(
        self,
        *,
        equity: Decimal,
        peak: Decimal,
        drawdown: Decimal,
        threshold: Decimal,
        confirmation: dict[str, Any] | None,
        correlation_id: UUID,
        causation_id: UUID,
        timestamp: datetime,
    ) -> None:
        self.state = BreakerState.HARD_BREACH.value
        self.soft_stopped_entries = False

    @event(Recovered)
    def _recovered(
        self,
        *,
        equity: Decimal,
        peak: Decimal,
        drawdown: Decimal,
        reallows_entries: bool,
        correlation_id: UUID,
        causation_id: UUID,
        timestamp: datetime,
    ) -> None:
        self.state = BreakerState.NORMAL.value
        self.soft_stopped_entries = False

    @event(TransferRecorded)
    def _transfer_recorded(
        self,
        *,
        amount: Decimal,
        kind: str,
        venue_id: str,
        venue_at: datetime,
        currency: str,
        equity: Decimal | None,
        peak: Decimal,
        drawdown: Decimal,
        discarded_pending: bool,
        correlation_id: UUID,
        timestamp: datetime,
    ) -> None:
        self.transfer_ids = [*self.transfer_ids, venue_id]
        self.net_transfers = self.net_transfers + (amount if kind in INFLOWS else -amount)
        if self.last_transfer_at is None or venue_at > self.last_transfer_at:
            self.last_transfer_at = venue_at
        self.equity, self.peak, self.drawdown = equity, peak, drawdown
        self.pending = None

    @event(PeakReset)
    def _peak_reset(
        self,
        *,
        old_peak: Decimal,
        new_peak: Decimal,
        actor: str,
        reason: str,
        correlation_id: UUID | None,
        timestamp: datetime,
    ) -> None:
        self.peak = new_peak
        self.drawdown = ZERO if self.equity is None else drawdown(self.equity, new_peak)
        self.peak_reset_at = timestamp
        self.peak_at = self.last_accepted_at  # the new mark is the last accepted reading
        if actor != BREAKER_ACTOR:
            # An operator's reset ends any breach; the daily reset only moves the mark.
            self.state = BreakerState.NORMAL.value
            self.soft_stopped_entries = False
            self.pending = None


def _figures(reading: Reading, equity: Decimal) -> dict[str, Any]:
    return {
        "equity": equity,
        "wallet": reading.wallet,
        "unrealized": reading.unrealized,
        "source": reading.source,
        "venue_at": reading.venue_at,
        "venue_clock": reading.venue_clock,
        "feed": reading.feed,
        "sequence": reading.sequence,
    }
