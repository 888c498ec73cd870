"""The worker: one process that runs every projection and process manager for the account.

Today it keeps the read models at the head and supervises the emergency stop: on start it
catches up on any activation it has not seen to a flat account, and while the latch is on it
keeps the account flat (retrying an incomplete flatten at a lower rate, and re-checking a
flat one now and then, since a position can appear from outside).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from app.bootstrap import Core
from app.flattener import FlattenReport

log = logging.getLogger(__name__)


class Worker:
    def __init__(
        self, core: Core, *, retry_interval: float = 5.0, verify_interval: float = 10.0
    ) -> None:
        self.core = core
        self.retry_interval = retry_interval
        self.verify_interval = verify_interval
        self._last_flatten = float("-inf")

    def run(self, stop: threading.Event) -> None:
        waiter = self.core.waiter()
        flattener = self.core.flattener(progress=lambda line: log.warning("flattener: %s", line))
        backoff = self.core.settings.poll_interval
        while not stop.is_set():
            try:
                self.core.runner.catch_up()
                self._supervise_emergency(flattener.run)
                backoff = self.core.settings.poll_interval
            except Exception:  # a worker logs, backs off and carries on
                log.exception("worker iteration failed; retrying in %.1fs", backoff)
                stop.wait(backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            waiter(self.core.settings.poll_interval)

    def _supervise_emergency(self, flatten: Callable[[], FlattenReport | None]) -> None:
        emergency = self.core.commands.load_emergency()
        if emergency is None or not emergency.active:
            return
        since = time.monotonic() - self._last_flatten
        due = self.verify_interval if emergency.flat else self.retry_interval
        if emergency.flat is None or since >= due:
            self._last_flatten = time.monotonic()
            report = flatten()
            if report is not None and not report.flat:
                log.error(
                    "EMERGENCY ACTIVE AND ACCOUNT NOT FLAT: %d position(s), %d order(s) left; "
                    "retrying every %.0fs",
                    len(report.remaining_positions),
                    report.remaining_orders,
                    self.retry_interval,
                )
