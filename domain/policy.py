"""The Policy aggregate: the single source of truth for trading policy (P0-01).

It alone holds ``emergency_mode``, ``allow_new_trades``, ``emergency_reason``,
``emergency_activated_at`` and the risk limits. Every module asks the policy gate, which
reads this aggregate (or its view, when provably current); nothing keeps a flag of its own.

Emergency mode is only entered and left together with the Emergency latch, in one
transaction (see ``app.commands.safety``); the methods here keep the policy's own invariants:
while in emergency mode no new trades are allowed, and leaving emergency mode does not
re-allow them by itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from eventsourcing.domain import event

from domain.base import TradecoreAggregate, require_aware, require_text, to_decimal, trace_ids
from domain.drawdown import BREAKER_ACTOR, DEFAULT_GLITCH_BOUND, DEFAULT_HYSTERESIS, Thresholds
from domain.errors import InvalidCommand, RefusedBySafetyRule
from domain.ids import POLICY_ID
from domain.pretrade import DEFAULT_PRETRADE, LossStop, PreTradeLimits, PreTradeState


class PolicyError(InvalidCommand):
    """A policy command was given invalid values."""


class NewTradesRefusedDuringEmergency(RefusedBySafetyRule):
    """New trades cannot be allowed while the emergency stop is latched."""


# Sanity bounds: no venue offers more than 125x, and a typo of a few extra digits in a
# notional must be refused, not become the policy.
MAX_LEVERAGE = Decimal(125)
MAX_NOTIONAL = Decimal(10) ** 12


@dataclass(frozen=True)
class RiskLimits:
    """The risk limits of the policy. Construct with :meth:`validated`."""

    max_leverage: Decimal
    max_position_notional: Decimal
    drawdown_soft_threshold: Decimal
    drawdown_hard_threshold: Decimal

    @classmethod
    def validated(
        cls,
        *,
        max_leverage: Decimal | str | int,
        max_position_notional: Decimal | str | int,
        drawdown_soft_threshold: Decimal | str | int,
        drawdown_hard_threshold: Decimal | str | int,
        hysteresis: Decimal = DEFAULT_HYSTERESIS,
        glitch_bound: Decimal = DEFAULT_GLITCH_BOUND,
    ) -> RiskLimits:
        """Return limits after checking every rule; raises PolicyError naming the rule.

        ``hysteresis`` and ``glitch_bound`` are the drawdown breaker's configuration: the
        thresholds must be ones the breaker can evaluate with them in force.
        """
        leverage = to_decimal(max_leverage, "max_leverage")
        notional = to_decimal(max_position_notional, "max_position_notional")
        soft = to_decimal(drawdown_soft_threshold, "drawdown_soft_threshold")
        hard = to_decimal(drawdown_hard_threshold, "drawdown_hard_threshold")
        if not 0 < leverage <= MAX_LEVERAGE:
            raise PolicyError(
                f"max_leverage must be above 0 and at most {MAX_LEVERAGE}, got {leverage}"
            )
        if not 0 < notional <= MAX_NOTIONAL:
            raise PolicyError(
                f"max_position_notional must be above 0 and at most {MAX_NOTIONAL:,}, "
                f"got {notional}"
            )
        for name, value in (("drawdown_soft_threshold", soft), ("drawdown_hard_threshold", hard)):
            if not Decimal(-1) < value < 0:
                raise PolicyError(f"{name} must be between -1 and 0 (exclusive), got {value}")
        if hard >= soft:
            raise PolicyError(
                f"drawdown_hard_threshold ({hard}) must be below drawdown_soft_threshold ({soft})"
            )
        try:
            Thresholds(soft=soft, hard=hard, hysteresis=hysteresis, glitch_bound=glitch_bound)
        except InvalidCommand as e:
            raise PolicyError(
                f"the drawdown breaker cannot evaluate these thresholds: {e}"
            ) from None
        return cls(leverage, notional, soft, hard)


DEFAULT_LIMITS = RiskLimits.validated(
    max_leverage="5",
    max_position_notional="10000",
    drawdown_soft_threshold="-0.05",
    drawdown_hard_threshold="-0.10",
)


class Policy(TradecoreAggregate):
    """One per installation, id :data:`domain.ids.POLICY_ID`."""

    # Version 2 (as held in snapshots) knows who last changed the allowance of new trades.
    class_version = 2

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        # Unknown for older snapshots: no automatic re-allowing follows from them.
        state["allowance_changed_by"] = None

    # Class-level defaults: a policy created (or snapshotted) before the pre-trade controls
    # existed has the default controls and no loss-streak stop.
    # The controls as plain values (None: the defaults), so a snapshot holds them as it
    # holds any event's fields.
    pretrade_values: dict[str, Any] | None = None
    loss_stop_until: datetime | None = None
    loss_count_from: datetime | None = None
    loss_stop_reason: str | None = None

    # Events are declared, not derived from method signatures, so their schema is explicit
    # and checked by mypy. Their topics (domain.policy:Policy.<Name>) are permanent.

    class Created(TradecoreAggregate.Created):
        class_version = 2
        allow_new_trades: bool
        max_leverage: Decimal
        max_position_notional: Decimal
        drawdown_soft_threshold: Decimal
        drawdown_hard_threshold: Decimal
        actor: str
        reason: str
        correlation_id: UUID | None

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            # Version 1 policies were created with new trades allowed.
            state["allow_new_trades"] = True

    class NewTradesAllowanceChanged(TradecoreAggregate.Event):
        allowed: bool
        actor: str
        reason: str
        correlation_id: UUID | None
        causation_id: UUID | None

    class LimitsUpdated(TradecoreAggregate.Event):
        max_leverage: Decimal
        max_position_notional: Decimal
        drawdown_soft_threshold: Decimal
        drawdown_hard_threshold: Decimal
        actor: str
        reason: str
        correlation_id: UUID | None
        causation_id: UUID | None

    class PreTradeLimitsUpdated(TradecoreAggregate.Event):
        price_collar: Decimal
        max_order_quantity: Decimal
        max_order_notional: Decimal
        max_orders_per_second: int
        duplicate_window_s: Decimal
        loss_streak_losses: int
        loss_streak_window_s: int
        loss_streak_cooldown_s: int
        actor: str
        reason: str
        correlation_id: UUID | None
        causation_id: UUID | None

    class LossStreakStopped(TradecoreAggregate.Event):
        """``losses`` losing closes in a row, the last at ``last_loss_at``: entries stop
        until ``until`` or an operator's ``LossStreakCleared``."""

        losses: int
        window_s: int
        last_loss_at: datetime
        until: datetime
        actor: str
        reason: str
        correlation_id: UUID | None

    class LossStreakCleared(TradecoreAggregate.Event):
        actor: str
        reason: str
        correlation_id: UUID | None

    class EmergencyModeEntered(TradecoreAggregate.Event):
        emergency_reason: str
        actor: str
        correlation_id: UUID | None
        causation_id: UUID | None

    class EmergencyModeLeft(TradecoreAggregate.Event):
        reason: str
        actor: str
        correlation_id: UUID | None
        causation_id: UUID | None

    @staticmethod
    def create_id(*_: Any, **__: Any) -> UUID:
        return POLICY_ID

    @classmethod
    def create(
        cls,
        *,
        actor: str,
        reason: str,
        timestamp: datetime,
        limits: RiskLimits = DEFAULT_LIMITS,
        correlation_id: UUID | None = None,
    ) -> Policy:
        """The policy as first created: default limits, no emergency, and new trades not yet
        allowed (fail closed: an operator opens trading explicitly with a reason)."""
        trace_ids(correlation_id, None)
        return cls(
            allow_new_trades=False,
            max_leverage=limits.max_leverage,
            max_position_notional=limits.max_position_notional,
            drawdown_soft_threshold=limits.drawdown_soft_threshold,
            drawdown_hard_threshold=limits.drawdown_hard_threshold,
            actor=require_text(actor, "actor"),
            reason=require_text(reason, "reason"),
            correlation_id=correlation_id,
            timestamp=require_aware(timestamp),
        )

    @event(Created)
    def __init__(
        self,
        *,
        allow_new_trades: bool,
        max_leverage: Decimal,
        max_position_notional: Decimal,
        drawdown_soft_threshold: Decimal,
        drawdown_hard_threshold: Decimal,
        actor: str,
        reason: str,
        correlation_id: UUID | None,
        timestamp: datetime,
    ) -> None:
        self.emergency_mode = False
        self.allow_new_trades = allow_new_trades
        # Who last changed allow_new_trades: the drawdown breaker re-allows entries after a
        # soft breach only if it was the one that stopped them.
        self.allowance_changed_by: str | None = actor
        self.emergency_reason: str | None = None
        self.emergency_activated_at: datetime | None = None
        self.limits = RiskLimits(
            max_leverage, max_position_notional, drawdown_soft_threshold, drawdown_hard_threshold
        )
        self.updated_by = actor
        self.updated_at = timestamp

    # -- commands ---------------------------------------------------------------------------

    def set_allow_new_trades(
        self,
        allowed: bool,
        *,
        actor: str,
        reason: str,
        timestamp: datetime,
        correlation_id: UUID | None = None,
        causation_id: UUID | None = None,
    ) -> bool:
        """Allow or stop new trades. Returns False (and records nothing) when unchanged,
        except that an operator repeating a stop the drawdown breaker made is recorded: the
        stop is then the operator's, and the breaker's recovery no longer lifts it.

        Raises NewTradesRefusedDuringEmergency when asked to allow them while the emergency
        stop is latched: only a reset of the latch, then this command, re-opens trading.
        """
        actor, reason = require_text(actor, "actor"), require_text(reason, "reason")
        trace_ids(correlation_id, causation_id)
        if allowed and self.emergency_mode:
            raise NewTradesRefusedDuringEmergency(
                "new trades cannot be allowed while the emergency stop is active; "
                "reset the emergency first"
            )
        takes_over = self.allowance_changed_by == BREAKER_ACTOR and actor != BREAKER_ACTOR
        if allowed == self.allow_new_trades and not takes_over:
            return False
        self._set_allow_new_trades(
            allowed=allowed,
            actor=actor,
            reason=reason,
            correlation_id=correlation_id,
            causation_id=causation_id,
            timestamp=require_aware(timestamp),
        )
        return True

    @event(NewTradesAllowanceChanged)
    def _set_allow_new_trades(
        self,
        *,
        allowed: bool,
        actor: str,
        reason: str,
        correlation_id: UUID | None,
        causation_id: UUID | None,
        timestamp: datetime,
    ) -> None:
        self.allow_new_trades = allowed
        self.allowance_changed_by = actor
        self.updated_by, self.updated_at = actor, timestamp

    def update_limits(
        self,
        *,
        actor: str,
        reason: str,
        timestamp: datetime,
        max_leverage: Decimal | str | None = None,
        max_position_notional: Decimal | str | None = None,
        drawdown_soft_threshold: Decimal | str | None = None,
        drawdown_hard_threshold: Decimal | str | None = None,
        correlation_id: UUID | None = None,
        causation_id: UUID | None = None,
        hysteresis: Decimal = DEFAULT_HYSTERESIS,
        glitch_bound: Decimal = DEFAULT_GLITCH_BOUND,
    ) -> bool:
        """Change some limits; the resulting set is validated as a whole, with the drawdown
        breaker's ``hysteresis`` and ``glitch_bound`` (fractions) in force.

        Returns False (and records nothing) when nothing changes. Raises PolicyError naming
        the broken rule, with the policy untouched.
        """
        actor, reason = require_text(actor, "actor"), require_text(reason, "reason")
        trace_ids(correlation_id, causation_id)
        asked = (max_leverage, max_position_notional, drawdown_soft_threshold)
        if all(v is None for v in (*asked, drawdown_hard_threshold)):
            # No limit asked for: nothing to validate. A set already in force is never
            # re-judged here, so an operator can always close trading, even while an old
            # event holds a value today's rules refuse.
            return False
        current = self.limits
        new = RiskLimits.validated(
            max_leverage=current.max_leverage if max_leverage is None else max_leverage,
            max_position_notional=(
                current.max_position_notional
                if max_position_notional is None
                else max_position_notional
            ),
            drawdown_soft_threshold=(
                current.drawdown_soft_threshold
                if drawdown_soft_threshold is None
                else drawdown_soft_threshold
            ),
            drawdown_hard_threshold=(
                current.drawdown_hard_threshold
                if drawdown_hard_threshold is None
                else drawdown_hard_threshold
            ),
            hysteresis=hysteresis,
            glitch_bound=glitch_bound,
        )
        if new == current:
            return False
        self._update_limits(
            max_leverage=new.max_leverage,
            max_position_notional=new.max_position_notional,
            drawdown_soft_threshold=new.drawdown_soft_threshold,
            drawdown_hard_threshold=new.drawdown_hard_threshold,
            actor=actor,
            reason=reason,
            correlation_id=correlation_id,
            causation_id=causation_id,
            timestamp=require_aware(timestamp),
        )
        return True

    @event(LimitsUpdated)
    def _update_limits(
        self,
        *,
        max_leverage: Decimal,
        max_position_notional: Decimal,
        drawdown_soft_threshold: Decimal,
        drawdown_hard_threshold: Decimal,
        actor: str,
        reason: str,
        correlation_id: UUID | None,
        causation_id: UUID | None,
        timestamp: datetime,
    ) -> None:
        self.limits = RiskLimits(
            max_leverage, max_position_notional, drawdown_soft_threshold, drawdown_hard_threshold
        )
        self.updated_by, self.updated_at = actor, timestamp

    @property
    def pretrade(self) -> PreTradeLimits:
        """The pre-trade controls in force (``domain.pretrade``)."""
        values = self.pretrade_values
        return DEFAULT_PRETRADE if values is None else PreTradeLimits(**values)

    @property
    def pretrade_state(self) -> PreTradeState:
        return PreTradeState(
            self.pretrade,
            LossStop(self.loss_stop_until, self.loss_count_from, self.loss_stop_reason),
        )

    def update_pretrade(
        self,
        asked: Mapping[str, Decimal | str | int | None],
        *,
        actor: str,
        reason: str,
        timestamp: datetime,
        correlation_id: UUID | None = None,
        causation_id: UUID | None = None,
    ) -> bool:
        """Change some pre-trade controls (``domain.pretrade.PRETRADE_FIELDS``); the
        resulting set is validated as a whole. Returns False (and records nothing) when
        nothing changes. Raises PreTradeLimitsError naming the field, the policy untouched."""
        actor, reason = require_text(actor, "actor"), require_text(reason, "reason")
        trace_ids(correlation_id, causation_id)
        if all(v is None for v in asked.values()):
            return False
        new = self.pretrade.changed(**asked)
        if new == self.pretrade:
            return False
        self._update_pretrade(
            **asdict(new),  # every control, as the event's fields name them
            actor=actor,
            reason=reason,
            correlation_id=correlation_id,
            causation_id=causation_id,
            timestamp=require_aware(timestamp),
        )
        return True

    @event(PreTradeLimitsUpdated)
    def _update_pretrade(
        self,
        *,
        price_collar: Decimal,
        max_order_quantity: Decimal,
        max_order_notional: Decimal,
        max_orders_per_second: int,
        duplicate_window_s: Decimal,
        loss_streak_losses: int,
        loss_streak_window_s: int,
        loss_streak_cooldown_s: int,
        actor: str,
        reason: str,
        correlation_id: UUID | None,
        causation_id: UUID | None,
        timestamp: datetime,
    ) -> None:
        self.pretrade_values = PreTradeLimits(
            price_collar,
            max_order_quantity,
            max_order_notional,
            max_orders_per_second,
            duplicate_window_s,
            loss_streak_losses,
            loss_streak_window_s,
            loss_streak_cooldown_s,
        ).as_dict()
        self.updated_by, self.updated_at = actor, timestamp

    def stop_for_loss_streak(
        self,
        *,
        losses: int,
        last_loss_at: datetime,
        actor: str,
        timestamp: datetime,
        correlation_id: UUID | None = None,
    ) -> bool:
        """Stop entries for the cooldown after a losing streak ending at ``last_loss_at``.
        Returns False (records nothing) when that streak already made a stop or an operator
        re-allowed entries after it."""
        trace_ids(correlation_id, None)
        require_aware(last_loss_at)
        if self.loss_count_from is not None and last_loss_at <= self.loss_count_from:
            return False
        limits = self.pretrade
        until = require_aware(timestamp) + timedelta(seconds=limits.loss_streak_cooldown_s)
        self._loss_streak_stopped(
            losses=losses,
            window_s=limits.loss_streak_window_s,
            last_loss_at=last_loss_at,
            until=until,
            actor=require_text(actor, "actor"),
            reason=(
                f"{losses} losing closes in a row within {limits.loss_streak_window_s} s; "
                f"entries stopped until {until.isoformat()} "
                "(re-allow: tradecore policy reallow-entries --reason ...)"
            ),
            correlation_id=correlation_id,
            timestamp=timestamp,
        )
        return True

    @event(LossStreakStopped)
    def _loss_streak_stopped(
        self,
        *,
        losses: int,
        window_s: int,
        last_loss_at: datetime,
        until: datetime,
        actor: str,
        reason: str,
        correlation_id: UUID | None,
        timestamp: datetime,
    ) -> None:
        self.loss_stop_until, self.loss_count_from = until, last_loss_at
        self.loss_stop_reason = reason
        self.updated_by, self.updated_at = actor, timestamp

    def clear_loss_streak_stop(
        self,
        *,
        actor: str,
        reason: str,
        timestamp: datetime,
        correlation_id: UUID | None = None,
    ) -> bool:
        """An operator re-allows entries a loss-streak stop holds back; the closes so far
        never count again. Returns False (records nothing) when no stop is recorded."""
        actor, reason = require_text(actor, "actor"), require_text(reason, "reason")
        trace_ids(correlation_id, None)
        if self.loss_stop_until is None:
            return False
        self._loss_streak_cleared(
            actor=actor,
            reason=reason,
            correlation_id=correlation_id,
            timestamp=require_aware(timestamp),
        )
        return True

    @event(LossStreakCleared)
    def _loss_streak_cleared(
        self, *, actor: str, reason: str, correlation_id: UUID | None, timestamp: datetime
    ) -> None:
        self.loss_stop_until, self.loss_stop_reason = None, None
        self.loss_count_from = timestamp
        self.updated_by, self.updated_at = actor, timestamp

    @event(EmergencyModeEntered)
    def enter_emergency(
        self,
        *,
        emergency_reason: str,
        actor: str,
        correlation_id: UUID | None,
        causation_id: UUID | None,
        timestamp: datetime,
    ) -> None:
        """Latch emergency mode and stop new trades. Called only with the Emergency latch."""
        self.emergency_mode = True
        self.allow_new_trades = False
        self.allowance_changed_by = actor
        self.emergency_reason = emergency_reason
        self.emergency_activated_at = timestamp
        self.updated_by, self.updated_at = actor, timestamp

    @event(EmergencyModeLeft)
    def leave_emergency(
        self,
        *,
        reason: str,
        actor: str,
        correlation_id: UUID | None,
        causation_id: UUID | None,
        timestamp: datetime,
    ) -> None:
        """Leave emergency mode. New trades stay stopped until an operator allows them."""
        self.emergency_mode = False
        self.emergency_reason = None
        self.emergency_activated_at = None
        self.updated_by, self.updated_at = actor, timestamp
