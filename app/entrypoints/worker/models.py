"""The model duties: the consumers of the promoted model kept in sync, and the model watch."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, Protocol

log = logging.getLogger(__name__)


class Syncs(Protocol):
    """What the duty needs of a model consumer (app.processes.model_consumers)."""

    model: str

    def registry(self) -> Any: ...

    def follow(self, registry: Any) -> object: ...


class ConsumerSync:
    """Each consumer loads the promoted model it does not run yet (or drops a retired one).
    The registry of a model is loaded once a round for all the consumers that follow it."""

    def __init__(self, consumers: Sequence[Syncs]) -> None:
        self.consumers = consumers

    def run_once(self) -> None:
        loaded: dict[str, Any] = {}
        for consumer in self.consumers:
            if consumer.model not in loaded:
                loaded[consumer.model] = consumer.registry()
            consumer.follow(loaded[consumer.model])


class Watch(Protocol):
    """What the duty needs of the model watch (app.processes.model_consumers.ModelWatch)."""

    def run_once(self) -> None: ...


class WatchModels:
    """The model watch every ``interval`` seconds of ``monotonic`` (the core's clock's); a
    failed watch is logged and waits for its next turn."""

    def __init__(
        self, watch: Watch, monotonic: Callable[[], float], interval: float = 30.0
    ) -> None:
        self.monotonic = monotonic
        self.watch = watch
        self.interval = interval
        self._last = float("-inf")

    def run_once(self) -> None:
        if self.monotonic() - self._last < self.interval:
            return
        self._last = self.monotonic()
        try:
            self.watch.run_once()
        except Exception:
            log.warning("model watch failed", exc_info=True)
