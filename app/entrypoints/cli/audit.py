"""``tradecore audit timeline|state|incident``: any past moment, replayed from the log."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any
from uuid import UUID

import typer

from app.entrypoints.cli.context import state
from app.entrypoints.cli.options import Json
from app.entrypoints.cli.output import emit_json, err, out
from app.entrypoints.cli.report_page import write_page
from app.queries.audit import Audit
from domain.errors import InvalidCommand
from domain.validation import instant_text

app = typer.Typer(
    help="Replay and explain the past from the log: timeline, state at an instant, incidents.",
    no_args_is_help=True,
)


def instant(text: str, option: str) -> datetime:
    """ISO 8601 (without a zone it is UTC) or epoch seconds/ms; raises InvalidCommand."""
    try:
        return instant_text(text, option)
    except InvalidCommand as e:
        raise InvalidCommand(f"{e} (e.g. 2026-11-25T05:18:32Z)") from None


@app.command("timeline")
def timeline(
    ctx: typer.Context,
    since: Annotated[str, typer.Option("--since", help="ISO 8601 (UTC if no zone)")],
    until: Annotated[
        str | None, typer.Option("--until", help="ISO 8601 (default: now)", show_default=False)
    ] = None,
    event_type: Annotated[
        str | None,
        typer.Option(
            "--type", help="an event name (risk.drawdown.hard_breach) or a topic fragment"
        ),
    ] = None,
    aggregate: Annotated[
        str | None, typer.Option("--aggregate", help="an aggregate id", show_default=False)
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="at most this many events")] = 10_000,
    as_json: Json = False,
) -> None:
    """The events in [--since, --until] in log order: time, type, aggregate, actor, reason and
    figures."""
    core = state(ctx).core()
    start = instant(since, "--since")
    end = instant(until, "--until") if until else core.clock()
    aggregate_id = _uuid(aggregate, "--aggregate") if aggregate else None
    rows = Audit(core).timeline(
        start, end, event_type_or_topic=event_type, aggregate=aggregate_id, limit=limit
    )
    if as_json:
        emit_json(rows)
        return
    for r in rows:
        out.print(
            f"{r['at'].isoformat()}  {r['type']:<34} {r['actor'] or '-':<18} "
            f"{(r['reason'] or '')[:60]}  {_figures(r['figures'])}",
            markup=False,
        )
    err.print(f"{len(rows)} event(s)")


@app.command("state")
def state_at(
    ctx: typer.Context,
    at: Annotated[str, typer.Option("--at", help="ISO 8601 (UTC if no zone)")],
    as_json: Json = False,
) -> None:
    """The whole core as it was at --at, rebuilt by replaying the log up to that instant."""
    core = state(ctx).core()
    data = Audit(core).state_at(instant(at, "--at"))
    if as_json:
        emit_json(data)
        return
    policy, emergency, risk = data["policy"] or {}, data["emergency"], data["risk"]
    out.print(f"at {data['at'].isoformat()} (log position {data['position']})")
    if not data["position"]:
        out.print("nothing was recorded yet at that instant")
        return
    out.print(
        f"policy     allow_new_trades={policy.get('allow_new_trades')} "
        f"emergency_mode={policy.get('emergency_mode')} (version {policy.get('version')})"
    )
    out.print(f"emergency  active={emergency['active']} source={emergency.get('source')}")
    out.print(
        f"risk       equity {risk['equity']} peak {risk['peak']} drawdown {risk['drawdown']} "
        f"state {risk['state']}"
    )
    for trade in data["open_trades"]:
        out.print(f"open trade {trade['symbol']} {trade['side']} {trade['quantity']}")
    for p in data["positions"]:
        out.print(f"position   {p['symbol']} {p['side']} {p['quantity']}", markup=False)
    for model in data["models"]:
        out.print(f"model      {model['consumer']}: {model['model']} v{model['version']}")
    for symbol, regime in data["regimes"].items():
        out.print(f"regime     {symbol}: {regime}", markup=False)


@app.command("incident")
def incident(
    ctx: typer.Context,
    ref: Annotated[
        str | None, typer.Argument(help="activation number or incident id", show_default=False)
    ] = None,
    latest: Annotated[bool, typer.Option("--latest", help="the latest incident")] = False,
    list_all: Annotated[bool, typer.Option("--list", help="list every incident")] = False,
    html_file: Annotated[
        Path | None,
        typer.Option("--html", help="write a self-contained page with the chart", dir_okay=False),
    ] = None,
    as_json: Json = False,
) -> None:
    """An emergency activation explained: trigger, equity path, causation chain, each close
    with its fill and slippage, time to flat, policy and models in force, the reset."""
    if list_all and (html_file is not None or ref is not None or latest):
        raise InvalidCommand(
            "--list lists every incident; --html, --latest or an incident go alone"
        )
    if html_file is not None and not html_file.parent.is_dir():
        raise InvalidCommand(f"--html {html_file}: the folder {html_file.parent} does not exist")
    # The page replaces its target whole (a rename): only ever a regular file of its own,
    # never a device, a FIFO or what a link points at (as root, /dev/null would go).
    if html_file is not None and (
        html_file.is_symlink() or (html_file.exists() and not html_file.is_file())
    ):
        raise InvalidCommand(f"--html {html_file}: exists and is not a regular file")
    core = state(ctx).core()
    audit = Audit(core)
    if list_all:
        incidents = audit.incidents()
        if as_json:
            emit_json(incidents)
            return
        for i in incidents:
            out.print(
                f"{i['activation_number']:>3}  {i['activated_at'].isoformat()}  {i['source']:<9} "
                f"flat in {i['time_to_flat_ms']} ms  {i['reason']}",
                markup=False,
            )
        return
    if ref is not None and latest:
        raise InvalidCommand("give an incident or --latest, not both")
    report = audit.incident(None if latest or ref is None else ref)
    if html_file is not None:
        from app.entrypoints.cli.incident_html import render  # noqa: PLC0415 - matplotlib is slow to load

        write_page(html_file, render(report))
        err.print(f"wrote {html_file}")
    if as_json:
        emit_json(report)
        return
    print_report(report)


def print_report(r: dict[str, Any]) -> None:
    t = r["trigger"]
    out.print(f"[bold red]incident {r['activation_number']}[/] ({r['incident_id']})")
    out.print(f"trigger     {t['source']}: {t['reason']}", markup=False)
    if "drawdown" in t:
        out.print(
            f"            reading {t.get('reading_at')}: equity {t['equity']:.2f}, peak "
            f"{t['peak']:.2f}, drawdown {t['drawdown']:.2%} (hard {t['hard_threshold']:.0%})"
        )
        if t.get("confirmation"):
            c = t["confirmation"]
            out.print(
                f"            held for confirmation at {_num(Decimal(c['pending_equity']))}, "
                f"confirmed by the re-read at {_num(Decimal(c['confirmed_by_equity']))}"
            )
    out.print(f"activated   {r['activated_at'].isoformat()} by {r['activated_by']}")
    out.print(f"flat        {r['flat_at']} (time to flat {r['time_to_flat_ms']} ms)")
    out.print(
        f"closed      {r['positions_closed']} position(s), {r['orders_canceled']} order(s) "
        f"canceled, {len(r['trades_closed'])} trade(s) closed"
    )
    for o in r["orders"]:
        out.print(
            f"  {o['symbol']:<15} {o['position_side']:<5} {o['quantity']} filled at "
            f"{_num(o['fill_price'])} (mark {_num(o['mark_price'])}, slippage "
            f"{o['slippage_bps']} bp)"
        )
    for c in r["trades_closed"]:
        entry = c["entry"]
        sized_on = (
            f"{entry['model']} v{entry['model_version']} (confidence {entry['confidence']})"
            if entry["model"]
            else "no model"
        )
        out.print(
            f"  trade {c['trade_id']} pnl {_num(c['realized_pnl'])}, entry sized on {sized_on}",
            markup=False,
        )
    path = r["equity_path"]
    if path:
        low = min(p["drawdown"] for p in path)
        out.print(f"equity path {len(path)} readings, deepest drawdown {low:.2%}")
    policy = r["policy_at_activation"] or {}
    out.print(
        f"policy      version {policy.get('version')}: soft "
        f"{policy.get('drawdown_soft_threshold')}, hard {policy.get('drawdown_hard_threshold')}"
    )
    for m in r["models_at_activation"]:
        out.print(f"model       {m['consumer']}: {m['model']} v{m['version']}")
    out.print(f"chain       {len(r['causation_chain'])} linked events")
    reset = r["reset"]
    out.print(
        f"reset       {reset['at']} by {reset['actor']}: {reset['reason']}"
        if reset
        else "reset       not yet"
    )


def _num(value: Any) -> str:
    return "-" if value is None else f"{value:.2f}"


def _figures(figures: dict[str, Any]) -> str:
    text = ", ".join(f"{k}={v}" for k, v in figures.items() if not isinstance(v, list | dict))
    return text[:120]


def _uuid(text: str, option: str) -> UUID:
    try:
        return UUID(text)
    except ValueError:
        raise InvalidCommand(f"{option} is not an id: {text!r}") from None
