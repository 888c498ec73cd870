"""The equity feed and the drawdown circuit breaker (P0-07).

The worker calls :meth:`DrawdownBreaker.poll` every ``equity_interval`` seconds and
whenever the paper venue announces a mark move. Each poll reads the venue's equity (wallet +
unrealized PnL) and records it on the Account aggregate, which judges it at once
(``domain.drawdown``); what the judgement does to the policy and the emergency latch is
saved in the same ``store.save`` — one transaction:

- soft breach: ``risk.drawdown.soft_breach`` + the policy stops new entries;
- hard breach: ``risk.drawdown.hard_breach`` + ``EmergencyActivated`` (source ``drawdown``)
  + the policy's emergency mode, which the flattener then acts on;
- recovery: ``risk.drawdown.recovered`` + the policy re-allows entries, only if this
  breaker's soft breach is what stopped them.

A fetch that fails is a missing reading: nothing is recorded and nothing is judged. A
reading that jumps further than the glitch bound is held as pending and the venue is read
again at once; the second reading confirms it or discards it (``domain.drawdown``).

Each breaker is a feed of its own: a feed id and a counter order its readings, and the
venue's own time orders readings across feeds when the venue dates its figures. The local
clock (the injected ``clock``) never decides whether a reading is used, so a worker whose
clock is minutes behind or ahead is neither blinded nor tripped by it; a step of the clock
is recorded (``ClockStepDetected``).

Transfers are read before the balance they affect: each reading (and each re-read) first
asks the venue's transfer ledger (at most every ``venue.transfer_interval`` seconds, and
always before a re-read) and records each new transfer on the account, which moves the peak
by it. A wallet that moved by a transfer the ledger did not show yet reads as a jump and is
held; the re-read then finds the transfer first. A ledger that cannot be read delays only
the adjustment: the reading goes on (the breaker would rather trip on a withdrawal than go
blind).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from uuid import UUID, uuid4

from adapters.errors import StoreUnavailable
from adapters.eventstore import TradecoreEventStore
from adapters.repository import WRITER, Conflict, Repository, RetryPolicy
from adapters.venues import equity_unsupported
from app.commands.safety import SafetyCommands, latch_emergency
from domain.account import Account, Evaluation
from domain.drawdown import (
    BREAKER_ACTOR,
    DEFAULT_GLITCH_BOUND,
    DEFAULT_HYSTERESIS,
    Reading,
    Thresholds,
    Transition,
)
from domain.emergency import Emergency
from domain.errors import InvalidCommand
from domain.ids import account_id
from domain.policy import Policy
from domain.venue import CashTransfer, ExchangePort, VenueError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BreakerSettings:
    account: str = "main"
    hysteresis: Decimal = DEFAULT_HYSTERESIS
    glitch_bound: Decimal = DEFAULT_GLITCH_BOUND
    daily_reset: bool = False


@dataclass(frozen=True)
class Poll:
    """One poll: the evaluations of its reading and, if it was pending, of the re-read."""

    evaluations: list[Evaluation]
    error: str | None = None  # the fetch failed: no reading

    @property
    def last(self) -> Evaluation | None:
        return self.evaluations[-1] if self.evaluations else None


class DrawdownBreaker:
    def __init__(
        self,
        store: TradecoreEventStore,
        commands: SafetyCommands,
        venue: ExchangePort,
        clock: Callable[[], datetime],
        settings: BreakerSettings = BreakerSettings(),
        *,
        retry: RetryPolicy = WRITER,
    ) -> None:
        self.store = store
        self.repository = Repository(store)
        self.commands = commands
        self.venue = venue
        self.clock = clock
        self.settings = settings
        self.retry = retry
        self.account_id = account_id(settings.account)
        self._account: Account | None = None  # cached; reloaded on a concurrency conflict
        # The policy and the latch as this breaker last loaded or saved them: used while the
        # store holds no newer version of either (asked at every reading), dropped on failure.
        self._held: tuple[Policy, Emergency] | None = None
        self._ledger_read_at: datetime | None = None  # when the transfer ledger was last read
        # This breaker's feed: its readings are ordered by this counter, not by the clock.
        self.feed = f"{venue.name}/{uuid4().hex[:12]}"
        self._sequence = itertools.count(1)

    def check_can_run(self) -> None:
        """Refuse, before it starts, a breaker that could never judge a reading: a venue that
        cannot report equity, or policy thresholds this configuration's hysteresis and glitch
        bound cannot evaluate. Raises InvalidCommand naming what is missing; StoreUnavailable.
        """
        missing = equity_unsupported(self.venue)
        if missing is not None:
            raise InvalidCommand(f"the drawdown breaker cannot run: {missing}")
        policy = self.commands.load_policy()
        if policy is not None:
            try:
                self._thresholds(policy)
            except InvalidCommand as e:
                raise InvalidCommand(
                    f"the drawdown breaker cannot evaluate the policy's thresholds with "
                    f"this configuration: {e}"
                ) from None

    # -- the feed ---------------------------------------------------------------------------

    def poll(self, trigger: str = "poll") -> Poll:
        """Read the venue's equity and record it; read once more at once if the reading is
        held for confirmation. A failed fetch records nothing."""
        evaluations: list[Evaluation] = []
        for source in (trigger, "re-read"):
            # Before a re-read always: a transfer is the likeliest cause of a jump.
            self.record_transfers(force=source == "re-read")
            try:
                reading = self.read(source)
            except VenueError as e:
                log.warning("equity reading failed (%s): %s", source, e)
                return Poll(evaluations, error=f"{type(e).__name__}: {e}")
            evaluation = self.record(reading)
            evaluations.append(evaluation)
            if not evaluation.needs_confirmation:
                break
        return Poll(evaluations)

    def read(self, source: str) -> Reading:
        sequence = next(self._sequence)  # taken before the read: a later read, a later number
        balance = self.venue.fetch_balance()
        return Reading(
            equity=balance.equity,
            wallet=balance.wallet,
            unrealized=balance.unrealized_pnl,
            source=f"{self.venue.name}:{source}",
            venue_at=balance.at or self.clock(),
            venue_clock=balance.at is not None,
            feed=self.feed,
            sequence=sequence,
        )

    def record_transfers(self, *, force: bool = True) -> int:
        """Read the venue's transfer ledger (unless it was read less than
        ``venue.transfer_interval`` seconds ago and ``force`` is False) and record each
        transfer not recorded yet, in one transaction. Returns how many were recorded. A
        ledger the venue cannot give now is logged and skipped (0)."""
        now = self.clock()
        last = self._ledger_read_at
        if not force and last is not None:
            elapsed = (now - last).total_seconds()
            # A clock stepped back (elapsed < 0) reads the ledger rather than waiting it out.
            if 0 <= elapsed < self.venue.transfer_interval:
                return 0
        account = self._load()
        # Counted from the attempt: a ledger the keys may not read is not asked every second
        # (its rate-limit weight would crowd out the orders the flattener needs to send).
        self._ledger_read_at = now
        try:
            transfers = self.venue.fetch_transfers(account.last_transfer_at)
        except VenueError as e:
            log.warning("transfer ledger unreadable; readings are not adjusted yet: %s", e)
            return 0
        known = set(account.transfer_ids)
        new = [t for t in transfers if t.venue_id not in known]
        return self._record_transfers(new) if new else 0

    def _record_transfers(self, transfers: list[CashTransfer]) -> int:
        correlation_id = uuid4()

        def attempt() -> int:
            account = self._load()
            recorded = 0
            for transfer in sorted(transfers, key=lambda t: t.at):
                try:
                    recorded += account.record_transfer(
                        transfer, timestamp=self.clock(), correlation_id=correlation_id
                    )
                except InvalidCommand as e:
                    log.warning("transfer %s from the venue skipped: %s", transfer.venue_id, e)
            if not recorded:
                return 0
            try:
                self._save(account)
            except BaseException:
                # Someone else wrote, the store is away, or worse: never keep unsaved events
                # in the cached account (the retry reloads and records again).
                self._account = None
                raise
            self._account = account
            log.warning(
                "%d transfer(s) recorded (net %s since the first); peak now %s",
                recorded,
                account.net_transfers,
                account.peak,
            )
            return recorded

        return self.retry.run(attempt, what="recording transfers")

    # -- the breaker ------------------------------------------------------------------------

    def record(self, reading: Reading) -> Evaluation:
        """Record and judge one reading; its consequences are saved with it, atomically.
        Raises StoreUnavailable (within the retry policy's bound), ConcurrencyExhausted."""
        correlation_id = uuid4()
        positions_open: bool | None = None

        def attempt() -> Evaluation:
            nonlocal positions_open
            account = self._load()
            policy, emergency = self._policy_and_latch()
            if positions_open is None:
                positions_open = reading.equity == 0 and self._positions_open()
            now = self.clock()
            evaluation = account.record_reading(
                reading,
                thresholds=self._thresholds(policy),
                positions_open=positions_open,
                emergency_active=emergency.active,
                entries_allowed=policy.allow_new_trades,
                breaker_stopped_entries=policy.allowance_changed_by == BREAKER_ACTOR,
                timestamp=now,
                correlation_id=correlation_id,
                daily_reset=self.settings.daily_reset,
            )
            try:
                self._apply(evaluation, account, policy, emergency, correlation_id, now)
                self._save(account, policy, emergency)
            except BaseException as e:
                self._held = None  # changed and not saved, or unknown: loaded afresh
                if isinstance(e, Conflict | StoreUnavailable):
                    self._account = None  # someone else wrote, or unknown: reload, judge again
                raise
            self._account = account
            self._held = policy, emergency
            self._log(evaluation, account)
            return evaluation

        return self.retry.run(attempt, what="the drawdown breaker")

    def reset_peak(
        self, *, actor: str, reason: str, confirm: Callable[[str], None] = lambda _: None
    ) -> Account:
        """An operator's new high-water mark at the last accepted equity (the only way out of
        a hard breach). ``confirm`` is called once, before anything is saved."""
        correlation_id = uuid4()
        confirmed = False

        def attempt() -> Account:
            nonlocal confirmed
            account = self._load(fresh=True)
            old_peak, old_state = account.peak, account.state
            account.reset_peak(
                actor=actor, reason=reason, timestamp=self.clock(), correlation_id=correlation_id
            )
            if not confirmed:
                confirm(
                    f"reset the drawdown peak from {old_peak} to {account.peak} "
                    f"(breaker {old_state} -> {account.state}) ({reason})"
                )
                confirmed = True
            self._save(account)
            log.warning("drawdown peak reset by %s to %s: %s", actor, account.peak, reason)
            return account

        return self.retry.run(attempt, what="the peak reset")

    def load(self) -> Account | None:
        """The account as last committed, or None before its first reading. Raises
        StoreUnavailable when the store cannot say."""
        return self.repository.find(Account, self.account_id)

    # -- internals --------------------------------------------------------------------------

    def _apply(
        self,
        evaluation: Evaluation,
        account: Account,
        policy: Policy,
        emergency: Emergency,
        correlation_id: UUID,
        now: datetime,
    ) -> None:
        cause = evaluation.breach_event_id
        if evaluation.transition is Transition.HARD_BREACH:
            latch_emergency(
                policy,
                emergency,
                reason=(
                    f"drawdown {account.drawdown:.2%} crossed the hard threshold "
                    f"{policy.limits.drawdown_hard_threshold:.2%} "
                    f"(equity {account.equity or 0:.2f}, peak {account.peak:.2f})"
                ),
                actor=BREAKER_ACTOR,
                source="drawdown",
                timestamp=now,
                correlation_id=correlation_id,
                causation_id=cause,
            )
        elif evaluation.transition is Transition.SOFT_BREACH:
            policy.set_allow_new_trades(
                False,
                actor=BREAKER_ACTOR,
                reason=f"drawdown {account.drawdown:.2%} crossed the soft threshold",
                timestamp=now,
                correlation_id=correlation_id,
                causation_id=cause,
            )
        elif evaluation.transition is Transition.RECOVERED and evaluation.reallows_entries:
            policy.set_allow_new_trades(
                True,
                actor=BREAKER_ACTOR,
                reason=f"drawdown recovered to {account.drawdown:.2%}",
                timestamp=now,
                correlation_id=correlation_id,
                causation_id=cause,
            )

    def _thresholds(self, policy: Policy) -> Thresholds:
        limits = policy.limits
        return Thresholds(
            soft=limits.drawdown_soft_threshold,
            hard=limits.drawdown_hard_threshold,
            hysteresis=self.settings.hysteresis,
            glitch_bound=self.settings.glitch_bound,
        )

    def _save(self, *aggregates: Account | Policy | Emergency) -> None:
        """One transaction; Conflict when another writer saved first."""
        self.repository.save(*aggregates)

    def _load(self, *, fresh: bool = False) -> Account:
        if self._account is not None and not fresh:
            return self._account
        account = self.load()
        if account is None:
            account = Account.open(account=self.settings.account, timestamp=self.clock())
        return account

    def _policy_and_latch(self) -> tuple[Policy, Emergency]:
        """The policy and the latch as last committed: this breaker's copies when the store
        holds no newer version of either (one statement asks, so a change made by any other
        process is seen by the next reading), else loaded afresh. The caller may change them
        and must save them (or drop them on failure)."""
        held = self._held
        if held is not None and self.repository.unchanged(*held):
            return held
        self._held = None
        return self.commands.policy_and_latch()

    def _positions_open(self) -> bool:
        """Asked only when equity reads 0; a venue that cannot say counts as open."""
        try:
            return bool(self.venue.fetch_positions())
        except VenueError:
            return True

    @staticmethod
    def _log(evaluation: Evaluation, account: Account) -> None:
        if evaluation.clock_step is not None:
            log.warning("clock step detected: %s", evaluation.clock_step)
        if evaluation.status == "rejected":
            log.warning("equity reading rejected: %s", evaluation.reason)
        elif evaluation.unconfirmed:
            log.warning("an equity reading was contradicted by the next one and discarded")
        if evaluation.transition is Transition.HARD_BREACH:
            log.error(
                "DRAWDOWN HARD BREACH: drawdown %.2f%% (equity %.2f, peak %.2f): emergency stop "
                "activated",
                account.drawdown * 100,
                account.equity or 0,
                account.peak,
            )
        elif evaluation.transition is Transition.SOFT_BREACH:
            log.warning("drawdown soft breach: %.2f%%; new entries stopped", account.drawdown * 100)
        elif evaluation.transition is Transition.RECOVERED:
            log.warning("drawdown recovered to %.2f%%", account.drawdown * 100)


def load_account(store: TradecoreEventStore, account: UUID) -> Account | None:
    """The Account as last committed, or None before its first reading. Raises
    StoreUnavailable when the store cannot say."""
    return Repository(store).find(Account, account)


class BreakerSight:
    """Can the drawdown breaker see the account now? What the gate asks before new risk.

    Called: why it is blind (no accepted reading, the last one older than ``bound`` seconds
    by ``clock``, or readings rejected since), or None when it sees. Raises StoreUnavailable.
    """

    def __init__(
        self,
        store: TradecoreEventStore,
        commands: SafetyCommands,
        clock: Callable[[], datetime],
        *,
        account: str,
        bound: float,
    ) -> None:
        self.store = store
        self.commands = commands
        self.clock = clock
        self.account_id = account_id(account)
        self.bound = timedelta(seconds=bound)

    def __call__(self) -> str | None:
        found = load_account(self.store, self.account_id)
        if found is None:
            return "no equity reading has been recorded yet (is the worker running?)"
        return found.blind_reason(self.clock(), self.bound)
