"""The ProjectionSkip aggregate: an operator's recorded decision that one read model or
process manager passes over one event of the log it cannot apply (a poison event).

The log is immutable, so an event a consumer cannot apply would stop it at that position for
good; a rebuild replays the same event and stops again. The way out is itself an event: who
decided, why, which consumer, which event (its notification id and topic) and the error it
met. Consumers honour it on their next pass, rebuilds and ``verify`` replay with it.

One aggregate per (consumer, event), with an id derived from both: recording the same skip
twice collides on version 1 instead of recording two, and a skip never contends with the
versions of the safety aggregates (Policy, Emergency) the way an event on them would.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID, uuid5

from eventsourcing.domain import event

from domain.base import TradecoreAggregate, require_aware, require_text
from domain.errors import InvalidCommand
from domain.ids import NAMESPACE

MAX_ERROR = 2000


def skip_id(consumer: str, notification_id: int) -> UUID:
    """The id of the skip of event ``notification_id`` by ``consumer``."""
    return uuid5(NAMESPACE, f"tradecore/projection-skip/{consumer}/{notification_id}")


class ProjectionSkip(TradecoreAggregate):
    @staticmethod
    def create_id(*, consumer: str, notification_id: int, **_: Any) -> UUID:
        return skip_id(consumer, notification_id)

    class Recorded(TradecoreAggregate.Created):
        consumer: str
        notification_id: int
        topic: str
        error: str
        reason: str
        actor: str

    @classmethod
    def record(
        cls,
        *,
        consumer: str,
        notification_id: int,
        topic: str,
        error: str,
        reason: str,
        actor: str,
        timestamp: datetime,
    ) -> ProjectionSkip:
        """A new skip. Raises InvalidCommand for an empty consumer, actor or reason, or an
        event id below 1."""
        if isinstance(notification_id, bool) or not isinstance(notification_id, int):
            raise InvalidCommand("the event must be a notification id (an integer)")
        if notification_id < 1:
            raise InvalidCommand(f"the event must be a notification id >= 1, got {notification_id}")
        return cls(
            consumer=require_text(consumer, "consumer"),
            notification_id=notification_id,
            topic=require_text(topic, "topic"),
            error=(error or "")[:MAX_ERROR],
            reason=require_text(reason, "reason"),
            actor=require_text(actor, "actor"),
            timestamp=require_aware(timestamp),
        )

    @event(Recorded)
    def __init__(
        self,
        *,
        consumer: str,
        notification_id: int,
        topic: str,
        error: str,
        reason: str,
        actor: str,
        timestamp: datetime,
    ) -> None:
        self.consumer = consumer
        self.notification_id = notification_id
        self.topic = topic
        self.error = error
        self.reason = reason
        self.actor = actor
        self.recorded_at = timestamp
