"""``tradecore trade open`` and ``tradecore trades list|show|import``."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any
from uuid import UUID

import typer

from app.commands.executor import Outcome, TradeIntent
from app.commands.legacy_import import LegacyImporter, describe
from app.commands.trade_records import TradeNotFound
from app.entrypoints.cli.context import default_actor, state
from app.entrypoints.cli.input_file import read_input_file
from app.entrypoints.cli.options import Actor, Json, Reason, Yes
from app.entrypoints.cli.output import confirmer, emit_json, err, out
from domain.errors import InvalidCommand, RefusedBySafetyRule
from domain.validation import decimal_value, text_value
from projections.trade_store import TradeRow

trade_app = typer.Typer(help="Act on one trade (through the executor and the gate).")
app = typer.Typer(help="The trade store (P0-04): trades as recorded in the log.")


class IntentRefused(RefusedBySafetyRule):
    """The gate (or a policy cap) refused the intent; nothing reached the venue."""


@trade_app.command("open")
def open_trade(
    ctx: typer.Context,
    symbol: Annotated[str, typer.Option("--symbol", help="e.g. BTC/USDT:USDT")],
    side: Annotated[str, typer.Option("--side", help="long or short")],
    notional: Annotated[str, typer.Option("--notional", help="size in the settlement currency")],
    leverage: Annotated[
        str | None,
        typer.Option("--leverage", help="the most leverage to use (default: as sized)"),
    ] = None,
    reason: Reason = "manual",
    actor: Actor = None,
    as_json: Json = False,
) -> None:
    """Open a trade by hand: a market order through the same executor and gate as signals.
    Exits 3 with the gate's reason when refused (nothing reaches the venue)."""
    intent = TradeIntent(
        symbol=symbol,
        side=side,
        notional=_number(notional, "--notional"),
        leverage=_number(leverage, "--leverage") if leverage is not None else None,
        actor=actor or default_actor(),
        reason=reason,
    )
    execution = state(ctx).core().executor().open(intent)
    if as_json:
        emit_json(execution)
    if execution.outcome is Outcome.REFUSED:
        raise IntentRefused(f"{execution.code}: {execution.reason}")
    if execution.outcome in (Outcome.REJECTED, Outcome.OUTCOME_UNKNOWN, Outcome.UNFILLED):
        err.print(f"trade {execution.trade_id}: {execution.outcome.value}: {execution.reason}")
        raise typer.Exit(1)
    if not as_json:
        out.print(f"trade {execution.trade_id} {execution.outcome.value}: {execution.reason}")


@app.command("list")
def list_trades(
    ctx: typer.Context,
    open_only: Annotated[bool, typer.Option("--open", help="only trades still open")] = False,
    symbol: Annotated[str | None, typer.Option("--symbol", help="only this symbol")] = None,
    as_json: Json = False,
) -> None:
    """Trades, oldest first. ``quantity`` is what filled on entry; ``open_quantity`` what the
    trade still holds."""
    core = state(ctx).current()
    store = core.trade_store()
    rows = store.list_open_trades() if open_only else store.history(symbol=symbol)
    if symbol is not None:
        rows = [r for r in rows if r.symbol == symbol]
    data = [trade_dict(r) for r in rows]
    if as_json:
        emit_json(data)
        return
    if not data:
        out.print("no trades")
    for t in data:
        out.print(
            f"{t['trade_id']} {t['symbol']:16} {t['side']:5} {t['quantity']} @ "
            f"{t['entry_price']} x{t['leverage']} {t['status']}"
            f"{' (' + t['close_reason'] + ')' if t['close_reason'] else ''}"
            f"{' pnl ' + str(t['realized_pnl']) if t['realized_pnl'] is not None else ''}"
        )


@app.command("show")
def show(
    ctx: typer.Context,
    trade_id: Annotated[str, typer.Argument(help="the trade's id")],
    as_json: Json = False,
) -> None:
    """One trade with its whole event history."""
    try:
        tid = UUID(trade_id)
    except ValueError:
        raise InvalidCommand(f"not a trade id: {trade_id!r}") from None
    core = state(ctx).current()
    row = core.trade_store().get(tid)
    if row is None:
        raise TradeNotFound(f"no trade {trade_id}")
    data = trade_dict(row)
    data["events"] = [_event_dict(e) for e in core.store.events.get(tid)]
    if as_json:
        emit_json(data)
        return
    for key, value in data.items():
        if key != "events":
            out.print(f"{key:16} {value}")
    for e in data["events"]:
        fields = ", ".join(f"{k}={v}" for k, v in e["data"].items())
        out.print(f"  v{e['version']} {e['at']} {e['type']}: {fields}")


