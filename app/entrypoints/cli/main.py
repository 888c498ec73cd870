"""Entry point: global options, sub-commands and the exit-code contract.

Exit codes (docs/OPERATIONS.md): 0 success, 1 unexpected failure, 2 invalid input, 3 refused by a
safety rule, 4 store unavailable.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from adapters.database import lost_store
from adapters.errors import EmbeddedServerRefused, StoreUnavailable
from app.commands.safety import ConcurrencyExhausted
from app.entrypoints.cli import (
    audit,
    data,
    db,
    demo,
    emergency,
    model,
    paper,
    policy,
    projections,
    replay,
    risk,
    serve,
    sizing,
    trades,
    venue,
    worker,
)
from app.entrypoints.cli.context import CliState, state
from app.entrypoints.cli.options import Json
from app.entrypoints.cli.output import emit_json, err, out, plain
from app.queries.cli_views import status_dict
from app.queries.status_views import Bounds, ReadSide
from domain.errors import InvalidCommand, RefusedBySafetyRule
from domain.venue import VenueError

EXIT_FAILURE, EXIT_INVALID, EXIT_REFUSED, EXIT_STORE = 1, 2, 3, 4

cli = typer.Typer(
    name="tradecore",
    help="tradecore: an event-sourced trading core whose safety chain cannot disagree with itself.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
cli.add_typer(policy.app, name="policy")
cli.add_typer(emergency.app, name="emergency")
cli.add_typer(db.app, name="db")
cli.add_typer(paper.app, name="paper")
cli.add_typer(projections.app, name="projections")
cli.add_typer(trades.trade_app, name="trade")
cli.add_typer(trades.app, name="trades")
cli.add_typer(sizing.app, name="sizing")
cli.add_typer(model.app, name="model")
cli.add_typer(risk.app, name="risk")
cli.add_typer(audit.app, name="audit")
cli.add_typer(data.app, name="data")
cli.command("verify")(projections.verify_command)
cli.command("run")(worker.run)
cli.command("demo")(demo.demo)
cli.command("replay")(replay.replay)
cli.command("serve")(serve.serve)
cli.command("positions")(venue.positions)
cli.command("orders")(venue.orders)


@cli.callback()
def root(
    ctx: typer.Context,
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            help="postgresql:// URL (default: TRADECORE_DATABASE_URL, else the embedded server)",
            show_default=False,
        ),
    ] = None,
    home: Annotated[
        Path | None,
        typer.Option(
            "--home", help="TRADECORE_HOME: where the embedded server lives", show_default=False
        ),
    ] = None,
) -> None:
    ctx.obj = CliState(database_url=database_url, home=home)
    ctx.call_on_close(ctx.obj.close)


@cli.command("status")
def status_command(
    ctx: typer.Context,
    as_json: Json = False,
) -> None:
    """Policy, emergency, gate, each projection's position and lag, and the seven safeguards
    (ACTIVE or DEGRADED, with the evidence; the same table as GET /api/patches/status).
    Reads only: a read model failing on an event is named, never run."""
    core = state(ctx).reading()
    data = status_dict(core)
    data["safeguards"] = plain(
        ReadSide(core.engine, core.runner, core.clock, Bounds.of(core.settings)).safeguards()
    )
    if as_json:
        emit_json(data)
        return
    gate = data["gate"]
    colour = "green" if gate["allowed"] else "bold red"
    out.print(
        f"store     {data['store']['database']}{' (embedded)' if data['store']['embedded'] else ''}"
    )
    out.print(f"gate      [{colour}]{gate['code']}[/] - {gate['reason']}")
    em = data["emergency"] or {}
    if em.get("active"):
        out.print(f"emergency [bold red]ACTIVE[/] since {em['activated_at']} ({em['reason']})")
    else:
        out.print("emergency inactive")
    policy = data["policy"] or {}
    until = policy.get("loss_stop_until")
    if until is not None and until > core.clock():
        out.print(f"entries   [bold red]STOPPED[/] by a loss streak: {policy['loss_stop_reason']}")
    for p in data["projections"]:
        out.print(
            f"projection {p['name']}: position {p['position']} / head {p['head']} "
            f"(lag {p['lag']}){_failing(p)}",
            markup=False,
            highlight=False,
        )
    safeguards = data["safeguards"]
    out.print(f"safeguards [{_style(safeguards['status'])}]{safeguards['status']}[/]")
    for name, check in safeguards["safeguards"].items():
        evidence = ", ".join(
            f"{k}={v}" for k, v in check["evidence"].items() if not isinstance(v, dict | list)
        )
        out.print(
            f"  {name:27} [{_style(check['status'])}]{check['status']:8}[/] {evidence}",
            highlight=False,
        )


def _failing(p: dict[str, object]) -> str:
    if p["failing_event_id"] is not None:
        return (
            f" FAILING at event {p['failing_event_id']} ({p['failing_topic']}) since "
            f"{p['failing_since']}: {p['last_error']}"
        )
    return f" error: {p['last_error']}" if p["last_error"] else ""


def _style(status: str) -> str:
    return "green" if status == "ACTIVE" else "bold red"


def main() -> None:
    """Run the CLI, turning the core's errors into one line on stderr and an exit code."""
    logging.basicConfig(
        level=os.environ.get("TRADECORE_LOG_LEVEL", "WARNING").upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        cli(prog_name="tradecore")
    except InvalidCommand as e:
        _fail(EXIT_INVALID, f"invalid input: {e}")
    except RefusedBySafetyRule as e:
        _fail(EXIT_REFUSED, f"refused: {e}")
    except EmbeddedServerRefused as e:
        _fail(EXIT_INVALID, str(e))
    except StoreUnavailable as e:
        _fail(EXIT_STORE, f"store unavailable: {e}")
    except ConcurrencyExhausted as e:
        _fail(EXIT_FAILURE, str(e))
    except VenueError as e:
        _fail(EXIT_FAILURE, f"venue error: {type(e).__name__}: {e}")
    except KeyboardInterrupt:
        _fail(130, "interrupted")
    except BrokenPipeError:
        # The reader went away (`tradecore … | head`): nothing more to say to it.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)
    except Exception as e:
        if os.environ.get("TRADECORE_DEBUG"):
            raise
        lost = lost_store(e)
        if lost is not None:  # the server went away mid-command (a driver or library error)
            _fail(EXIT_STORE, f"store unavailable: {lost}")
        _fail(
            EXIT_FAILURE,
            f"unexpected failure: {type(e).__name__}: {e} "
            "(set TRADECORE_DEBUG=1 for the traceback)",
        )


def _fail(code: int, message: str) -> None:
    err.print(message, markup=False, highlight=False)
    sys.exit(code)
