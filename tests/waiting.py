"""Waiting for something another thread or process does, with a bound (never a fixed sleep)."""

from __future__ import annotations

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
