"""``tradecore run``: the worker (projections and the emergency flattener; more to come)."""

from __future__ import annotations

import signal
import threading
from typing import Annotated

import typer

from app.cli.context import state
from app.cli.output import err
from app.worker import Worker


def run(
    ctx: typer.Context,
    exchange: Annotated[
        str | None,
        typer.Option(
            "--exchange",
            help="paper | ccxt:<exchange id> (default TRADECORE_EXCHANGE)",
            show_default=False,
        ),
    ] = None,
    duration: Annotated[
        float | None,
        typer.Option("--duration", min=0, help="stop after this many seconds", show_default=False),
    ] = None,
) -> None:
    """Run the worker until SIGTERM/SIGINT (or --duration)."""
    cli_state = state(ctx)
    if exchange is not None:
        cli_state.exchange = exchange
    core = cli_state.core()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    if duration is not None:
        timer = threading.Timer(duration, stop.set)
        timer.daemon = True
        timer.start()
    err.print(f"worker running on {core.address.display}, venue {core.settings.exchange}")
    Worker(core).run(stop)
    err.print("worker stopped")
