"""``tradecore emergency activate|reset|status``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated

import typer

from adapters.answer_deadline import answer_deadline
from adapters.database import lost_store
from adapters.errors import StoreUnavailable
from app.bootstrap import Core
from app.entrypoints.cli.context import default_actor, state
from app.entrypoints.cli.options import Actor, Json, Reason, Yes
from app.entrypoints.cli.output import confirmer, emit_json, err, out
from app.processes.flattener import positions_and_orders
from app.queries.cli_views import current_snapshot, emergency_dict

app = typer.Typer(
    help="The emergency stop (P0-02): latched until an operator resets it.", no_args_is_help=True
)


@app.command("activate")
def activate(ctx: typer.Context, reason: Reason, actor: Actor = None, yes: Yes = False) -> None:
    """Latch the emergency stop, then cancel every order and close every position until the
    account is flat (or the deadline passes). Needs no worker to be running."""
    kill_switch(state(ctx).core(), reason, actor or default_actor(), yes=yes)


def kill_switch(core: Core, reason: str, actor: str, *, yes: bool) -> None:
    """``emergency activate`` on ``core``: latch, flatten, say the outcome. Returns when the
    account was seen flat; raises typer.Exit(1) (venue) or typer.Exit(4) (store) when not,
    a store lost while latching included (the latch may then be recorded or not). The latch's
    commit and the flatten each wait for the store's answers no longer than the flatten
    deadline (adapters.answer_deadline): a store that stops answering ends the command "not
    seen flat" instead of never."""
    flattener = core.flattener(progress=lambda line: err.print(f"  {line}", markup=False))
    if yes:  # no prompt to wait for: the venue's first read overlaps the activation's commit
        flattener.read_ahead()
    # Its commit may have reached the server before the answer was lost: say both.
    with (
        _not_seen_flat_if_store_lost(
            lambda lost: (
                f"the emergency stop may not be latched (store unavailable: {lost}), "
                "and nothing was sent to the venue. Close the positions at the venue itself; if "
                "the latch was recorded, `tradecore run` flattens once the store answers."
            )
        ),
        answer_deadline(core.settings.flatten_deadline),
    ):
        activation = core.commands.activate_emergency(
            reason=reason, actor=actor, source="operator", confirm=confirmer(yes)
        )
    if activation.activated:
        err.print(
            f"[bold red]emergency stop ACTIVE[/] (activation {activation.activation_number}, "
            f"policy version {activation.policy_version}); flattening on {core.venue().name}"
        )
    else:
        err.print(
            f"emergency stop was already active (activation {activation.activation_number}: "
            f"{activation.reason}); checking the account is flat"
        )
    # A connection the flatten holds (its lock, the order-flow barrier) may go with the
    # server: say what is not known, with the store's exit code.
    with _not_seen_flat_if_store_lost(
        lambda lost: (
            f"{lost} while flattening. The emergency stop is latched; `tradecore run` keeps trying."
        )
    ):
        report = flattener.run()
    # Exit 0 only when the account was seen flat; anything else says what it could not do.
    if report is None:
        # The store shows the latch released meanwhile (an operator's reset): say so, and
        # still look at the venue rather than assume it is flat.
        positions, orders = positions_and_orders(core.venue())
        if positions or orders:
            err.print(
                f"[bold red]ACCOUNT NOT FLAT[/]: the emergency stop was reset meanwhile by "
                f"someone else with {positions} position(s) and {orders} order(s) open"
            )
            raise typer.Exit(1)
        out.print("the emergency stop was reset meanwhile by someone else; account flat")
        return
    if report.flat:
        out.print(
            f"account flat: {report.positions_closed} position(s) closed, "
            f"{report.orders_canceled} order(s) canceled, time to flat {report.time_to_flat_ms} ms"
        )
        return
    if report.activation_number is None:
        err.print(
            f"[bold red]ACCOUNT NOT SEEN FLAT[/]: the store did not answer for "
            f"{core.settings.flatten_deadline:.0f}s ({report.last_error}), so nothing was sent. "
            "The emergency stop is latched; `tradecore run` keeps trying."
        )
        raise typer.Exit(4)
    err.print(
        f"[bold red]ACCOUNT NOT FLAT[/] after {core.settings.flatten_deadline:.0f}s: "
        f"{report.left()} (last error: {report.last_error}). The emergency stays active; "
        "`tradecore run` keeps trying."
    )
    # Not flat: 4 when what stopped it was the store (the documented code for a store that is
    # unavailable), 1 otherwise (the venue). Never 0.
    raise typer.Exit(4 if report.stopped_by_store else 1)


@contextmanager
def _not_seen_flat_if_store_lost(says: Callable[[StoreUnavailable], str]) -> Iterator[None]:
    """A store lost inside the block ends the command: "ACCOUNT NOT SEEN FLAT: " and what
    ``says`` of it, exit 4. Any other error passes."""
    try:
        yield
    except Exception as error:
        lost = lost_store(error)
        if lost is None:
            raise
        err.print(f"[bold red]ACCOUNT NOT SEEN FLAT[/]: {says(lost)}")
        raise typer.Exit(4) from None


@app.command("reset")
def reset(
    ctx: typer.Context,
    reason: Reason,
    actor: Actor = None,
    force: Annotated[
        bool, typer.Option("--force", help="reset although the venue is not (known to be) flat")
    ] = False,
    yes: Yes = False,
) -> None:
    """Release the latch once the venue shows no position and no open order (or --force).
    New trades stay stopped until `policy set --allow-new-trades true`."""
    core = state(ctx).core()
    result = core.commands.reset_emergency(
        reason=reason,
        actor=actor or default_actor(),
        venue_exposure=lambda: positions_and_orders(core.venue()),
        force=force,
        confirm=confirmer(yes),
    )
    out.print(
        f"emergency stop reset (activation {result.activation_number}); new trades remain "
        "disabled until an operator allows them"
    )


@app.command("status")
def status(ctx: typer.Context, as_json: Json = False) -> None:
    """The latch: active or not, why, since when, by whom; the flatten result; the last reset."""
    snapshot, _ = current_snapshot(state(ctx).reading())
    data = emergency_dict(snapshot)
    if as_json:
        emit_json(data)
        return
    for key, value in data.items():
        out.print(f"{key:18} {value}")
