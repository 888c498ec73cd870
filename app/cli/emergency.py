"""``tradecore emergency activate|reset|status``."""

from __future__ import annotations

from typing import Annotated

import typer

from app.cli.context import default_actor, state
from app.cli.output import confirmer, emit_json, out
from app.queries import current_snapshot, emergency_dict

app = typer.Typer(
    help="The emergency stop (P0-02): latched until an operator resets it.", no_args_is_help=True
)

Reason = Annotated[str, typer.Option("--reason", help="why (recorded)")]
Json = Annotated[bool, typer.Option("--json", help="print JSON on stdout")]
Yes = Annotated[bool, typer.Option("--yes", "-y", help="do not ask for confirmation")]
Actor = Annotated[
    str | None, typer.Option("--actor", help="who acts (default: login name)", show_default=False)
]


@app.command("activate")
def activate(ctx: typer.Context, reason: Reason, actor: Actor = None, yes: Yes = False) -> None:
    """Latch the emergency stop: the policy enters emergency mode and stops new trades."""
    activation = (
        state(ctx)
        .core()
        .commands.activate_emergency(
            reason=reason,
            actor=actor or default_actor(),
            source="operator",
            confirm=confirmer(yes),
        )
    )
    if activation.activated:
        out.print(
            f"[bold red]emergency stop ACTIVE[/] (activation {activation.activation_number},"
            f" policy version {activation.policy_version})"
        )
    else:
        out.print(
            f"emergency stop was already active (activation "
            f"{activation.activation_number}: {activation.reason}); nothing recorded"
        )


@app.command("reset")
def reset(ctx: typer.Context, reason: Reason, actor: Actor = None, yes: Yes = False) -> None:
    """Release the latch. New trades stay stopped until `policy set --allow-new-trades true`."""
    result = (
        state(ctx)
        .core()
        .commands.reset_emergency(
            reason=reason, actor=actor or default_actor(), confirm=confirmer(yes)
        )
    )
    out.print(
        f"emergency stop reset (activation {result.activation_number}); new trades remain "
        "disabled until an operator allows them"
    )


@app.command("status")
def status(ctx: typer.Context, as_json: Json = False) -> None:
    """The latch: active or not, why, since when, by whom; the last reset."""
    snapshot, _ = current_snapshot(state(ctx).core())
    data = emergency_dict(snapshot)
    if as_json:
        emit_json(data)
        return
    for key, value in data.items():
        out.print(f"{key:18} {value}")
