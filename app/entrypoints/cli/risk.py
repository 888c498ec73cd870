"""``tradecore risk status|reset-peak``: the drawdown circuit breaker (P0-07)."""

from __future__ import annotations

import typer

from app.entrypoints.cli.context import default_actor, state
from app.entrypoints.cli.options import Actor, Json, Reason, Yes
from app.entrypoints.cli.output import confirmer, emit_json, out
from app.queries.cli_views import risk_dict

app = typer.Typer(
    help="The drawdown circuit breaker (P0-07): equity, peak, drawdown, breaker state.",
    no_args_is_help=True,
)

STATE_STYLE = {"normal": "green", "soft_breach": "bold yellow", "hard_breach": "bold red"}


@app.command("status")
def status(ctx: typer.Context, as_json: Json = False) -> None:
    """Equity, peak, drawdown against the thresholds, and the breaker's state, from the log."""
    core = state(ctx).core()
    breaker = core.drawdown_breaker()
    data = risk_dict(breaker.load(), core.commands.load_policy(), core.clock())
    if as_json:
        emit_json(data)
        return
    if data["equity"] is None:
        out.print("no equity reading yet: start `tradecore run` to feed the breaker")
    style = STATE_STYLE.get(data["state"], "bold")
    out.print(f"state           [{style}]{data['state']}[/]")
    for key in ("equity", "peak", "drawdown", "soft_threshold", "hard_threshold"):
        out.print(f"{key:15} {data[key]}")
    out.print(f"last reading    {data['last_reading_at']} ({data['reading_age_seconds']} s ago)")
    out.print(f"peak since      {data['peak_since']}")
    if data["last_transfer_at"] is not None:
        out.print(
            f"net transfers   {data['net_transfers']} (not losses: the peak moves with "
            f"them; last {data['last_transfer_at']})"
        )
    if data["pending_confirmation"]:
        out.print("a reading is waiting for confirmation")


@app.command("reset-peak")
def reset_peak(
    ctx: typer.Context,
    reason: Reason,
    actor: Actor = None,
    yes: Yes = False,
) -> None:
    """Start a new high-water mark at the last accepted equity; the breaker returns to normal.
    The only way out of a hard breach. It does not reset the emergency stop or allow trades."""
    core = state(ctx).core()
    account = core.drawdown_breaker().reset_peak(
        actor=actor or default_actor(), reason=reason, confirm=confirmer(yes)
    )
    out.print(
        f"drawdown peak reset to {account.peak}; breaker normal. The emergency stop and the "
        "policy are unchanged."
    )