@app.command("import")
def import_trades(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="the old system's trade_state.json")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="show, write nothing")] = False,
    yes: Yes = False,
    actor: Actor = None,
    as_json: Json = False,
) -> None:
    """Import a legacy trade_state.json: all trades or none. Re-importing is a no-op.

    An open trade whose quantity an adopted external trade already holds at the venue takes
    over that adoption (listed as a link; --dry-run shows it); one whose quantity other open
    trades hold is refused (exit 3), naming both."""
    text = read_input_file(file, "FILE")
    core = state(ctx).core()
    importer = LegacyImporter(
        core.store, core.clock, venue=core.venue(), open_trades=core.open_trade_ids
    )
    plan = importer.plan(text, source=text_value(file.name, "file name"))
    summary = {
        "file": str(file),
        "new": [describe(legacy) | {"trade_id": tid} for tid, legacy in plan.new],
        "already_imported": [str(tid) for tid, _ in plan.already_imported],
        # Adopted external trades whose claim an imported trade takes over.
        "links": [vars(link) for link in plan.links],
        "dry_run": dry_run,
    }
    if dry_run or not plan.new:
        summary["imported"] = 0
        _report(summary, as_json)
        return
    confirmer(yes)(f"import {len(plan.new)} trade(s) from {file.name}")
    summary["imported"] = importer.execute(plan, actor=actor or default_actor())
    _report(summary, as_json)


@app.command("reconcile")
def reconcile(ctx: typer.Context, as_json: Json = False) -> None:
    """Compare the trade store with the venue now: resolve unknown orders, adopt external
    positions, close trades the venue no longer holds (nothing is closed at the venue)."""
    report = state(ctx).core().reconciler().run()
    if as_json:
        emit_json(report)
        return
    if not report.ran:
        err.print("skipped: orders in flight held the order flow; try again")
        raise typer.Exit(1)
    out.print(
        f"{report.orders_resolved} order(s) resolved, {len(report.adopted)} external "
        f"position(s) adopted, {len(report.closed_external)} trade(s) closed (gone at the venue), "
        f"{len(report.mismatches)} mismatch(es)"
    )
    for message in report.mismatches:
        err.print(f"  mismatch: {message}")


def _report(summary: dict[str, Any], as_json: bool) -> None:
    if as_json:
        emit_json(summary)
        return
    verb = "would import" if summary["dry_run"] else "imported"
    count = len(summary["new"]) if summary["dry_run"] else summary["imported"]
    out.print(
        f"{verb} {count} trade(s) from {summary['file']}; "
        f"{len(summary['already_imported'])} already imported"
    )
    for t in summary["new"]:
        out.print(
            f"  {t['legacy_id']} -> {t['trade_id']}: {t['symbol']} {t['side']} "
            f"{t['quantity']} @ {t['entry_price']} ({t['status']})"
        )
    link_verb = "would link" if summary["dry_run"] else "linked"
    for link in summary["links"]:
        out.print(
            f"  {link_verb} {link['legacy_id']} -> {link['trade_id']} to adopted external "
            f"trade {link['adopted']}: {link['symbol']} {link['side']} {link['quantity']} "
            "(the adoption's claim is handed over)"
        )


def trade_dict(row: TradeRow) -> dict[str, Any]:
    return {
        "trade_id": row.trade_id,
        "symbol": row.symbol,
        "side": row.side,
        "quantity": row.entry_quantity,
        "open_quantity": row.quantity,
        "entry_price": row.entry_price,
        "leverage": row.leverage,
        "status": row.status,
        "close_reason": row.close_reason,
        "opened_at": row.opened_at,
        "closed_at": row.closed_at,
        "realized_pnl": row.realized_pnl,
        "stop_loss": row.stop_loss,
        "take_profit": row.take_profit,
        "source": row.source,
    }


def _event_dict(event: Any) -> dict[str, Any]:
    skip = {"originator_id", "originator_version", "timestamp", "originator_topic"}
    return {
        "version": event.originator_version,
        "at": event.timestamp,
        "type": type(event).__qualname__,
        "data": {k: v for k, v in vars(event).items() if k not in skip},
    }


def _number(value: str, option: str) -> Decimal:
    return decimal_value(value, option, positive=True)
