"""The process manager that teaches the sizing agent from closed trades (P0-05).

It runs with the read models (tracked like them, so it resumes where it stopped and never
skips a close) and writes ``SizingAgent.Learned`` events. The agent records which trades
taught it, so a close handled twice (a crash between the event and the tracking) changes
the table once.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Self
from uuid import UUID

from eventsourcing.domain import DomainEventProtocol
from sqlalchemy import Connection, Table

from adapters.eventstore import TradecoreEventStore
from adapters.repository import WRITER, Repository
from domain.ids import SIZING_AGENT_ID
from domain.sizing import reward
from domain.sizing_agent import SizingAgent
from domain.trade import Trade
from projections.runner import Projection

log = logging.getLogger(__name__)


class SizingLearner(Projection):
    default_name = "sizing_learner"
    handles = (Trade.Closed,)

    def __init__(
        self,
        store: TradecoreEventStore,
        tables: Mapping[str, Table] | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(tables, name)
        self.store = store

    @classmethod
    def default_tables(cls) -> dict[str, Table]:
        return {}  # its effect is events, not rows

    def renamed(self, suffix: str) -> Self:
        copy = type(self)(self.store, {}, name=self.name + suffix)
        copy.origin = self.origin
        return copy

    def apply(self, conn: Connection, event: DomainEventProtocol[UUID], position: int) -> None:
        e: Any = event
        repository = Repository(self.store)
        trade = repository.find(Trade, e.originator_id, version=e.originator_version)
        assert trade is not None, f"trade {e.originator_id} v{e.originator_version} not in the log"
        sizing = trade.sizing or {}
        action, state_key = sizing.get("action_index"), sizing.get("state_key")
        exposure = trade.entry_cost
        if action is None or state_key is None or exposure <= 0:
            return  # not sized by the agent (a fallback, an import, external) or never filled
        if not trade.exact:
            # Part of its exit was priced at a mark or the entry, not at a fill: the figure
            # is a guess, and a lesson from it would teach the agent the guess.
            log.info("sizing agent skips trade %s: its exit was not priced by fills", trade.id)
            return
        r = reward(e.realized_pnl, exposure)

        def attempt() -> None:
            # A conflict: another learner (a rebuild, a second worker) wrote first.
            agent = repository.find(SizingAgent, SIZING_AGENT_ID) or SizingAgent.new(
                timestamp=e.timestamp
            )
            if not agent.learn(
                trade_id=trade.id,
                state_key=str(state_key),
                action_index=int(action),
                reward=r,
                timestamp=e.timestamp,
            ):
                return
            repository.save(agent)
            log.info(
                "sizing agent learned from trade %s: reward %.4f in %s", trade.id, r, state_key
            )

        WRITER.run(attempt, what=f"the sizing agent's lesson of trade {trade.id}")
