"""The pre-trade controls as the executor applies them (rules in ``domain.pretrade``).

One call per opening order, inside the order flow, after the gate said yes. In order:
the price collar and the per-order size limits (pure), the loss-streak stop (the policy's
recorded stop, else the trade read model's latest closes: a streak is recorded on the
policy, ``Policy.LossStreakStopped``, and refuses), then the duplicate check and the rate
throttle.

The duplicate check and the throttle must hold across processes (the CLI and the worker
each run an executor), so they count rows of ``readmodel.recent_orders``, not memory: one
transaction per order takes a transaction-scoped advisory lock for the account, reads the
account's orders of the last window, decides, and records the order when it passes. Two
senders of one account therefore serialise on the lock for a few milliseconds, and an
order's slot is taken in the same transaction that judged it, so none is counted twice or
missed. (A row per order rather than a counter: the duplicate check needs what was sent,
and the sliding second is exact where a counter's fixed windows let 2x through at a
boundary.) Reduce-only orders never come here: the flattener and every close go straight
to the venue, so no throttle can hold an exit back.

The loss streak is read from the trade read model, so a losing close counts once the
projection has applied it (normally within a poll of the runner).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import Engine, delete, insert, select, text

from adapters.locks import lock_key
from app.commands.safety import SafetyCommands
from domain.ids import account_id
from domain.pretrade import (
    Close,
    PreTradeRefusal,
    PreTradeState,
    ProposedOrder,
    RecentOrder,
    kept_for,
    loss_streak,
    order_rate_and_duplicate,
    order_size,
    price_collar,
)
from projections.tables import recent_orders, trades

log = logging.getLogger(__name__)

LOSS_STREAK_ACTOR = "loss-streak-stop"


class PreTradeCheck:
    """Called with an opening order and the gate decision's pre-trade state: the refusal,
    or None when the order may go (its slot in the rate window is then taken). Never
    raises: a control that cannot judge (store error) refuses, ``PRETRADE_UNAVAILABLE``."""

    def __init__(
        self,
        engine: Engine,
        commands: SafetyCommands,
        clock: Callable[[], datetime],
        *,
        account: str,
    ) -> None:
        self.engine = engine
        self.commands = commands
        self.clock = clock
        self.account = account
        self._lock = lock_key(account_id(f"pretrade/{account}"))

    def __call__(self, order: ProposedOrder, state: PreTradeState | None) -> PreTradeRefusal | None:
        if state is None:  # no policy was read: the gate refused already; fail closed anyway
            return PreTradeRefusal("PRETRADE_UNKNOWN", "the pre-trade controls are unknown")
        try:
            return self._check(order, state)
        except Exception as e:  # noqa: BLE001 - fail closed: a control that cannot judge refuses
            log.warning("pre-trade controls could not judge the order: %s", e)
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            return PreTradeRefusal(
                "PRETRADE_UNAVAILABLE", f"the pre-trade controls cannot judge: {first}"
            )

    def _check(self, order: ProposedOrder, state: PreTradeState) -> PreTradeRefusal | None:
        limits = state.limits
        refusal = price_collar(order, limits.price_collar) or order_size(order, limits)
        if refusal is not None:
            return refusal
        now = self.clock()
        refusal = self._loss_stop(state, now)
        if refusal is not None:
            return refusal
        with self.engine.begin() as conn:
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": self._lock})
            t = recent_orders.c
            conn.execute(
                delete(recent_orders).where(
                    t.account == self.account, t.at < now - kept_for(limits)
                )
            )
            rows = conn.execute(
                select(t.at, t.symbol, t.side, t.quantity).where(t.account == self.account)
            ).all()
            recent = [RecentOrder(r.at, r.symbol, r.side, r.quantity) for r in rows]
            refusal = order_rate_and_duplicate(order, recent, now, limits)
            if refusal is None:
                conn.execute(
                    insert(recent_orders).values(
                        account=self.account,
                        at=now,
                        symbol=order.symbol,
                        side=order.side,
                        quantity=order.quantity,
                    )
                )
        return refusal

    def _loss_stop(self, state: PreTradeState, now: datetime) -> PreTradeRefusal | None:
        stop, limits = state.loss_stop, state.limits
        if stop.active(now):
            return PreTradeRefusal("LOSS_STREAK_STOP", stop.reason or "loss-streak stop")
        t = trades.c
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(t.closed_at, t.realized_pnl)
                .where(t.status == "closed", t.closed_at.is_not(None), t.realized_pnl.is_not(None))
                .order_by(t.closed_at.desc())
                .limit(limits.loss_streak_losses)
            ).all()
        last = loss_streak([Close(r.closed_at, r.realized_pnl) for r in rows], now, limits, stop)
        if last is None:
            return None
        self.commands.stop_for_loss_streak(
            losses=limits.loss_streak_losses, last_loss_at=last.closed_at, actor=LOSS_STREAK_ACTOR
        )
        policy = self.commands.load_policy()
        reason = policy.loss_stop_reason if policy is not None else None
        return PreTradeRefusal(
            "LOSS_STREAK_STOP", reason or f"{limits.loss_streak_losses} losing closes in a row"
        )
