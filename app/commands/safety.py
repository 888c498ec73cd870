"""Commands on the policy and the emergency latch: thin, atomic, retried on conflict.

Each command loads the aggregates, calls one domain method per aggregate and saves them in
one ``Application.save`` call, which is one transaction: the policy's ``emergency_mode`` and
the latch can never disagree (docs/ARCHITECTURE.md, decision 5). Concurrent writers are
serialised by optimistic concurrency on the aggregate version; a conflict reloads and retries, so no
update is lost (P0-04's rule, applied to the policy too). Loading, saving and retrying go
through ``adapters.repository`` (one helper, one retry policy).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TypeVar
from uuid import UUID, uuid4

from adapters.eventstore import TradecoreEventStore
from adapters.repository import WRITER, ConcurrencyExhausted, Repository, RetryPolicy, guard
from domain.account import Account
from domain.drawdown import DEFAULT_GLITCH_BOUND, DEFAULT_HYSTERESIS, BreakerState
from domain.emergency import Emergency
from domain.errors import InvalidCommand, RefusedBySafetyRule
from domain.ids import EMERGENCY_ID, POLICY_ID, account_id
from domain.policy import Policy
from domain.pretrade import PRETRADE_FIELDS
from domain.venue import VenueError

log = logging.getLogger(__name__)
T = TypeVar("T")

SYSTEM_ACTOR = "tradecore"


__all__ = ["ConcurrencyExhausted", "SafetyCommands", "latch_emergency"]


@dataclass(frozen=True)
class PolicyChange:
    changed: bool
    version: int


@dataclass(frozen=True)
class Activation:
    """The outcome of an activation request: what the flattener acts on (next issue)."""

    activated: bool  # False: the latch was already active, nothing new was recorded
    activation_number: int
    activation_id: UUID
    reason: str
    source: str
    activated_at: datetime
    policy_version: int


@dataclass(frozen=True)
class EmergencyReset:
    activation_number: int
    policy_version: int


Confirm = Callable[[str], None]


def _no_confirmation(_: str) -> None:
    return None


class SafetyCommands:
    """Application service for the Policy and Emergency aggregates."""

    def __init__(
        self,
        store: TradecoreEventStore,
        clock: Callable[[], datetime],
        *,
        retry: RetryPolicy = WRITER,
        probe: Callable[[], None] = lambda: None,
        account: str | None = None,
        breaker_tuning: tuple[Decimal, Decimal] = (DEFAULT_HYSTERESIS, DEFAULT_GLITCH_BOUND),
    ) -> None:
        self.store = store
        # (hysteresis, glitch bound) of the drawdown breaker: policy thresholds must be ones
        # it can evaluate with them.
        self.breaker_tuning = breaker_tuning
        self.repository = Repository(store)
        # The account whose drawdown breaker holds a reset back while it is in hard breach.
        self.account = account
        self.clock = clock
        self.retry = retry
        # Checks the store is reachable (raising StoreUnavailable) before a command, so a
        # command fails at once when it is down instead of waiting out the library's retries.
        self.probe = probe

    # -- reads of the source of truth -------------------------------------------------------

    def load_policy(self) -> Policy | None:
        """The policy aggregate as last committed, or None before first use."""
        return self.repository.find(Policy, POLICY_ID)

    def load_emergency(self) -> Emergency | None:
        """The latch as last committed, or None before first use. Raises StoreUnavailable."""
        return self.repository.find(Emergency, EMERGENCY_ID)

    # -- commands ----------------------------------------------------------------------------

    def ensure_initialised(self) -> None:
        """Create the policy and the latch on first use (both, in one transaction)."""

        def attempt() -> None:
            # Saving a loaded aggregate with no new events records nothing.
            self.repository.save(*self.policy_and_latch())

        self._retrying(attempt)

    def update_policy(
        self,
        *,
        actor: str,
        reason: str,
        allow_new_trades: bool | None = None,
        max_leverage: Decimal | str | None = None,
        max_position_notional: Decimal | str | None = None,
        drawdown_soft_threshold: Decimal | str | None = None,
        drawdown_hard_threshold: Decimal | str | None = None,
        pretrade: Mapping[str, Decimal | str | int | None] | None = None,
        correlation_id: UUID | None = None,
        confirm: Confirm = _no_confirmation,
    ) -> PolicyChange:
        """Change trading permission and/or limits in one transaction.

        ``pretrade``: pre-trade controls to change, by field name
        (``domain.pretrade.PRETRADE_FIELDS``; None values are left as they are).

        Raises InvalidCommand (bad values: nothing recorded), RefusedBySafetyRule (allowing
        new trades during an emergency), StoreUnavailable, ConcurrencyExhausted.
        ``confirm`` is called once, after validation and before anything is saved.
        """
        limits = (
            max_leverage,
            max_position_notional,
            drawdown_soft_threshold,
            drawdown_hard_threshold,
        )
        controls: dict[str, Decimal | str | int] = {
            k: v for k, v in (pretrade or {}).items() if v is not None
        }
        unknown = controls.keys() - set(PRETRADE_FIELDS)
        if unknown:
            raise InvalidCommand(f"unknown pre-trade control(s): {', '.join(sorted(unknown))}")
        if allow_new_trades is None and all(v is None for v in limits) and not controls:
            raise InvalidCommand("nothing to change: give allow_new_trades or at least one limit")
        correlation_id = correlation_id or uuid4()
        confirmed = False

        def attempt() -> PolicyChange:
            nonlocal confirmed
            policy, emergency = self.policy_and_latch()
            now = self.clock()
            changed = False
            if allow_new_trades is not None:
                changed |= policy.set_allow_new_trades(
                    allow_new_trades,
                    actor=actor,
                    reason=reason,
                    timestamp=now,
                    correlation_id=correlation_id,
                )
            changed |= policy.update_limits(
                actor=actor,
                reason=reason,
                timestamp=now,
                correlation_id=correlation_id,
                max_leverage=max_leverage,
                max_position_notional=max_position_notional,
                drawdown_soft_threshold=drawdown_soft_threshold,
                drawdown_hard_threshold=drawdown_hard_threshold,
                hysteresis=self.breaker_tuning[0],
                glitch_bound=self.breaker_tuning[1],
            )
            changed |= policy.update_pretrade(
                controls, actor=actor, reason=reason, timestamp=now, correlation_id=correlation_id
            )
            if not changed:
                return PolicyChange(changed=False, version=policy.version)
            if not confirmed:
                confirm(_describe_policy(policy))
                confirmed = True
            self.repository.save(policy, emergency)
            return PolicyChange(changed=True, version=policy.version)

        return self._retrying(attempt)

    def activate_emergency(
        self,
        *,
        reason: str,
        actor: str,
        source: str = "operator",
        correlation_id: UUID | None = None,
        causation_id: UUID | None = None,
        confirm: Confirm = _no_confirmation,
    ) -> Activation:
        """Latch the emergency stop and stop new trades, in one transaction.

        Idempotent: if the latch is already active nothing is recorded and the current
        activation is returned with ``activated=False``. Flattening the account is the
        flattener's job (``app.processes.flattener``), run by the CLI right after this and by
        the worker.
        """
        correlation_id = correlation_id or uuid4()
        confirmed = False

        def attempt() -> Activation:
            nonlocal confirmed
            policy, emergency = self.policy_and_latch()
            activated = latch_emergency(
                policy,
                emergency,
                reason=reason,
                actor=actor,
                source=source,
                timestamp=self.clock(),
                correlation_id=correlation_id,
                causation_id=causation_id,
            )
            if activated:
                if not confirmed:
                    confirm(f"activate the emergency stop ({reason})")
                    confirmed = True
                self.repository.save(policy, emergency)
            assert emergency.activation_id is not None
            assert emergency.activated_at is not None and emergency.reason and emergency.source
            return Activation(
                activated=activated,
                activation_number=emergency.activation_number,
                activation_id=emergency.activation_id,
                reason=emergency.reason,
                source=emergency.source,
                activated_at=emergency.activated_at,
                policy_version=policy.version,
            )

        activation = self._retrying(attempt)
        if activation.activated:
            log.warning(
                "EMERGENCY STOP ACTIVATED activation=%s source=%s reason=%s",
                activation.activation_number,
                activation.source,
                activation.reason,
            )
        return activation

    def reset_emergency(
        self,
        *,
        reason: str,
        actor: str,
        venue_exposure: Callable[[], tuple[int, int]],
        force: bool = False,
        correlation_id: UUID | None = None,
        confirm: Confirm = _no_confirmation,
    ) -> EmergencyReset:
        """Release the latch and leave emergency mode, in one transaction.

        ``venue_exposure`` returns the venue's (open positions, open orders) now; a reset is
        refused (AccountNotFlat) unless both are 0 or ``force`` is set; a venue that cannot
        be asked counts as not flat. New trades stay stopped: an operator re-allows them
        explicitly. Raises EmergencyNotActive when the latch is not active.

        While the account's drawdown breaker is in hard breach the reset is refused too
        (unless ``force``): the breaker would activate the stop again at its next reading, so
        an operator resets the peak first.
        """
        if not force and self._breaker_state() is BreakerState.HARD_BREACH:
            raise RefusedBySafetyRule(
                "the drawdown breaker is still in hard breach and would activate the stop again "
                "at its next reading: reset the peak first (`tradecore risk reset-peak`), or "
                "--force"
            )
        try:
            open_positions, open_orders = venue_exposure()
            exposure: tuple[int | None, int | None] = (open_positions, open_orders)
        except VenueError as e:
            log.warning("cannot ask the venue before the reset: %s", e)
            exposure = (None, None)
        correlation_id = correlation_id or uuid4()
        confirmed = False

        def attempt() -> EmergencyReset:
            nonlocal confirmed
            policy, emergency = self.policy_and_latch()
            now = self.clock()
            emergency.reset(
                reason=reason,
                actor=actor,
                timestamp=now,
                open_positions=exposure[0],
                open_orders=exposure[1],
                force=force,
                correlation_id=correlation_id,
            )
            policy.leave_emergency(
                reason=reason,
                actor=actor,
                correlation_id=correlation_id,
                causation_id=None,
                timestamp=now,
            )
            if not confirmed:
                confirm(f"{'FORCE ' if force else ''}reset the emergency stop ({reason})")
                confirmed = True
            self.repository.save(policy, emergency)
            return EmergencyReset(emergency.activation_number, policy.version)

        return self._retrying(attempt)

    def stop_for_loss_streak(self, *, losses: int, last_loss_at: datetime, actor: str) -> bool:
        """Record the loss-streak stop (``Policy.stop_for_loss_streak``); False when that
        streak is already recorded. Raises StoreUnavailable, ConcurrencyExhausted."""

        def attempt() -> bool:
            policy, emergency = self.policy_and_latch()
            stopped = policy.stop_for_loss_streak(
                losses=losses, last_loss_at=last_loss_at, actor=actor, timestamp=self.clock()
            )
            if stopped:
                self.repository.save(policy, emergency)
                log.warning("%s", policy.loss_stop_reason)
            return stopped

        return self._retrying(attempt)

    def clear_loss_streak_stop(
        self, *, actor: str, reason: str, confirm: Confirm = _no_confirmation
    ) -> PolicyChange:
        """An operator re-allows the entries a loss-streak stop holds back (the losing
        closes so far never count again). Unchanged when no stop is recorded."""
        confirmed = False

        def attempt() -> PolicyChange:
            nonlocal confirmed
            policy, emergency = self.policy_and_latch()
            stop = policy.loss_stop_reason
            if not policy.clear_loss_streak_stop(
                actor=actor, reason=reason, timestamp=self.clock()
            ):
                return PolicyChange(changed=False, version=policy.version)
            if not confirmed:
                confirm(f"re-allow entries held back by the loss-streak stop ({stop})")
                confirmed = True
            self.repository.save(policy, emergency)
            return PolicyChange(changed=True, version=policy.version)

        return self._retrying(attempt)

    # -- internals ---------------------------------------------------------------------------

    def _breaker_state(self) -> BreakerState | None:
        if self.account is None:
            return None
        name = self.account
        account = self.repository.find(Account, account_id(name))
        return account.breaker_state if account is not None else None

    def policy_and_latch(self) -> tuple[Policy, Emergency]:
        """Both aggregates; a missing one is created (unsaved) with the current time, so it is
        saved in the same transaction as the command's events. Save them together."""
        policy = self.repository.find(Policy, POLICY_ID)
        emergency = self.repository.find(Emergency, EMERGENCY_ID)
        now = self.clock()
        if policy is None:
            policy = Policy.create(
                actor=SYSTEM_ACTOR,
                reason="created on first use; new trades stay off until an operator allows them",
                timestamp=now,
            )
        if emergency is None:
            # A fresh id per installation: client order ids derived from activations never
            # collide with another installation's on the same venue account.
            emergency = Emergency(installation_id=uuid4(), timestamp=now)
        return policy, emergency

    def _retrying(self, attempt: Callable[[], T]) -> T:
        # A conflict (another writer saved first) reloads and applies the command again.
        self.probe()
        return self.retry.run(attempt)

    @staticmethod
    def guard(call: Callable[[], T]) -> T:
        """``call()`` with the store's connection errors raised as StoreUnavailable."""
        return guard(call)


