"""The reconciliation duty: the venue's positions and orders against the log's trades."""

from __future__ import annotations

import logging
from typing import Protocol

from app.bootstrap import Core
from app.processes.reconciliation import ReconcileReport
from domain.venue import VenueError

log = logging.getLogger(__name__)


class Reconciles(Protocol):
    """What the duty needs of the reconciler (app.processes.reconciliation.Reconciler)."""

    def run(self) -> ReconcileReport: ...


class Reconciliation:
    """On start, then every ``reconcile_interval`` seconds of the core's clock. A venue that
    cannot be read is a missed round (logged), not a failure of the duty."""

    def __init__(self, core: Core, reconciler: Reconciles) -> None:
        self.core = core
        self.reconciler = reconciler
        self._last = float("-inf")

    def run_once(self) -> None:
        if self.core.clock.monotonic() - self._last < self.core.settings.reconcile_interval:
            return
        self._last = self.core.clock.monotonic()
        try:
            report = self.reconciler.run()
        except VenueError as e:
            log.warning("reconciliation skipped, venue unavailable: %s", e)
            return
        if report.adopted or report.closed_external or report.orders_resolved:
            log.warning(
                "reconciliation: %d adopted, %d closed as external, %d order(s) resolved",
                len(report.adopted),
                len(report.closed_external),
                report.orders_resolved,
            )
