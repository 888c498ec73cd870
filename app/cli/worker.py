"""``tradecore run``: the worker (for now: the projections; later issues add the rest)."""

from __future__ import annotations

import signal
import threading
from typing import Annotated

import typer

from app.cli.context import state
from app.cli.output import err


def run(
    ctx: typer.Context,
    duration: Annotated[
        float | None,
        typer.Option("--duration", help="stop after this many seconds", show_default=False),
    ] = None,
) -> None:
    """Run every projection continuously until SIGTERM/SIGINT (or --duration)."""
    core = state(ctx).core()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    if duration is not None:
        threading.Timer(duration, stop.set).start()
    err.print(f"worker running on {core.address.display}")
    waiter = core.waiter()
    core.runner.run(stop, waiter, poll_interval=core.settings.poll_interval)
    err.print("worker stopped")
