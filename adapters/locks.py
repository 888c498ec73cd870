"""Postgres advisory locks: one holder at a time, across processes and machines.

A session-level lock lives as long as its connection, so a holder killed with SIGKILL
releases it the moment the server notices the connection is gone.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from uuid import UUID

import psycopg
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import OperationalError

from adapters.database import DatabaseAddress, lost_store


def lock_key(name: UUID) -> int:
    """A signed 64-bit advisory-lock key derived from a UUID."""
    return int.from_bytes(name.bytes[:8], "big", signed=True)


@contextmanager
def advisory_lock(
    address: DatabaseAddress, name: UUID, *, timeout: float, poll: float = 0.02
) -> Iterator[bool]:
    """Hold the lock for ``name`` inside the block; yields False if ``timeout`` passed first.
    Raises StoreUnavailable when the server is lost while the lock is being taken."""
    conn = address.connect(autocommit=True)
    try:
        key = lock_key(name)
        deadline = time.monotonic() + timeout
        while True:
            try:
                got = conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
            except psycopg.Error as e:
                # The server went away between connecting and asking: a lost store, which
                # callers retry, not an unexpected failure.
                lost = lost_store(e)
                if lost is None:
                    raise
                raise lost from e
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


def bound_lock_wait(conn: Connection, seconds: float) -> None:
    """End every lock wait of ``conn``'s current transaction after ``seconds`` (the waiter
    gets SQLSTATE 55P03, see :func:`lock_wait_ended`) instead of waiting as long as the
    holder holds: a holder can be a stopped process the server still counts as alive."""
    conn.execute(
        text("SELECT set_config('lock_timeout', :ms, true)"),
        {"ms": f"{max(1, int(seconds * 1000))}ms"},
    )


def lock_wait_ended(error: BaseException) -> bool:
    """Whether ``error`` is a lock wait ended by :func:`bound_lock_wait`'s bound."""
    return isinstance(error, OperationalError) and isinstance(
        error.orig, psycopg.errors.LockNotAvailable
    )


@contextmanager
def order_flow_lock(
    engine: Engine, name: UUID, *, exclusive: bool, timeout: float
) -> Iterator[bool]:
    """A reader-writer lock held for the block's transaction; yields False on ``timeout``.

    Order senders hold it shared from their gate check until their order is answered; the
    flattener takes it exclusively (a barrier) before it sweeps. Postgres queues a new shared
    request behind a waiting exclusive one, so a stream of senders cannot starve the barrier.
    Transaction-scoped: it goes with the transaction, whatever happens to the holder.
    """
    function = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
    with engine.connect() as conn, conn.begin():
        bound_lock_wait(conn, timeout)
        try:
            conn.execute(text(f"SELECT {function}(:key)"), {"key": lock_key(name)})
            acquired = True
        except OperationalError as e:
            if not lock_wait_ended(e):
                raise
            acquired = False
        yield acquired


class SessionLock:
    """A session-level advisory lock whose holder can ask whether it still holds it: the
    lock goes with its connection, and a connection can be lost (a server restart, a
    network cut, an administrator's pg_terminate_backend) while the process lives on."""

    def __init__(self, address: DatabaseAddress, name: UUID) -> None:
        self.address = address
        self.key = lock_key(name)
        self._conn: psycopg.Connection[tuple[Any, ...]] | None = None

    def try_acquire(self) -> bool:
        conn = self.address.connect(autocommit=True)
        got = conn.execute("SELECT pg_try_advisory_lock(%s)", (self.key,)).fetchone()
        if got and got[0]:
            self._conn = conn
            return True
        conn.close()
        return False

    def still_held(self) -> bool:
        """Ask the server: is this session alive and still holding the lock?"""
        if self._conn is None:
            return False
        try:
            # A bigint key is shown as two unsigned halves (objsubid 1).
            unsigned = self.key & 0xFFFFFFFFFFFFFFFF
            row = self._conn.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                "AND pid = pg_backend_pid() AND objsubid = 1 "
                "AND classid::bigint = %s AND objid::bigint = %s",
                (unsigned >> 32, unsigned & 0xFFFFFFFF),
            ).fetchone()
        except psycopg.Error:
            return False
        return bool(row and row[0])

    def release(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.close()  # releases the lock
            self._conn = None
