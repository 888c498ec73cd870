"""The worker's row in ``worker_status``: its start, its heartbeat and its outages (each
outage and the catch-up after it, in events and seconds)."""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime
from decimal import Decimal

from sqlalchemy import update
from sqlalchemy.dialects.postgresql import insert

from adapters.errors import StoreUnavailable
from app.bootstrap import Core
from projections.tables import worker_status

log = logging.getLogger(__name__)
WORKER_NAME = "worker"


def record_start(core: Core) -> None:
    """Mark the runner started and stamp ``started_at`` and ``heartbeat_at`` with now."""
    now = core.clock()
    core.runner.mark_started()
    with core.engine.begin() as conn:
        conn.execute(
            insert(worker_status)
            .values(name=WORKER_NAME, started_at=now, heartbeat_at=now)
            .on_conflict_do_update(
                index_elements=["name"], set_={"started_at": now, "heartbeat_at": now}
            )
        )


class Heartbeat:
    """The heartbeat duty: ``heartbeat_at`` set to now at most every ``interval`` seconds
    (of the core's clock)."""

    def __init__(self, core: Core, interval: float) -> None:
        self.core = core
        self.interval = interval
        self._last = float("-inf")

    def run_once(self) -> None:
        if self.core.clock.monotonic() - self._last < self.interval:
            return
        self._last = self.core.clock.monotonic()
        # One statement: no transaction to begin and commit around it.
        with self.core.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(
                update(worker_status)
                .where(worker_status.c.name == WORKER_NAME)
                .values(heartbeat_at=self.core.clock())
            )


class Outages:
    """Outage bookkeeping, shared by the main loop and the server watch thread: an outage is
    noted once when it begins and counted once, by the catch-up that ends it. Durations are
    the machine's monotonic seconds (how long the store was really away)."""

    def __init__(self, core: Core) -> None:
        self.core = core
        self.started: float | None = None
        self._at: datetime | None = None
        self._lock = threading.Lock()

    def store_down(self, error: Exception) -> bool:
        """Is ``error`` an outage? Then it is noted (once per outage) and True."""
        try:
            self.core.address.check()
        except StoreUnavailable as unreachable:
            if self.note():
                log.error("store unavailable, retrying with backoff: %s (%s)", unreachable, error)
            return True
        return False

    def note(self) -> bool:
        """Note the start of an outage. Returns whether it is a new one."""
        with self._lock:
            if self.started is not None:
                return False
            self.started = time.monotonic()
            self._at = self.core.clock()
            return True

    def recovered(self, applied: int, seconds: float) -> None:
        """Count the outage that a catch-up of ``applied`` events in ``seconds`` ended."""
        assert self.started is not None
        outage = time.monotonic() - self.started - seconds
        log.warning(
            "store back after %.1fs; caught up %d event(s) in %.3fs", outage, applied, seconds
        )
        with self.core.engine.begin() as conn:
            conn.execute(
                update(worker_status)
                .where(worker_status.c.name == WORKER_NAME)
                .values(
                    outages=worker_status.c.outages + 1,
                    last_outage_at=self._at,
                    last_outage_seconds=Decimal(f"{outage:.3f}"),
                    last_catch_up_events=applied,
                    last_catch_up_seconds=Decimal(f"{seconds:.3f}"),
                )
            )
        with self._lock:
            self.started = None
