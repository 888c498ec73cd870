"""Waiting for something another thread or process does, with a bound (never a fixed sleep)."""

from __future__ import annotations

import select
import subprocess
import time
from collections.abc import Callable


def wait_for(
    condition: Callable[[], bool],
    timeout: float = 20.0,
    *,
    interval: float = 0.02,
    what: str = "the condition",
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout}s")
        time.sleep(interval)  # between checks of the condition: the wait itself is bounded


def first_line(process: subprocess.Popen[str], timeout: float = 60.0, *, what: str) -> str:
    """The first line ``process`` writes to its stdout (a pipe), waited for up to ``timeout``
    seconds; raises AssertionError naming ``what`` if none comes. Only for the first line:
    a line already read into the pipe's buffer would not wake the wait."""
    assert process.stdout is not None
    readable, _, _ = select.select([process.stdout], [], [], timeout)
    if not readable:
        raise AssertionError(f"{what} not written within {timeout}s")
    return process.stdout.readline()
