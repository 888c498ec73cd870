"""``tradecore paper …``: the paper venue's back office, for drills and tests.

These act as the venue's own operator would (deposit, move the market, trade by hand), so
fault injection never applies to them; it applies to tradecore's requests through the port.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Annotated

import typer

from adapters.paper.faults import FaultSettings
from adapters.paper.venue import PaperVenue
from app.entrypoints.cli.context import state
from app.entrypoints.cli.options import Json
from app.entrypoints.cli.output import emit_json, out
from domain.errors import InvalidCommand
from domain.validation import decimal_value
from domain.venue import Balance, OrderRequest

app = typer.Typer(help="The paper venue's back office (drills and tests).", no_args_is_help=True)


def _venue(ctx: typer.Context) -> PaperVenue:
    core = state(ctx).core()
    venue = core.venue()
    if not isinstance(venue, PaperVenue):
        raise InvalidCommand(
            f"the configured exchange is {core.settings.exchange!r}, not the paper venue"
        )
    return venue.admin()


def _decimal(value: str | None, option: str) -> Decimal | None:
    return None if value is None else decimal_value(value, option)


@app.command("deposit")
def deposit(
    ctx: typer.Context,
    amount: Annotated[str, typer.Option("--amount", help="USDT to add to the wallet")],
    as_json: Json = False,
) -> None:
    """Add funds to the paper wallet, booked in the venue's ledger as a deposit."""
    _booked(_venue(ctx).deposit, amount, as_json)


@app.command("withdraw")
def withdraw(
    ctx: typer.Context,
    amount: Annotated[str, typer.Option("--amount", help="USDT to take from the wallet")],
    as_json: Json = False,
) -> None:
    """Take funds out of the paper wallet, booked in the venue's ledger as a withdrawal.

    More than the free balance (equity not held as margin) is refused with exit 2, as the
    venue refuses an impossible request: nothing is booked.
    """
    _booked(_venue(ctx).withdraw, amount, as_json)


def _booked(book: Callable[[Decimal], Balance], amount: str, as_json: bool) -> None:
    value = _decimal(amount, "--amount")
    assert value is not None
    balance = book(value)
    if as_json:
        emit_json({"wallet": balance.wallet, "equity": balance.equity})
    else:
        out.print(f"wallet {balance.wallet} {balance.currency}, equity {balance.equity}")


@app.command("price")
def price(
    ctx: typer.Context,
    symbol: Annotated[str, typer.Option("--symbol", help="e.g. BTC/USDT:USDT")],
    value: Annotated[str, typer.Option("--price", help="the new mark price")],
) -> None:
    """Move a symbol's mark price; resting orders it crosses execute."""
    number = _decimal(value, "--price")
    assert number is not None
    executed = _venue(ctx).set_price(symbol, number)
    out.print(f"{symbol} mark {number}; {len(executed)} resting order(s) executed")


@app.command("order")
def order(
    ctx: typer.Context,
    symbol: Annotated[str, typer.Option("--symbol")],
    side: Annotated[str, typer.Option("--side", help="buy|sell")],
    qty: Annotated[str, typer.Option("--qty", help="quantity in base currency")],
    order_type: Annotated[str, typer.Option("--type", help="market|limit|stop")] = "market",
    limit_price: Annotated[
        str | None, typer.Option("--price", help="limit price, or a stop's trigger")
    ] = None,
    reduce_only: Annotated[bool, typer.Option("--reduce-only")] = False,
    position_side: Annotated[
        str | None, typer.Option("--position-side", help="long|short (hedge mode)")
    ] = None,
    as_json: Json = False,
) -> None:
    """Place an order by hand, as a trader on the venue's website would."""
    if side not in ("buy", "sell"):
        raise InvalidCommand(f"--side must be buy or sell, got {side!r}")
    if order_type not in ("market", "limit", "stop"):
        raise InvalidCommand(f"--type must be market, limit or stop, got {order_type!r}")
    if position_side not in (None, "long", "short"):
        raise InvalidCommand(f"--position-side must be long or short, got {position_side!r}")
    quantity = _decimal(qty, "--qty")
    assert quantity is not None
    given = _decimal(limit_price, "--price")
    if order_type != "market" and given is None:
        raise InvalidCommand(f"a {order_type} order needs --price")
    request = OrderRequest(
        symbol=symbol,
        side=side,  # type: ignore[arg-type]
        quantity=quantity,
        client_order_id=f"manual-{uuid.uuid4().hex[:24]}",
        type=order_type,  # type: ignore[arg-type]
        price=given if order_type == "limit" else None,
        stop_price=given if order_type == "stop" else None,
        reduce_only=reduce_only,
        position_side=position_side,  # type: ignore[arg-type]
    )
    placed = _venue(ctx).create_order(request)
    if as_json:
        emit_json(placed)
    else:
        out.print(
            f"order {placed.id} {placed.status}: {placed.side} {placed.filled}/{placed.quantity} "
            f"{placed.symbol} avg {placed.average_price}"
        )


@app.command("faults")
def faults(
    ctx: typer.Context,
    error_rate: Annotated[str, typer.Option("--error-rate")] = "0",
    timeout_rate: Annotated[str, typer.Option("--timeout-rate")] = "0",
    partial_fill_rate: Annotated[str, typer.Option("--partial-fill-rate")] = "0",
    rate_limit_rate: Annotated[str, typer.Option("--rate-limit-rate")] = "0",
    reject_rate: Annotated[str, typer.Option("--reject-rate")] = "0",
    seed: Annotated[int, typer.Option("--seed")] = 0,
    off: Annotated[bool, typer.Option("--off", help="clear every fault")] = False,
) -> None:
    """Inject seeded, deterministic faults into tradecore's requests to the paper venue."""
    settings = None
    if not off:
        rates = {
            name: _decimal(value, f"--{name.replace('_', '-')}")
            for name, value in (
                ("error_rate", error_rate),
                ("timeout_rate", timeout_rate),
                ("partial_fill_rate", partial_fill_rate),
                ("rate_limit_rate", rate_limit_rate),
                ("reject_rate", reject_rate),
            )
        }
        settings = FaultSettings(seed=seed, **rates)  # type: ignore[arg-type]
    applied = _venue(ctx).set_faults(settings)
    out.print(f"paper faults: {applied}")


@app.command("mode")
def mode(
    ctx: typer.Context,
    position_mode: Annotated[str, typer.Argument(help="one_way|hedge")],
) -> None:
    """Switch the paper account between one-way and hedge position mode (when flat)."""
    _venue(ctx).set_position_mode(position_mode)
    out.print(f"paper position mode: {position_mode}")
