"""How long a statement waits for the store's answer on a connection that is already open.

``connect_timeout`` bounds opening a connection, nothing after it. A server that stops
answering but keeps its sockets (a stopped or paging process, a disk that hangs its writes,
a paused VM), or a network that drops packets, leaves a statement on an open connection
waiting forever: the kernel still acknowledges what is sent, so neither TCP keepalives nor
``tcp_user_timeout`` notice. So every connection tradecore opens is an
:class:`AnswerBoundConnection`: a statement (with its commit, its pipeline sync, its pool
ping) waits at most :func:`answer_bound` seconds; past that its connection is closed and
``psycopg.OperationalError`` is raised, the error of a lost server, which every caller
already treats as "store unavailable" (``adapters.database.lost_store``: exit 4, retry,
fail closed). Whether the statement took effect is then unknown, exactly as when the server
is lost mid-statement.

The bound is ``ANSWER_TIMEOUT_SECONDS`` unless the thread runs under
:func:`answer_deadline`: then the time left to that deadline, but never under
``LAST_WORD_SECONDS``, so what a caller does once its deadline passed (recording that a
flatten is incomplete) still gets a short chance on a live server; once the store went
silent in that block, past the deadline, ``GIVEN_UP_SECONDS``, and no new or pooled
connection is waited for at all (:func:`given_up`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

import psycopg
from psycopg.abc import PQGen

# The longest one statement waits when no deadline is set: far above any statement
# tradecore makes on a live server (lock waits it sets itself end within 10 s; the largest
# import is one 64 MiB file), far below "forever".
ANSWER_TIMEOUT_SECONDS = 60.0
# The least a statement gets under a deadline that has passed or nearly passed.
LAST_WORD_SECONDS = 2.0
# ... once the store already went silent in that deadline's block: a live server answers
# a statement in milliseconds; a silent one is not waited for again.
GIVEN_UP_SECONDS = 0.5
# psycopg's own interval for checking Ctrl-C while it waits (psycopg.connection._WAIT_INTERVAL).
_CHECK_INTERVAL = 0.1

# The deadline (time.monotonic) and when its block began.
_deadline: ContextVar[tuple[float, float] | None] = ContextVar(
    "tradecore_store_answer_deadline", default=None
)
RV = TypeVar("RV")
# When a statement of this process last gave up on a silent store (time.monotonic), so that
# best-effort work after it (a closing catch-up, recording a conclusion nobody waits for)
# is not spent on connects to a server that is not answering.
_last_silence: float | None = None


def silent_since(moment: float) -> bool:
    """Whether any statement of this process gave up waiting for the store's answer after
    ``moment`` (time.monotonic)."""
    last = _last_silence
    return last is not None and last >= moment


@contextmanager
def answer_deadline(seconds: float) -> Iterator[None]:
    """Statements made in this block (in this thread, and in threads started with its
    context) wait for the store until ``seconds`` from now (time.monotonic), each at least
    ``LAST_WORD_SECONDS``. Nested blocks keep the earlier deadline."""
    now = time.monotonic()
    outer = _deadline.get()
    token = _deadline.set(
        (now + seconds, now) if outer is None else (min(outer[0], now + seconds), outer[1])
    )
    try:
        yield
    finally:
        _deadline.reset(token)


def answer_bound() -> float:
    """Seconds the next statement of this thread may wait for the store's answer."""
    deadline = _deadline.get()
    if deadline is None:
        return ANSWER_TIMEOUT_SECONDS
    at, began = deadline
    # Past the deadline a statement still gets its last word, unless the store already
    # went silent in this block: then waiting again would only add to the overrun.
    floor = GIVEN_UP_SECONDS if silent_since(began) else LAST_WORD_SECONDS
    return min(ANSWER_TIMEOUT_SECONDS, max(at - time.monotonic(), floor))


def given_up() -> bool:
    """Whether this thread's deadline passed after the store went silent in its block:
    then no new connection is tried and no pooled one waited for (the caller fails at once,
    as with a lost store)."""
    deadline = _deadline.get()
    if deadline is None:
        return False
    at, began = deadline
    return time.monotonic() >= at and silent_since(began)


# The words of the error raised instead of waiting once given up.
GIVEN_UP = "not waiting for the store again: it stopped answering and the deadline passed"


def connect_budget(default: int) -> int:
    """Seconds a new connection of this thread may take: libpq's ``connect_timeout``, at
    least its 2 s minimum, at most ``default``, at most the time left to the deadline."""
    deadline = _deadline.get()
    if deadline is None:
        return default
    return max(2, min(default, math.ceil(deadline[0] - time.monotonic())))


class AnswerBoundConnection(psycopg.Connection[Any]):
    """A psycopg connection whose every wait for the server is bounded (see the module)."""

    def wait(
        self, gen: PQGen[RV], interval: float = _CHECK_INTERVAL, timeout: float | None = None
    ) -> RV:
        if timeout is not None:  # the caller's own bound (psycopg's notifies): kept as given
            return super().wait(gen, interval, timeout)
        bound = answer_bound()
        try:
            return super().wait(gen, interval, bound)
        except psycopg.errors._WaitTimeout:  # psycopg raises it when the timeout passes
            # The statement is in flight and the server silent: the connection can never be
            # used again (a cancel request would go to the same silent server).
            global _last_silence  # noqa: PLW0603 - one process-wide fact, written here only
            _last_silence = time.monotonic()
            self.pgconn.finish()
            raise psycopg.OperationalError(
                f"the store did not answer within {bound:.2g} s (a server that stopped "
                "answering, a network dropping packets, or a lock another transaction held "
                "that long); the connection was closed"
            ) from None
