"""``tradecore policy show|set``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer

from app.entrypoints.cli.context import default_actor, state
from app.entrypoints.cli.options import Actor, Json, Reason, Yes
from app.entrypoints.cli.output import confirmer, emit_json, out
from app.queries.cli_views import current_snapshot, policy_dict
from domain.errors import InvalidCommand

app = typer.Typer(
    help="The trading policy: the single source of truth (P0-01).", no_args_is_help=True
)


@app.command("show")
def show(ctx: typer.Context, as_json: Json = False) -> None:
    """The policy as committed (the view, or the aggregate when the view is behind)."""
    snapshot, head = current_snapshot(state(ctx).reading())
    data = policy_dict(snapshot, head)
    if as_json:
        emit_json(data)
        return
    for key, value in data.items():
        out.print(f"{key:24} {value}")


def _bool(value: str | None, name: str) -> bool | None:
    if value is None:
        return None
    lowered = value.strip().lower()
    if lowered in ("true", "yes", "1", "on"):
        return True
    if lowered in ("false", "no", "0", "off"):
        return False
    raise InvalidCommand(f"{name} must be true or false, got {value!r}")


# The domain names fields; the operator typed options.
OPTION_NAMES = {
    "allow_new_trades": "--allow-new-trades",
    "max_leverage": "--max-leverage",
    "max_position_notional": "--max-position-notional",
    "drawdown_soft_threshold": "--drawdown-soft",
    "drawdown_hard_threshold": "--drawdown-hard",
    "price_collar": "--price-collar",
    "max_order_quantity": "--max-order-quantity",
    "max_order_notional": "--max-order-notional",
    "max_orders_per_second": "--max-orders-per-second",
    "duplicate_window_s": "--duplicate-window",
    "loss_streak_losses": "--loss-streak",
    "loss_streak_window_s": "--loss-streak-window",
    "loss_streak_cooldown_s": "--loss-streak-cooldown",
}


def _control(option: str, help_text: str) -> Any:
    return typer.Option(option, help=help_text, show_default=False)


@contextmanager
def _option_names() -> Iterator[None]:
    try:
        yield
    except InvalidCommand as e:
        message = str(e)
        for field, option in OPTION_NAMES.items():
            message = message.replace(field, option)
        raise InvalidCommand(message) from None


@app.command("set")
def set_policy(
    ctx: typer.Context,
    reason: Reason,
    allow_new_trades: Annotated[
        str | None, typer.Option("--allow-new-trades", metavar="true|false", show_default=False)
    ] = None,
    max_leverage: Annotated[str | None, typer.Option("--max-leverage", show_default=False)] = None,
    max_position_notional: Annotated[
        str | None, typer.Option("--max-position-notional", show_default=False)
    ] = None,
    drawdown_soft: Annotated[
        str | None, typer.Option("--drawdown-soft", help="e.g. -0.05", show_default=False)
    ] = None,
    drawdown_hard: Annotated[
        str | None, typer.Option("--drawdown-hard", help="e.g. -0.10", show_default=False)
    ] = None,
    price_collar: Annotated[
        str | None,
        _control(
            "--price-collar",
            "pre-trade: a limit/stop price further than this fraction of the mark is refused "
            "(0.05 = 5 %)",
        ),
    ] = None,
    max_order_quantity: Annotated[
        str | None, _control("--max-order-quantity", "pre-trade: per order, base units")
    ] = None,
    max_order_notional: Annotated[
        str | None,
        _control("--max-order-notional", "pre-trade: per order, settlement (quote) currency"),
    ] = None,
    max_orders_per_second: Annotated[
        str | None,
        _control(
            "--max-orders-per-second",
            "pre-trade: opening orders per second per account (reduce-only never throttled)",
        ),
    ] = None,
    duplicate_window: Annotated[
        str | None,
        _control(
            "--duplicate-window",
            "pre-trade: seconds in which the same symbol/side/quantity is refused (0: off)",
        ),
    ] = None,
    loss_streak: Annotated[
        str | None,
        _control("--loss-streak", "pre-trade: losing closes in a row that stop new entries"),
    ] = None,
    loss_streak_window: Annotated[
        str | None,
        _control("--loss-streak-window", "pre-trade: seconds the losing closes must fall in"),
    ] = None,
    loss_streak_cooldown: Annotated[
        str | None,
        _control("--loss-streak-cooldown", "pre-trade: seconds entries stay stopped"),
    ] = None,
    actor: Actor = None,
    yes: Yes = False,
) -> None:
    """Change trading permission, risk limits and pre-trade controls (one recorded change)."""
    allowed = _bool(allow_new_trades, "--allow-new-trades")
    core = state(ctx).core()
    with _option_names():
        change = core.commands.update_policy(
            actor=actor or default_actor(),
            reason=reason,
            allow_new_trades=allowed,
            max_leverage=max_leverage,
            max_position_notional=max_position_notional,
            drawdown_soft_threshold=drawdown_soft,
            drawdown_hard_threshold=drawdown_hard,
            pretrade={
                "price_collar": price_collar,
                "max_order_quantity": max_order_quantity,
                "max_order_notional": max_order_notional,
                "max_orders_per_second": max_orders_per_second,
                "duplicate_window_s": duplicate_window,
                "loss_streak_losses": loss_streak,
                "loss_streak_window_s": loss_streak_window,
                "loss_streak_cooldown_s": loss_streak_cooldown,
            },
            confirm=confirmer(yes),
        )
    if change.changed:
        out.print(f"policy updated: version {change.version}")
    else:
        out.print(f"policy unchanged: version {change.version}")


@app.command("reallow-entries")
def reallow_entries(
    ctx: typer.Context,
    reason: Reason,
    actor: Actor = None,
    yes: Yes = False,
) -> None:
    """Lift the loss-streak stop before its cooldown ends (the losing closes so far never
    count again). ``policy show`` shows the stop as loss_stop_until / loss_stop_reason."""
    change = (
        state(ctx)
        .core()
        .commands.clear_loss_streak_stop(
            actor=actor or default_actor(), reason=reason, confirm=confirmer(yes)
        )
    )
    if change.changed:
        out.print(f"loss-streak stop lifted: policy version {change.version}")
    else:
        out.print(f"no loss-streak stop recorded: policy version {change.version}")
