"""``tradecore serve``: the read-only status API and the live dashboard."""

from __future__ import annotations

import importlib
import socket
import threading
from typing import Annotated

import typer

from app.entrypoints.cli.context import state
from app.entrypoints.cli.output import err
from domain.errors import InvalidCommand


def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option("--host", help="address to bind (loopback by default)")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="TCP port")] = 8000,
) -> None:
    """Serve GET /api/... (the read models: safeguards, policy, emergency, risk, positions,
    trades, incidents, models, projections; OpenAPI at /openapi.json) and the dashboard at /.
    Read-only; answers 503 while the store is unreachable. Stop with Ctrl-C."""
    import uvicorn  # noqa: PLC0415 - only this command needs the server

    from app.entrypoints.api import create_app  # noqa: PLC0415

    settings = state(ctx).settings()
    _check_free(host, port)
    if host not in ("127.0.0.1", "localhost", "::1"):
        err.print(f"[bold yellow]serving on {host}: reachable from other machines[/]")
    err.print(f"tradecore status API and dashboard on http://{host}:{port}/")
    # The incident pages draw their chart with matplotlib, 1-2 s to import: load it now, in
    # the background, rather than on an operator's first click.
    threading.Thread(
        target=importlib.import_module, args=("app.entrypoints.cli.incident_html",), daemon=True
    ).start()
    uvicorn.run(create_app(settings), host=host, port=port, log_level="warning")


def _check_free(host: str, port: int) -> None:
    """Say so plainly, before announcing anything, when the address cannot be listened on
    (uvicorn would log it and exit 3, which here means a refusal by a safety rule)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise InvalidCommand(f"--host {host}: {e.strerror}") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as e:
            err.print(f"cannot listen on {host}:{port}: {e.strerror}", markup=False)
            raise typer.Exit(1) from None
