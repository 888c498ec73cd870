"""The signals duty: the signal engine's step on each new bar."""

from __future__ import annotations

import logging
from typing import Protocol

from app.commands.executor import Execution
from domain.errors import InvalidCommand
from domain.venue import VenueError

log = logging.getLogger(__name__)


class Steps(Protocol):
    """What the duty needs of the signal engine (app.processes.signal_engine)."""

    def step(self) -> list[Execution]: ...


class SignalTrading:
    """One step of ``engine``. A venue that cannot be read, or a rule that refuses its
    input, skips a bar (logged), not the duty."""

    def __init__(self, engine: Steps) -> None:
        self.engine = engine

    def run_once(self) -> None:
        try:
            for execution in self.engine.step():
                log.warning("signal trade %s: %s", execution.outcome.value, execution.reason)
        except (VenueError, InvalidCommand) as e:
            log.warning("signal bar skipped: %s", e)
