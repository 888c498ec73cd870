"""``tradecore run``: the worker, one active per account (a second waits as a hot standby)."""

from __future__ import annotations

import signal
import threading
from typing import Annotated

import typer

from app.bootstrap import SERVICE_POOL_SIZE
from app.entrypoints.cli.context import state
from app.entrypoints.cli.output import err
from app.entrypoints.worker import run_exclusively


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
    core = cli_state.core(pool_size=SERVICE_POOL_SIZE)
    # Refused now, not discovered as a breaker loop that never gets a reading.
    core.drawdown_breaker().check_can_run()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    if duration is not None:
        timer = threading.Timer(duration, stop.set)
        timer.daemon = True
        timer.start()
    account = core.settings.account
    where = f"{core.address.display}, venue {core.settings.exchange}, account {account}"
    ran = run_exclusively(
        core,
        stop,
        on_standby=lambda: err.print(
            f"another worker holds account {account}: standing by until it stops ({where})"
        ),
        on_active=lambda: err.print(f"worker running on {where}"),
    )
    err.print("worker stopped" if ran else "standby stopped (never became active)")
