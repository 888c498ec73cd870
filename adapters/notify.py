"""Waits for the event store's NOTIFY, so consumers react within milliseconds.

A lost notification only delays a consumer until its next poll: callers pass a timeout and
catch up whether or not a notification came.
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


class NotificationWaiter:
    def __init__(self, address: DatabaseAddress, channel: str = NOTIFY_CHANNEL) -> None:
        self.address = address
        self.channel = channel
        self._conn: psycopg.Connection[Any] | None = None

    def __call__(self, timeout: float) -> set[str]:
        """Return when a notification arrives or ``timeout`` seconds pass, whichever is first,
        with the payloads heard (every notification already queued is taken, so a burst
        wakes the caller once)."""
        deadline = time.monotonic() + timeout
        heard: set[str] = set()
        try:
            conn = self._connection()
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
            conn = self.address.connect(autocommit=True)
            conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
            self._conn = conn
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None
