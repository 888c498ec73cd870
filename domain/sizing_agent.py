"""The sizing agent's Q-table as an aggregate (P0-05): every learning step is an event, so the
table survives restarts, can be replayed to any instant, and an audit can say what each
closed trade taught it. Snapshots keep loading it fast.

A trade teaches the table once: a process manager that replays an event it already handled
finds the trade recorded here and changes nothing.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.domain import event

from domain.base import TradecoreAggregate, require_aware
from domain.ids import SIZING_AGENT_ID
from domain.sizing import ACTIONS, SizingInputInvalid, updated_value


class SizingAgent(TradecoreAggregate):
    class Created(TradecoreAggregate.Created):
        actions: int

    class Learned(TradecoreAggregate.Event):
        trade_id: UUID
        state_key: str
        action_index: int
        reward: float
        old_value: float
        new_value: float

    @staticmethod
    def create_id(*_: Any, **__: Any) -> UUID:
        return SIZING_AGENT_ID

    @event(Created)
    def __init__(self, *, actions: int) -> None:
        self.actions = actions
        self.table: dict[str, list[float]] = {}
        self.learned: dict[str, int] = {}  # trade id -> action learned from it

    @classmethod
    def new(cls, *, timestamp: datetime) -> SizingAgent:
        agent = cls._create(cls.Created, actions=len(ACTIONS), timestamp=require_aware(timestamp))
        return agent

    def learn(
        self,
        *,
        trade_id: UUID,
        state_key: str,
        action_index: int,
        reward: float,
        timestamp: datetime,
    ) -> bool:
        """One Q-learning step from a closed trade; False if this trade already taught it."""
        if str(trade_id) in self.learned:
            return False
        if not 0 <= action_index < self.actions:
            raise SizingInputInvalid(f"action {action_index} is not on the grid")
        if not math.isfinite(reward):
            raise SizingInputInvalid("reward must be finite")
        old = self.table.get(state_key, [0.0] * self.actions)[action_index]
        self._learned(
            trade_id=trade_id,
            state_key=state_key,
            action_index=action_index,
            reward=reward,
            old_value=old,
            new_value=updated_value(old, reward),
            timestamp=require_aware(timestamp),
        )
        return True

    @event(Learned)
    def _learned(
        self,
        *,
        trade_id: UUID,
        state_key: str,
        action_index: int,
        reward: float,
        old_value: float,
        new_value: float,
        timestamp: datetime,
    ) -> None:
        row = list(self.table.get(state_key, [0.0] * self.actions))
        row[action_index] = new_value
        self.table[state_key] = row
        self.learned[str(trade_id)] = action_index
