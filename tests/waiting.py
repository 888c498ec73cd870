"""Waiting for something another thread or process does, with a bound (never a fixed sleep)."""

from __future__ import annotations

import select
import subprocess
import threading
import time
from collections.abc import Callable
from typing import IO


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


class StreamLines:
    """A child's stdout or stderr read line by line on a thread of its own, so that each
    wait for a line is bounded (a select on the pipe would miss lines already buffered)."""

    def __init__(self, stream: IO[str] | None) -> None:
        assert stream is not None, "the child's stream is not a pipe"
        self._lines: list[str] = []
        self._taken = 0
        self._arrived = threading.Condition()
        self._reader = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._reader.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            with self._arrived:
                self._lines.append(line)
                self._arrived.notify_all()

    def next(self, *, what: str, timeout: float = 120.0) -> str:
        """The next line not yet taken, stripped; AssertionError naming ``what`` if none
        comes within ``timeout`` seconds."""
        with self._arrived:
            if not self._arrived.wait_for(lambda: len(self._lines) > self._taken, timeout):
                raise AssertionError(f"{what} not written within {timeout}s")
            self._taken += 1
            return self._lines[self._taken - 1].strip()

    def saw(self, fragment: str) -> bool:
        """Whether any line so far holds ``fragment``."""
        with self._arrived:
            return any(fragment in line for line in self._lines)

    def text(self, timeout: float = 10.0) -> str:
        """Everything read, once the stream has ended (waited for up to ``timeout``)."""
        self._reader.join(timeout=timeout)
        with self._arrived:
            return "".join(self._lines)
