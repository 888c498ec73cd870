"""Postgres advisory locks: one holder at a time, across processes and machines.

A session-level lock lives as long as its connection, so a holder killed with SIGKILL
releases it the moment the server notices the connection is gone.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from contextlib import contextmanager
from uuid import UUID

import psycopg

from adapters.database import DatabaseAddress


def lock_key(name: UUID) -> int:
    """A signed 64-bit advisory-lock key derived from a UUID."""
    return int.from_bytes(name.bytes[:8], "big", signed=True)


@contextmanager
def advisory_lock(
    address: DatabaseAddress, name: UUID, *, timeout: float, poll: float = 0.02
) -> Iterator[bool]:
    """Hold the lock for ``name`` inside the block; yields False if ``timeout`` passed first."""
    conn = address.connect(autocommit=True)
    try:
        key = lock_key(name)
        deadline = time.monotonic() + timeout
        while True:
            got = conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
            if got and got[0]:
                yield True
                return
            if time.monotonic() >= deadline:
                yield False
                return
            time.sleep(poll)
    finally:
        with contextlib.suppress(psycopg.Error):
            conn.close()  # releases the lock
