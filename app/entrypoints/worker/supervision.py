"""The emergency supervision duty: while the latch is on, the account is kept flat."""

from __future__ import annotations

import logging
from collections.abc import Callable

from app.bootstrap import Core
from app.processes.flattener import FlattenReport

log = logging.getLogger(__name__)


class EmergencySupervision:
    """Read the Emergency aggregate (not a view, so no read model can delay it) and, while
    it is active, flatten: at once if it was never flattened, every ``retry_interval``
    seconds while not flat, every ``verify_interval`` once flat (a position can appear from
    outside). Seconds are the core's clock."""

    def __init__(
        self,
        core: Core,
        flatten: Callable[[], FlattenReport | None],
        *,
        retry_interval: float,
        verify_interval: float,
    ) -> None:
        self.core = core
        self.flatten = flatten
        self.retry_interval = retry_interval
        self.verify_interval = verify_interval
        self._last = float("-inf")

    def run_once(self) -> None:
        emergency = self.core.commands.load_emergency()
        if emergency is None or not emergency.active:
            return
        since = self.core.clock.monotonic() - self._last
        due = self.verify_interval if emergency.flat else self.retry_interval
        if emergency.flat is None or since >= due:
            self._last = self.core.clock.monotonic()
            report = self.flatten()
            if report is not None and not report.flat:
                log.error(
                    "EMERGENCY ACTIVE AND ACCOUNT NOT FLAT: %s; retrying every %.0fs",
                    report.left(),
                    self.retry_interval,
                )