def latch_emergency(
    policy: Policy,
    emergency: Emergency,
    *,
    reason: str,
    actor: str,
    source: str,
    timestamp: datetime,
    correlation_id: UUID | None,
    causation_id: UUID | None,
) -> bool:
    """Latch the emergency stop and enter the policy's emergency mode (unsaved: the caller
    saves both in one transaction). False, changing nothing, if the latch is already on."""
    activated = emergency.activate(
        reason=reason,
        actor=actor,
        source=source,
        timestamp=timestamp,
        correlation_id=correlation_id,
        causation_id=causation_id,
    )
    if activated:
        policy.enter_emergency(
            emergency_reason=reason,
            actor=actor,
            correlation_id=correlation_id,
            causation_id=causation_id,
            timestamp=timestamp,
        )
    return activated


def _describe_policy(policy: Policy) -> str:
    lim = policy.limits
    return (
        f"set policy: allow_new_trades={policy.allow_new_trades}, max_leverage={lim.max_leverage}, "
        f"max_position_notional={lim.max_position_notional}, "
        f"drawdown_soft={lim.drawdown_soft_threshold}, "
        f"drawdown_hard={lim.drawdown_hard_threshold}, "
        + ", ".join(f"{k}={v}" for k, v in policy.pretrade.as_dict().items())
    )
