"""The watchdogs: over the account's worker lock, and (on the embedded default) over the
server itself."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from adapters.locks import SessionLock
from app.bootstrap import Core
from app.processes.server_watch import ServerWatch

log = logging.getLogger(__name__)


class LockWatchdog:
    """Stop the active worker (set ``active``) when asked to stop, or the moment its session
    no longer holds ``lock`` (a standby may have taken over)."""

    def __init__(
        self, lock: SessionLock, stop: threading.Event, active: threading.Event, every: float
    ) -> None:
        """``every``: seconds between checks of the lock."""
        self.lock = lock
        self.stop = stop
        self.active = active
        self.every = every

    def check(self) -> bool:
        """One check, without waiting: True (and ``active`` set) if the worker must stop."""
        if self.stop.is_set() or self.active.is_set():
            self.active.set()
            return True
        if not self.lock.still_held():
            log.error("WORKER LOCK LOST: stopping this worker; standing by again")
            self.active.set()
            return True
        return False

    def run(self) -> None:
        """Check every ``every`` seconds until the worker stops (or must)."""
        while not self.active.is_set():
            if self.stop.wait(self.every) or self.check():
                self.active.set()
                return


def watch_server(
    core: Core, on_down: Callable[[], object], stop: threading.Event
) -> threading.Thread | None:
    """On the embedded default, a started thread that restarts the server if it dies
    (``on_down`` is told, whether this process is active or standing by); None when the
    store is someone else's server."""
    if core.embedded is None:
        return None
    watch = ServerWatch(core.embedded, on_down=on_down)
    thread = threading.Thread(
        target=watch.run, args=(stop,), name="embedded-server-watch", daemon=True
    )
    thread.start()
    return thread
