"""The policy gate: the one question every module asks before opening risk (P0-01).

Fresh: a decision reflects every change committed before the call. The gate reads the log's
head, the policy view and the view's tracked position in one REPEATABLE READ snapshot; when
the view has processed up to the head it answers from the view, otherwise it reads the
Policy aggregate itself. Fail-closed (docs/ARCHITECTURE.md, decision 6): store unreachable,
view behind past the bound, or any error -> not allowed, with the reason. An entry also needs a
drawdown breaker that sees the account (a fresh accepted equity reading, none rejected since):
otherwise ``BREAKER_BLIND``. Reduce-only orders are always allowed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from decimal import Decimal
from enum import StrEnum

from sqlalchemy import Engine

from domain.policy import Policy
from domain.pretrade import PreTradeState
from projections.policy_view import read_policy_snapshot
from projections.runner import LogReader

log = logging.getLogger(__name__)


class GateCode(StrEnum):
    OK = "OK"
    EMERGENCY = "EMERGENCY_ACTIVE"
    NEW_TRADES_DISABLED = "NEW_TRADES_DISABLED"
    VIEW_BEHIND = "POLICY_VIEW_BEHIND"
    STORE_UNAVAILABLE = "STORE_UNAVAILABLE"
    NOT_INITIALISED = "POLICY_NOT_INITIALISED"
    REDUCE_ONLY = "REDUCE_ONLY_ALWAYS_ALLOWED"
    BREAKER_BLIND = "BREAKER_BLIND"


@dataclass(frozen=True)
class GateDecision:
    allowed: bool
    code: GateCode
    reason: str
    # True when the emergency stop is active *or cannot be ruled out* (fail closed).
    emergency_mode: bool
    policy_version: int | None
    source: str  # "view", "aggregate" or "none"
    position: int | None  # the log position the decision reflects
    # The caps of the same policy version, so a sizing check and the decision cannot disagree.
    max_leverage: Decimal | None = None
    max_position_notional: Decimal | None = None
    # The pre-trade controls of the same policy version (None when no policy was read).
    pretrade: PreTradeState | None = None


class PolicyGate:
    def __init__(
        self,
        engine: Engine,
        reader: LogReader,
        load_policy: Callable[[], Policy | None],
        *,
        max_lag_events: int,
        breaker_blind: Callable[[], str | None],
    ) -> None:
        """``breaker_blind``: why the drawdown breaker cannot see the account now, or None;
        an exception from it counts as blind. Required: no gate answers entries without it."""
        self.engine = engine
        self.reader = reader
        self.load_policy = load_policy
        self.max_lag_events = max_lag_events
        self.breaker_blind = breaker_blind

    def can_open_new_trades(self) -> GateDecision:
        """May a new position be opened or an existing one grown now? Not while the drawdown
        breaker cannot see the account (``BREAKER_BLIND``): risk it could not stop."""
        return self._decide_entry()

    def check_order(self, *, reduce_only: bool) -> GateDecision:
        """May this order go to the venue? A reduce-only order can only shrink exposure, so no
        halt blocks it (docs/ARCHITECTURE.md, decision 6); anything else needs new trades allowed
        and a breaker that sees the account."""
        if not reduce_only:
            return self._decide_entry()
        decision = self._decide()
        return replace(
            decision,
            allowed=True,
            code=GateCode.REDUCE_ONLY,
            reason=f"reduce-only orders are always allowed ({decision.reason})",
        )

    def is_emergency_mode(self) -> GateDecision:
        """The same decision; read ``emergency_mode`` (True also when it cannot be known)."""
        return self._decide()

    def _decide_entry(self) -> GateDecision:
        decision = self._decide()
        if not decision.allowed:
            return decision
        try:
            blind = self.breaker_blind()
        except Exception as e:  # noqa: BLE001 - fail closed on any error
            blind = f"cannot read the breaker's account: {_line(e)}"
        if blind is None:
            return decision
        log.warning("gate closed to new entries: the drawdown breaker is blind: %s", blind)
        return replace(
            decision,
            allowed=False,
            code=GateCode.BREAKER_BLIND,
            reason=f"the drawdown breaker cannot see the account: {blind}",
        )

    def _decide(self) -> GateDecision:
        try:
            with (
                self.engine.connect().execution_options(
                    isolation_level="REPEATABLE READ", postgresql_readonly=True
                ) as conn,
                conn.begin(),
            ):
                head = self.reader.head(conn)
                snapshot = read_policy_snapshot(conn)
        except Exception as e:  # noqa: BLE001 - fail closed on any error
            return _closed(GateCode.STORE_UNAVAILABLE, f"cannot read the policy: {_line(e)}")

        lag = head - snapshot.position
        if lag > self.max_lag_events:
            return _closed(
                GateCode.VIEW_BEHIND,
                f"policy view is {lag} events behind the log (bound {self.max_lag_events})",
            )
        if lag <= 0 and snapshot.policy is not None:
            p = snapshot.policy
            return _from_policy(
                p.emergency_mode,
                p.allow_new_trades,
                p.emergency_reason,
                p.version,
                p.updated_by,
                source="view",
                position=head,
                limits=(p.max_leverage, p.max_position_notional),
                pretrade=p.pretrade_state,
            )
        # The view is (slightly) behind: the aggregate is the committed truth.
        try:
            policy = self.load_policy()
        except Exception as e:  # noqa: BLE001 - fail closed on any error
            return _closed(GateCode.STORE_UNAVAILABLE, f"cannot read the policy: {_line(e)}")
        if policy is None:
            return _closed(GateCode.NOT_INITIALISED, "no policy has been recorded yet")
        return _from_policy(
            policy.emergency_mode,
            policy.allow_new_trades,
            policy.emergency_reason,
            policy.version,
            policy.updated_by,
            source="aggregate",
            position=None,
            limits=(policy.limits.max_leverage, policy.limits.max_position_notional),
            pretrade=policy.pretrade_state,
        )


def _from_policy(
    emergency_mode: bool,
    allow_new_trades: bool,
    emergency_reason: str | None,
    version: int,
    updated_by: str,
    *,
    source: str,
    position: int | None,
    limits: tuple[Decimal, Decimal],
    pretrade: PreTradeState,
) -> GateDecision:
    if emergency_mode:
        code, allowed = GateCode.EMERGENCY, False
        reason = f"emergency stop active: {emergency_reason}"
    elif not allow_new_trades:
        code, allowed = GateCode.NEW_TRADES_DISABLED, False
        reason = f"new trades disabled by policy v{version} (last changed by {updated_by})"
    else:
        code, allowed = GateCode.OK, True
        reason = f"allowed by policy v{version}"
    return GateDecision(
        allowed,
        code,
        reason,
        emergency_mode,
        version,
        source,
        position,
        limits[0],
        limits[1],
        pretrade,
    )


def _closed(code: GateCode, reason: str) -> GateDecision:
    log.warning("gate closed: %s", reason)
    return GateDecision(False, code, reason, True, None, "none", None)


def _line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return lines[0] if lines else type(e).__name__
