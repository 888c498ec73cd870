"""Sizing an intent (P0-05): the symbol's volatility regime, the agent's decision, the
fallback and the caps, and the record of it all.

The regime is measured on the venue's recent closes. When it cannot be measured (too few
prices, the venue unavailable) the intent is sized as in regime HIGH — the most
conservative reading — and the decision says the regime was unknown and why.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TypeVar
from uuid import UUID

from adapters.eventstore import TradecoreEventStore
from adapters.repository import Conflict, Repository
from domain.ids import SIZING_AGENT_ID, market_regime_id
from domain.market_regime import MarketRegime
from domain.policy import Policy
from domain.regime import Regime, RegimeInputInvalid, RegimeThresholds, detect
from domain.sizing import SizingDecision, SizingState, decide
from domain.sizing_agent import SizingAgent
from domain.sizing_record import SizingRecord
from domain.venue import ExchangePort, VenueError
from projections.trade_store import TradeStateStore

log = logging.getLogger(__name__)
T = TypeVar("T")

RECENT_TRADES = 10  # the closed trades whose PnL makes the state's "recent PnL"
NO_OPINION = 0.5  # the confidence of an intent that carries none (a manual trade)


@dataclass(frozen=True)
class RegimeReading:
    regime: str
    known: bool
    volatility: float | None
    note: str | None = None


@dataclass(frozen=True)
class Sized:
    decision: SizingDecision
    regime: RegimeReading
    base_notional: Decimal
    recent_pnl: Decimal
    decision_id: UUID | None  # None: not recorded (a what-if)


class SizingService:
    def __init__(
        self,
        store: TradecoreEventStore,
        venue: ExchangePort,
        clock: Callable[[], datetime],
        trades: TradeStateStore,
        load_policy: Callable[[], Policy | None],
        thresholds: RegimeThresholds,
    ) -> None:
        self.store = store
        self.venue = venue
        self.clock = clock
        self.trades = trades
        self.load_policy = load_policy
        self.thresholds = thresholds

    def size(
        self,
        *,
        symbol: str,
        confidence: float | None,
        base_notional: Decimal,
        decision_id: UUID | None = None,
        model: str | None = None,
        model_version: int | None = None,
    ) -> Sized:
        """The decision for an intent; recorded (``SizingDecided``, with the ``confidence``
        and the ``model``/``model_version`` that produced it) when ``decision_id`` is given.
        Raises SizingInputInvalid for a corrupt Q-table (never sized from one)."""
        policy = self.load_policy()
        if policy is None:
            raise LookupError("no policy recorded")
        regime = self.regime(symbol)
        recent = self.recent_pnl()
        state = SizingState.of(
            confidence=NO_OPINION if confidence is None else confidence,
            recent_pnl=recent,
            regime=regime.regime,
        )
        agent = self._get(SizingAgent, SIZING_AGENT_ID)
        decision = decide(
            agent.table if agent else {},
            state,
            base_notional=base_notional,
            max_leverage=policy.limits.max_leverage,
            max_notional=policy.limits.max_position_notional,
        )
        if decision.fallback:
            log.warning(
                "RL_FALLBACK_HIGH_VOL: %s in regime HIGH%s and the Q-table untrained for %s: "
                "size %sx, leverage %s",
                symbol,
                "" if regime.known else " (regime unknown)",
                state.key,
                decision.size_multiplier,
                decision.leverage,
            )
        if decision_id is not None:
            # The id derives from the trade's: a Conflict means an earlier attempt of this
            # same intent (one that failed later, e.g. in a store fault) recorded it. That
            # record stands; refusing here would wedge the intent for good.
            with contextlib.suppress(Conflict):
                Repository(self.store).save(
                    SizingRecord.record(
                        decision_id=decision_id,
                        symbol=symbol,
                        decision=decision,
                        base_notional=base_notional,
                        regime_known=regime.known,
                        regime_note=regime.note,
                        volatility=regime.volatility,
                        timestamp=self.clock(),
                        confidence=confidence,
                        model=model,
                        model_version=model_version,
                    )
                )
        return Sized(decision, regime, base_notional, recent, decision_id)

    def regime(self, symbol: str) -> RegimeReading:
        """The symbol's regime now (a change is recorded as ``RegimeChanged``)."""
        known = self._get(MarketRegime, market_regime_id(symbol))
        previous = known.regime if known else None
        try:
            closes = self.venue.fetch_closes(symbol, self.thresholds.window)
            regime, volatility = detect(
                closes, Regime(previous) if previous else None, self.thresholds
            )
        except (RegimeInputInvalid, VenueError) as e:
            return RegimeReading("HIGH", False, None, f"regime unknown ({e}); sized as HIGH")
        aggregate = known or MarketRegime.start(symbol=symbol, timestamp=self.clock())
        if aggregate.observe(regime=regime.value, volatility=volatility, timestamp=self.clock()):
            # Another process may have recorded the same observation first.
            with contextlib.suppress(Conflict):
                Repository(self.store).save(aggregate)
        return RegimeReading(regime.value, True, volatility)

    def recent_pnl(self) -> Decimal:
        closed = [t for t in self.trades.history() if t.closed_at and t.realized_pnl is not None]
        closed.sort(key=lambda t: t.closed_at or t.opened_at, reverse=True)
        return sum((t.realized_pnl or Decimal(0) for t in closed[:RECENT_TRADES]), Decimal(0))

    def agent(self) -> SizingAgent | None:
        return self._get(SizingAgent, SIZING_AGENT_ID)

    def _get(self, cls: type[T], aggregate_id: UUID) -> T | None:
        return Repository(self.store).find(cls, aggregate_id)
