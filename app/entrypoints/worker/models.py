"""The model duties: the consumers of the promoted model kept in sync, and the model watch."""

from __future__ import annotations

import logging

from app.bootstrap import Core
from app.processes.model_consumers import ConsumerRuntime, ModelWatch

log = logging.getLogger(__name__)


class ConsumerSync:
    """Each consumer loads the promoted model it does not run yet (or drops a retired one)."""

    def __init__(self, consumers: list[ConsumerRuntime]) -> None:
        self.consumers = consumers

    def run_once(self) -> None:
        for consumer in self.consumers:
            consumer.sync()


class WatchModels:
    """The model watch every ``interval`` seconds of the core's clock; a failed watch is
    logged and waits for its next turn."""

    def __init__(self, core: Core, watch: ModelWatch, interval: float = 30.0) -> None:
        self.core = core
        self.watch = watch
        self.interval = interval
        self._last = float("-inf")

    def run_once(self) -> None:
        if self.core.clock.monotonic() - self._last < self.interval:
            return
        self._last = self.core.clock.monotonic()
        try:
            self.watch.run_once()
        except Exception:
            log.warning("model watch failed", exc_info=True)
