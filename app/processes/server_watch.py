"""The worker's watch over the embedded PostgreSQL it depends on.

With no database URL, tradecore runs its own server (adapters.embedded_pg), started by
whichever command needs it first. Nothing else restarts it: if it dies while the worker
runs, the flatten and the breaker stall until someone happens to run a command. So the
worker checks it every ``interval`` and starts it again at once; a server that cannot be
started is said loudly, once per outage, and tried again each interval.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

from adapters.errors import EmbeddedServerRefused, StoreUnavailable

log = logging.getLogger(__name__)


class Server(Protocol):
    """What the watch needs of adapters.embedded_pg.EmbeddedPostgres."""

    def is_running(self) -> bool: ...

    def ensure_running(self) -> object: ...


class ServerWatch:
    """Keeps ``server`` running while the worker runs. ``on_down`` is called once per outage,
    when the watch first finds the server down (the worker counts the outage); ``on_back``
    with the seconds it was seen down, once it answers again."""

    def __init__(
        self,
        server: Server,
        *,
        interval: float = 1.0,
        on_down: Callable[[], object] = lambda: None,
        on_back: Callable[[float], None] = lambda _: None,
    ) -> None:
        self.server = server
        self.interval = interval
        self.on_down = on_down
        self.on_back = on_back
        self.restarts = 0
        self._down_since: float | None = None
        self._told = False

    def run(self, stop: threading.Event) -> None:
        """Check every ``interval`` until ``stop`` is set; never raises."""
        while not stop.wait(self.interval):
            try:
                self.check()
            except Exception:  # a watch that dies is worse than one that logs
                log.exception("embedded server watch failed; checking again")

    def check(self) -> bool:
        """One round: True when the server answers (after a restart if it had to)."""
        if self.server.is_running():
            self._back()
            return True
        if self._down_since is None:
            self._down_since = time.monotonic()
            log.error("EMBEDDED SERVER NOT ANSWERING: restarting it if it is down")
            self.on_down()
        try:
            self.server.ensure_running()
        except (StoreUnavailable, EmbeddedServerRefused) as e:
            if not self._told:
                self._told = True
                log.critical(
                    "EMBEDDED SERVER NOT ANSWERING AND CANNOT BE RESTARTED: %s; the worker cannot "
                    "flatten or read equity until it is back (retrying every %.0fs)",
                    e,
                    self.interval,
                )
            return False
        self.restarts += 1
        self._back()
        return True

    def _back(self) -> None:
        if self._down_since is None:
            return
        down = time.monotonic() - self._down_since
        self._down_since, self._told = None, False
        log.warning("embedded server answering again after %.1fs", down)
        self.on_back(down)
