"""A server that stops answering but keeps its sockets: every process of an embedded
PostgreSQL stopped with SIGSTOP (as a paused VM, a host paging or a disk that hangs its
writes leave it). The kernel still accepts connections and acknowledges what is sent;
nothing is ever answered until SIGCONT."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from adapters.embedded_pg import EmbeddedPostgres


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


@contextmanager
def frozen(server: EmbeddedPostgres) -> Iterator[None]:
    """Every process of ``server`` stopped inside the block, continued on exit."""
    postmaster = int((server.pgdata / "postmaster.pid").read_text().split()[0])
    stopped = [postmaster]
    os.kill(postmaster, signal.SIGSTOP)  # first: it forks no new backend from now on
    try:
        for child in _children(postmaster):
            os.kill(child, signal.SIGSTOP)
            stopped.append(child)
        yield
    finally:
        for pid in stopped:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
