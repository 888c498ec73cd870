"""The failure boundary around one of the worker's duties: its own backoff, on the one clock."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from adapters.database import shown_and_trace

log = logging.getLogger(__name__)


class Duty:
    """One of the worker's jobs, failing on its own: a failure is logged and the duty waits
    out a backoff of its own (``backoff`` seconds, doubling up to ``cap``) while the other
    duties go on. An outage of the store is the worker's to handle, not a duty's."""

    def __init__(
        self,
        name: str,
        action: Callable[[], None],
        *,
        backoff: float,
        cap: float = 30.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.monotonic = monotonic
        self.action = action
        self.base = backoff
        self.cap = cap
        self._delay = backoff
        self._next = float("-inf")

    def due(self) -> bool:
        return self.monotonic() >= self._next

    def failed(self, error: Exception) -> None:
        # A connection lost with the store (which answers again by now, or the round would
        # have stopped as an outage) is a known cause: one line. Anything else, its traceback.
        shown, trace = shown_and_trace(error)
        log.error(
            "worker duty %r failed (%s: %s); the others go on, retrying it in %.1fs",
            self.name,
            type(error).__name__,
            shown,
            self._delay,
            exc_info=trace,
        )
        self._next = self.monotonic() + self._delay
        self._delay = min(self._delay * 2, self.cap)

    def succeeded(self) -> None:
        self._delay = self.base
