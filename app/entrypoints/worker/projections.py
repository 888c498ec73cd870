"""The projections duty: every read model and process manager caught up to the log's head."""

from __future__ import annotations

import time

from app.bootstrap import READ_MODEL_LOCK_WAIT, Core
from app.entrypoints.worker.status import Outages


class CatchUp:
    """Run the projection runner's catch-up; the first one after an outage counts it.

    Its engine fails fast when the store is down, which is how the worker notices an outage
    (the event store's own pool waits for a connection). A read model that cannot apply an
    event does not fail it, nor does one whose rows another transaction holds for longer
    than ``READ_MODEL_LOCK_WAIT``: the runner passes over that one and the others go on."""

    def __init__(self, core: Core, outages: Outages) -> None:
        self.core = core
        self.outages = outages

    def run_once(self) -> None:
        began = time.monotonic()
        # Bounded: a read model whose rows another transaction holds waits for a later
        # round, and the duties after this one (the emergency supervision) run meanwhile.
        applied = self.core.runner.catch_up(lock_wait=READ_MODEL_LOCK_WAIT)
        outage = self.outages.started
        # An outage the server watch saw begin during this catch-up is not over yet.
        if outage is not None and outage < began:
            self.outages.recovered(applied, time.monotonic() - began)
