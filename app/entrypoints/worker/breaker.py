"""The breaker duty: the equity feed and the drawdown breaker, on a thread of its own."""

from __future__ import annotations

import logging
import threading

from adapters.notify import NotificationWaiter
from adapters.paper.tables import MARKS_CHANNEL
from app.bootstrap import Core
from app.processes.drawdown_breaker import Poll
from domain.drawdown import Transition
from domain.venue import ExchangePort

log = logging.getLogger(__name__)

# The longest the loop waits for a mark before it looks at its stop event again: a stop is
# noticed within this, whatever the equity interval (60 s intervals made stops wait 60 s).
STOP_CHECK = 0.25  # seconds


class BreakerLoop:
    """The equity feed and the drawdown breaker, on a venue client and a listener of their
    own: a reading every ``equity_interval`` and at once on each paper mark move (a stop is
    noticed within ``STOP_CHECK`` seconds, whatever the interval); after a hard breach it
    flattens at once (the main loop would too: the flattener's lock per
    activation lets one act and the other find the account flat)."""

    def __init__(self, core: Core, venue: ExchangePort | None = None) -> None:
        """``venue``: the breaker's own client (default: a new one of the core's venue)."""
        self.core = core
        venue = venue or core.new_venue()
        self.breaker = core.drawdown_breaker(venue)
        self.flattener = core.flattener(
            progress=lambda line: log.warning("flattener: %s", line), venue=venue
        )
        self._last = float("-inf")
        self.readings = 0  # polls taken (each a reading, and its re-read if held)

    def run(self, stop: threading.Event) -> None:
        interval = self.core.settings.equity_interval
        clock = self.core.clock
        waiter = NotificationWaiter(self.core.address, MARKS_CHANNEL)
        # Listen before the first reading: a mark moved after that reading's marks were read
        # is then heard (a NOTIFY reaches only sessions already listening), not left to the
        # next poll, a whole equity interval later.
        waiter.subscribe()
        backoff = interval
        try:
            pushed = False
            while not stop.is_set():
                try:
                    due = clock.monotonic() - self._last >= interval
                    if due or pushed:
                        self._last = clock.monotonic()
                        self.read("poll" if due else "push")
                    backoff = interval
                except Exception:
                    log.exception("drawdown breaker failed; retrying in %.1fs", backoff)
                    stop.wait(backoff)
                    backoff = min(backoff * 2, 30.0)
                    continue
                remaining = max(0.0, self._last + interval - clock.monotonic())
                # Any payload is a reason to read, SUBSCRIBED too (a listener opened anew
                # missed what moved while it was gone).
                pushed = bool(waiter(min(remaining, STOP_CHECK)))
        finally:
            waiter.close()

    def read(self, trigger: str) -> Poll:
        """One reading (and its re-read, if held); a hard breach is flattened at once."""
        poll = self.breaker.poll(trigger)
        self.readings += 1
        last = poll.last
        if last is not None and last.transition is Transition.HARD_BREACH:
            self.flattener.run()
        return poll
