"""``tradecore projections status|rebuild`` and ``tradecore verify``."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from app.cli.context import state
from app.cli.output import confirmer, emit_json, err, out
from app.queries import projections_dict
from domain.errors import InvalidCommand
from projections.rebuild import VerifyReport, rebuild, verify

app = typer.Typer(help="Read models: lag, rebuilds without downtime.", no_args_is_help=True)
Json = Annotated[bool, typer.Option("--json", help="print JSON on stdout")]
EXIT_INCONSISTENT = 3


@contextmanager
def progress_bar(label: str) -> Iterator[Callable[[int, int], None]]:
    """A progress bar on a terminal (stderr); silent otherwise."""
    if not sys.stderr.isatty():
        yield lambda position, head: None
        return
    with Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    ) as bar:
        task = bar.add_task(label, total=None)
        yield lambda position, head: bar.update(task, completed=position, total=head)


@app.command("status")
def status(ctx: typer.Context, as_json: Json = False) -> None:
    """Per consumer: position, head, lag in events and seconds, last error, replayed."""
    data = projections_dict(state(ctx).core())
    if as_json:
        emit_json(data)
        return
    for p in data:
        error = f"  last error: {p['last_error']}" if p["last_error"] else ""
        out.print(
            f"{p['name']:14} position {p['position']} / head {p['head']}  lag "
            f"{p['lag_events']} events, {p['lag_seconds']:.1f}s  replayed since start "
            f"{p['replayed_since_start']}{error}"
        )


@app.command("rebuild")
def rebuild_command(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(help="the read model to rebuild")] = None,
    all_: Annotated[bool, typer.Option("--all", help="rebuild every read model")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask for confirmation")] = False,
) -> None:
    """Replay the log into shadow tables and swap them in atomically (no downtime)."""
    core = state(ctx).core()
    known = {p.name: p for p in core.runner.projections}
    if all_ == (name is not None):
        raise InvalidCommand("give one read model NAME or --all")
    if name is not None and name not in known:
        raise InvalidCommand(f"no read model {name!r}; known: {', '.join(sorted(known))}")
    chosen = list(known.values()) if all_ else [known[name or ""]]
    confirmer(yes)(f"rebuild {', '.join(p.name for p in chosen)}")
    for projection in chosen:
        with progress_bar(f"rebuilding {projection.name}") as progress:
            report = rebuild(core.runner, projection, progress)
        out.print(
            f"{report.name}: rebuilt from {report.events_applied} events, at position "
            f"{report.position}"
        )


def verify_command(ctx: typer.Context, as_json: Json = False) -> None:
    """Replay every read model into scratch tables and compare them with the live ones."""
    core = state(ctx).core()
    report = VerifyReport()
    for projection in core.runner.projections:
        with progress_bar(f"verifying {projection.name}") as progress:
            verify(core.runner, projection, report, progress)
    if as_json:
        emit_json(
            {
                "consistent": report.consistent,
                "differences": report.differences,
                "positions": report.positions,
            }
        )
    elif report.consistent:
        out.print(f"consistent: every read model equals a full replay ({report.positions})")
    else:
        out.print(f"[bold red]INCONSISTENT[/]: {len(report.differences)} difference(s)")
        for difference in report.differences:
            out.print(f"  {difference}", markup=False)
    if not report.consistent:
        raise typer.Exit(EXIT_INCONSISTENT)
