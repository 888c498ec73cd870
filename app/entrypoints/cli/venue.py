"""``tradecore positions|orders``: what the venue shows now (asked, never remembered)."""

from __future__ import annotations

from dataclasses import asdict

import typer

from adapters.venues import retry_transient
from app.entrypoints.cli.context import state
from app.entrypoints.cli.options import Json
from app.entrypoints.cli.output import emit_json, out


def positions(ctx: typer.Context, as_json: Json = False) -> None:
    """Open positions at the configured venue, each with its notional at the mark and the
    leverage the venue applies to it (where the venue reports one)."""
    found = retry_transient(state(ctx).core().venue().fetch_positions)
    if as_json:
        emit_json([asdict(p) | {"notional": p.notional} for p in found])
        return
    if not found:
        out.print("no open positions")
    for p in found:
        out.print(
            f"{p.symbol:18} {p.side:5} {p.quantity} @ {p.entry_price} "
            f"mark {p.mark_price} notional {p.notional:.2f} "
            f"x{p.leverage if p.leverage is not None else '?'} uPnL {p.unrealized_pnl:.2f}"
        )


def orders(ctx: typer.Context, as_json: Json = False) -> None:
    """Open orders at the configured venue, conditional ones included."""
    found = retry_transient(state(ctx).core().venue().fetch_open_orders)
    if as_json:
        emit_json(found)
        return
    if not found:
        out.print("no open orders")
    for o in found:
        price = o.price if o.price is not None else o.stop_price
        out.print(
            f"{o.id:>6} {o.symbol:18} {o.side:4} {o.type:6} {o.quantity} @ {price} "
            f"{'reduce-only ' if o.reduce_only else ''}{o.client_order_id}"
        )
