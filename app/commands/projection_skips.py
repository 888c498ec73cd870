"""The recorded way out of a poison event: ``tradecore projections skip``.

An event a read model or process manager cannot apply stays in the log for good (the log is
immutable), so the consumer would stay at that position for good. The operator records a
``ProjectionSkip`` naming the consumer and the event; the runner passes over exactly that
event on the consumer's next pass (and on every rebuild and ``verify``, which list it).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import datetime

from eventsourcing.persistence import IntegrityError

from adapters.eventstore import PostgresLogReader
from app.commands.safety import SafetyCommands
from domain.errors import InvalidCommand
from domain.projection_skip import ProjectionSkip
from projections.runner import ProjectionRunner, Skip


class ProjectionSkips:
    """Application service for ProjectionSkip aggregates."""

    def __init__(
        self,
        runner: ProjectionRunner,
        reader: PostgresLogReader,
        commands: SafetyCommands,
        clock: Callable[[], datetime],
    ) -> None:
        self.runner = runner
        self.reader = reader
        self.commands = commands
        self.clock = clock

    def record(
        self,
        *,
        consumer: str,
        event_id: int,
        reason: str,
        actor: str,
        confirm: Callable[[str], None] = lambda _: None,
    ) -> tuple[Skip, bool]:
        """Record that ``consumer`` passes over event ``event_id``. Returns the skip and
        whether it is new (False: the same skip was already recorded; nothing is added).

        Raises InvalidCommand for an unknown consumer, an event not in the log, one the
        consumer does not handle or has already passed, or an empty reason or actor;
        StoreUnavailable when the store cannot be reached."""
        try:
            projection = self.runner.projection(consumer)
        except KeyError:
            known = ", ".join(sorted(p.name for p in self.runner.projections))
            raise InvalidCommand(f"no read model {consumer!r}; known: {known}") from None
        existing = self._existing(consumer, event_id)
        if existing is not None:
            return existing, False
        [position] = [p for p in self.runner.positions() if p.name == consumer]
        with self.runner.engine.connect() as conn:
            found = self.reader.by_ids(conn, [event_id])
        if not found:
            raise InvalidCommand(f"event {event_id} is not in the log (head {position.head})")
        topic = found[0][1].topic
        topics = projection.topics()
        if topics is not None and topic not in topics:
            raise InvalidCommand(f"{consumer} does not handle event {event_id} ({topic})")
        if event_id <= position.position:
            raise InvalidCommand(
                f"{consumer} has already passed event {event_id} (it is at {position.position})"
            )
        failing = position.failing_event_id == event_id
        skip = ProjectionSkip.record(
            consumer=consumer,
            notification_id=event_id,
            topic=topic,
            error=(position.last_error or "") if failing else "",
            reason=reason,
            actor=actor,
            timestamp=self.clock(),
        )
        confirm(
            f"make {consumer} pass over event {event_id} ({topic}) for good"
            + ("" if failing else f" (it is not the event {consumer} is failing on)")
        )
        # Recorded meanwhile by someone else (IntegrityError on version 1): the same decision.
        with contextlib.suppress(IntegrityError):
            self.commands.guard(lambda: self.commands.store.save(skip))
        found_skip = self._existing(consumer, event_id)
        assert found_skip is not None
        return found_skip, True

    def _existing(self, consumer: str, event_id: int) -> Skip | None:
        for skip in self.runner.recorded_skips():
            if skip.consumer == consumer and skip.event_id == event_id:
                return skip
        return None
