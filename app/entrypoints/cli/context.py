"""Per-invocation state: global options and the lazily built core."""

from __future__ import annotations

import getpass
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import typer

from adapters.answer_deadline import answer_deadline, silent_since
from adapters.clock import WALL, Clock
from adapters.database import shown_and_trace
from app.bootstrap import COMMAND_POOL_SIZE, READ_MODEL_LOCK_WAIT, Core, Schema, bootstrap
from app.config import Settings

log = logging.getLogger(__name__)

# Seconds the catch-up after a command waits for the store's answers (each statement at
# least adapters.answer_deadline.LAST_WORD_SECONDS): a best effort, which the worker redoes.
CLOSE_CATCH_UP_ANSWER = 10.0


@dataclass
class CliState:
    database_url: str | None = None
    home: Path | None = None
    exchange: str | None = None
    # False for read commands: they leave every projection and process manager alone.
    catch_up_on_close: bool = True
    _core: Core | None = field(default=None, repr=False)
    _started: float = field(default_factory=time.monotonic, repr=False)

    def settings(self) -> Settings:
        overrides: dict[str, object] = {}
        if self.database_url is not None:
            overrides["database_url"] = self.database_url
        if self.home is not None:
            overrides["home"] = self.home
        if self.exchange is not None:
            overrides["exchange"] = self.exchange
        return Settings(**overrides)  # type: ignore[arg-type]

    def core(
        self,
        schema: Schema = Schema.AUTO,
        *,
        pool_size: int = COMMAND_POOL_SIZE,
        clock: Clock = WALL,
        settings: Settings | None = None,
    ) -> Core:
        """The core, built on first use (``pool_size``: see app.bootstrap) on ``clock`` and
        ``settings`` (default: the environment's, with the global options)."""
        if self._core is None:
            core = bootstrap(
                settings or self.settings(), schema=schema, pool_size=pool_size, clock=clock
            )
            try:
                core.commands.ensure_initialised()
            except BaseException:
                core.close()
                raise
            self._core = core
        return self._core

    def current(self) -> Core:
        """The core for a command that reads read models it first brings to the head: one
        catch-up now, bounded by READ_MODEL_LOCK_WAIT (a read model another transaction
        holds is read as it stands, with a warning line), and none again on close."""
        core = self.core()
        self.catch_up_on_close = False  # first: a catch-up that fails is not tried again
        core.runner.catch_up(lock_wait=READ_MODEL_LOCK_WAIT)
        return core

    def reading(self) -> Core:
        """The core for a read command: it reads views (or aggregates) and runs no
        projection or process manager, not even on close, so one that cannot apply an
        event never breaks a read."""
        self.catch_up_on_close = False
        return self.core()

    def close(self) -> None:
        if self._core is not None:
            # Leave the read models at the head after every command that wrote, so they are
            # current even when no worker runs. Best effort: the command already succeeded,
            # and a read model failing on an event is isolated and recorded by the runner.
            # Not after the store went silent during the command: its answer is out, and
            # the catch-up would only spend the operator's time on a server not answering.
            if self.catch_up_on_close and not silent_since(self._started):
                try:
                    # Bounded too, should the store go silent now.
                    with answer_deadline(CLOSE_CATCH_UP_ANSWER):
                        self._core.runner.catch_up(lock_wait=READ_MODEL_LOCK_WAIT)
                except Exception as e:  # reported by `projections status`; never fatal here
                    shown, trace = shown_and_trace(e)
                    log.warning(
                        "read models not caught up after the command: %s", shown, exc_info=trace
                    )
            self._core.close()
            self._core = None


def state(ctx: typer.Context) -> CliState:
    obj = ctx.find_root().obj
    assert isinstance(obj, CliState)
    return obj


def default_actor() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
