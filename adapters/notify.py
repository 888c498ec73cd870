"""Waits for the event store's NOTIFY, so consumers react within milliseconds.

A lost notification only delays a consumer until its next poll: callers pass a timeout and
catch up whether or not a notification came.

PostgreSQL delivers a NOTIFY only to sessions that were already listening when it was
committed. So a consumer must LISTEN *before* it reads (``subscribe``), and must read again
whenever the listener had to be opened anew (its old session, and what was sent meanwhile,
are gone): the call then returns at once with ``SUBSCRIBED`` among the payloads.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import psycopg
from psycopg import sql

from adapters.database import DatabaseAddress
from adapters.errors import StoreUnavailable
from adapters.eventstore import NOTIFY_CHANNEL

log = logging.getLogger(__name__)

# The payload a call returns when it had to open the listener: anything sent before that
# was not heard, so the caller reads now instead of at its next poll. No channel's sender
# uses it (symbols and table names never start with a NUL).
SUBSCRIBED = "\x00subscribed"


class NotificationWaiter:
    def __init__(self, address: DatabaseAddress, channel: str = NOTIFY_CHANNEL) -> None:
        self.address = address
        self.channel = channel
        self._conn: psycopg.Connection[Any] | None = None

    def subscribe(self) -> bool:
        """LISTEN now, before the caller's first read, so a notification committed after
        that read is heard. False when the store cannot be reached: the next call retries
        (and then returns ``SUBSCRIBED`` at once)."""
        try:
            self._connection()
        except (psycopg.Error, OSError, StoreUnavailable):
            log.debug("notification listener could not subscribe", exc_info=True)
            self.close()
            return False
        return True

    def __call__(self, timeout: float) -> set[str]:
        """Return when a notification arrives or ``timeout`` seconds pass, whichever is first,
        with the payloads heard (every notification already queued is taken, so a burst
        wakes the caller once). Returns ``{SUBSCRIBED}`` at once when the listener had to be
        opened (first use without ``subscribe``, or after its connection was lost)."""
        deadline = time.monotonic() + timeout
        heard: set[str] = set()
        try:
            if self._conn is None or self._conn.closed:
                self._connection()
                return {SUBSCRIBED}
            conn = self._conn
            for notify in conn.notifies(timeout=timeout, stop_after=1):
                heard.add(notify.payload)
            # Take whatever else is already queued, without waiting.
            for notify in conn.notifies(timeout=0):
                heard.add(notify.payload)
        except (psycopg.Error, OSError, StoreUnavailable):
            log.debug("notification listener lost its connection", exc_info=True)
            self.close()
            # Without a listener, sleep out the poll interval: the caller polls anyway.
            time.sleep(max(deadline - time.monotonic(), 0))
        return heard

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            self.close()
            conn = self.address.connect(autocommit=True)
            try:
                conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
            except BaseException:
                conn.close()
                raise
            self._conn = conn
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None
