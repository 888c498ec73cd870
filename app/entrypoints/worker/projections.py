"""The projections duty: every read model and process manager caught up to the log's head."""

from __future__ import annotations

import time

from app.bootstrap import Core
from app.entrypoints.worker.status import Outages


class CatchUp:
    """Run the projection runner's catch-up; the first one after an outage counts it.

    Its engine fails fast when the store is down, which is how the worker notices an outage
    (the event store's own pool waits for a connection). A read model that cannot apply an
    event does not fail it: the runner isolates that one and the others go on."""

    def __init__(self, core: Core, outages: Outages) -> None:
        self.core = core
        self.outages = outages

    def run_once(self) -> None:
        began = time.monotonic()
        applied = self.core.runner.catch_up()
        outage = self.outages.started
        # An outage the server watch saw begin during this catch-up is not over yet.
        if outage is not None and outage < began:
            self.outages.recovered(applied, time.monotonic() - began)
