"""``tradecore projections status|rebuild`` and ``tradecore verify``."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy.exc import OperationalError

from adapters.database import first_line
from adapters.errors import StoreUnavailable
from adapters.eventstore import ChainCheck, check_chain
from app.entrypoints.cli.context import default_actor, state
from app.entrypoints.cli.options import Actor, Json, Reason, Yes
from app.entrypoints.cli.output import confirmer, emit_json, err, out
from app.queries.cli_views import projections_dict
from domain.errors import InvalidCommand
from domain.validation import chain_anchor
from projections.rebuild import VerifyReport, rebuild, verify
from projections.runner import Skip

app = typer.Typer(help="Read models: lag, rebuilds without downtime.", no_args_is_help=True)
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
    data = projections_dict(state(ctx).reading())
    if as_json:
        emit_json(data)
        return
    for p in data:
        error = f"  last error: {p['last_error']}" if p["last_error"] else ""
        if p["failing_event_id"] is not None:
            error = (
                f"  FAILING at event {p['failing_event_id']} ({p['failing_topic']}) since "
                f"{p['failing_since']}, {p['failures']} tries: {p['last_error']}"
            )
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
    yes: Yes = False,
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


@app.command("skip")
def skip_command(
    ctx: typer.Context,
    name: Annotated[str, typer.Option("--name", help="the read model or process manager")],
    event: Annotated[int, typer.Option("--event", help="the notification id it cannot apply")],
    reason: Reason,
    actor: Actor = None,
    yes: Yes = False,
) -> None:
    """Record that NAME passes over one event it cannot apply (a poison event): the skip is
    itself an event in the log, honoured on the next pass, by rebuilds, and listed by
    `verify`. The event's effect on that read model is lost for good: prefer a fix (an
    upcaster release) when there is one."""
    core = state(ctx).core()
    skip, new = core.projection_skips().record(
        consumer=name,
        event_id=event,
        reason=reason,
        actor=actor or default_actor(),
        confirm=confirmer(yes),
    )
    verb = "skip recorded" if new else "skip already recorded"
    out.print(f"{verb}: {_skip_line(skip)}", markup=False, highlight=False)


def _skip_line(skip: Skip) -> str:
    return (
        f"{skip.consumer} passes over event {skip.event_id} ({skip.topic}), by {skip.actor} "
        f"at {skip.recorded_at}: {skip.reason}"
    )


def verify_command(
    ctx: typer.Context,
    as_json: Json = False,
    anchor: Annotated[
        str | None,
        typer.Option(
            "--anchor",
            help="EVENT_ID:HASH from an earlier verify's head: that event must still have "
            "that chain hash",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Check the events' hash chain (naming the first event altered after it was
    recorded), then replay every read model into scratch tables and compare them with the
    live ones (honouring the recorded skips, which it lists). Exit 3 when either fails."""
    anchored = chain_anchor(anchor) if anchor is not None else None
    core = state(ctx).core()
    try:
        chain = check_chain(core.engine, anchored)
    except OperationalError as e:
        raise StoreUnavailable(f"cannot check the hash chain: {first_line(e)}") from None
    report = VerifyReport()
    for projection in core.runner.projections:
        with progress_bar(f"verifying {projection.name}") as progress:
            verify(core.runner, projection, report, progress)
    if as_json:
        emit_json(
            {
                "history": _history_dict(chain),
                "consistent": report.consistent,
                "differences": report.differences,
                "positions": report.positions,
                "skips": report.skips,
                "failing": report.failing,
            }
        )
    else:
        _print_history(chain)
        for skip in report.skips:
            out.print(
                f"skipped: {skip['consumer']} passes over event {skip['event_id']} "
                f"({skip['topic']}), by {skip['actor']}: {skip['reason']}",
                markup=False,
                highlight=False,
            )
        for failing in report.failing:
            out.print(
                "[bold red]FAILING[/]: "
                + escape(
                    f"{failing['projection']} cannot apply event {failing['event_id']} "
                    f"({failing['topic']}): {failing['error']}"
                ),
                highlight=False,
            )
        if report.consistent:
            out.print(f"consistent: every read model equals a full replay ({report.positions})")
        else:
            out.print(
                f"[bold red]INCONSISTENT[/]: {len(report.differences)} difference(s), "
                f"{len(report.failing)} read model(s) failing"
            )
            for difference in report.differences:
                out.print(f"  {difference}", markup=False)
    if not report.consistent or not chain.intact:
        raise typer.Exit(EXIT_INCONSISTENT)


def _history_dict(chain: ChainCheck) -> dict[str, object]:
    altered = chain.first_altered
    anchor = chain.anchor
    return {
        "intact": chain.intact,
        "anchor": None
        if anchor is None
        else {
            "notification_id": anchor.notification_id,
            "expected": anchor.expected,
            "found": anchor.found,
            "holds": anchor.holds,
        },
        "events": chain.events,
        "head": {"notification_id": chain.head_id, "chain_hash": chain.head_hash},
        "first_altered": None
        if altered is None
        else {
            "notification_id": altered.notification_id,
            "originator_id": str(altered.originator_id),
            "originator_version": altered.originator_version,
            "topic": altered.topic,
        },
    }


def _print_history(chain: ChainCheck) -> None:
    anchor = chain.anchor
    if anchor is not None and not anchor.holds:
        now = "is gone" if anchor.found is None else f"now has hash {anchor.found}"
        out.print(
            "[bold red]HISTORY ALTERED[/]: "
            + escape(
                f"event {anchor.notification_id} {now}, not the {anchor.expected} written "
                "down for it: the log up to it was rewritten (hashes recomputed) or cut"
            ),
            highlight=False,
        )
    elif anchor is not None:
        out.print(
            f"anchor holds: event {anchor.notification_id} still has hash {anchor.expected}",
            markup=False,
            highlight=False,
        )
    altered = chain.first_altered
    if altered is None and not chain.intact:
        return
    if altered is None:
        out.print(
            f"history intact: {chain.events} events chained; head {chain.head_id}:"
            f"{chain.head_hash} (keep it elsewhere: `verify --anchor` checks it later)",
            markup=False,
            highlight=False,
        )
        return
    out.print(
        "[bold red]HISTORY ALTERED[/]: "
        + escape(
            f"event {altered.notification_id} (originator {altered.originator_id}, version "
            f"{altered.originator_version}, {altered.topic}) does not match the hash chain: "
            "it was changed after it was recorded (or the event before it was changed or "
            "removed)"
        ),
        highlight=False,
    )
