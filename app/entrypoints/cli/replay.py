"""``tradecore replay``: recorded candles through the whole safety chain
(``app.entrypoints.replay``)."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any

import typer

from adapters.clock import MarketClock
from app.bootstrap import SERVICE_POOL_SIZE
from app.entrypoints.cli.audit import instant
from app.entrypoints.cli.context import state
from app.entrypoints.cli.input_file import read_input_file
from app.entrypoints.cli.options import Json
from app.entrypoints.cli.output import emit_json, err, out
from app.entrypoints.cli.replay_html import write_html
from app.entrypoints.replay import (
    DEFAULT_SYMBOL,
    ReplayRequest,
    plan,
    replay_settings,
    require_fresh,
    run_replay,
)
from domain.errors import InvalidCommand
from domain.market_data import parse_ohlcv
from domain.validation import symbol_value, text_value


def replay(
    ctx: typer.Context,
    candles: Annotated[
        Path,
        typer.Option(
            "--candles", help="CSV timestamp,open,high,low,close,volume or ccxt/Freqtrade JSON"
        ),
    ],
    symbol: Annotated[str, typer.Option("--symbol", help="the paper symbol")] = DEFAULT_SYMBOL,
    start: Annotated[
        str | None, typer.Option("--from", help="first candle replayed", show_default=False)
    ] = None,
    end: Annotated[
        str | None, typer.Option("--to", help="end, exclusive", show_default=False)
    ] = None,
    speed: Annotated[
        float | None,
        typer.Option("--speed", help="market seconds per wall second", show_default=False),
    ] = None,
    max_speed: Annotated[
        bool, typer.Option("--max-speed", help="as fast as the chain goes (the default)")
    ] = False,
    train_until: Annotated[
        str | None,
        typer.Option(
            "--train-until",
            help="train and promote a model on the candles before T; replay from T",
            show_default=False,
        ),
    ] = None,
    hold: Annotated[
        str | None,
        typer.Option(
            "--hold", help="a fixed long of this many times the deposit", show_default=False
        ),
    ] = None,
    glitch_rate: Annotated[
        float, typer.Option("--glitch-rate", help="bad ticks per market hour")
    ] = 0.0,
    signals: Annotated[
        bool,
        typer.Option(
            "--signals/--no-signals",
            help="let the signal engine trade (--no-signals: the exposure is the --hold alone)",
        ),
    ] = True,
    seed: Annotated[int, typer.Option("--seed", help="seed of the glitches and the model")] = 7,
    as_json: Json = False,
    html: Annotated[
        Path | None, typer.Option("--html", help="also write an HTML report", show_default=False)
    ] = None,
) -> None:
    """On a fresh store: replay recorded candles through the whole chain (paper venue marks
    along each candle, the worker, the breaker, the flattener) on market time, then report
    trades, equity path, breaches, activations, sizing, refusals, models and glitches."""
    if speed is not None and max_speed:
        raise InvalidCommand("--speed and --max-speed exclude each other")
    request = ReplayRequest(
        symbol=symbol_value(symbol, "--symbol"),
        start=instant(start, "--from") if start else None,
        end=instant(end, "--to") if end else None,
        speed=speed,
        train_until=instant(train_until, "--train-until") if train_until else None,
        hold=_multiple(hold) if hold is not None else None,
        glitch_rate=glitch_rate,
        seed=seed,
        signals=signals,
    )
    if html is not None and not html.parent.is_dir():
        raise InvalidCommand(f"--html: folder {html.parent} does not exist")
    # The file is read and checked whole before the store is touched: a bad line is exit 2
    # with nothing written.
    parsed = parse_ohlcv(
        read_input_file(candles, "--candles"), source=text_value(candles.name, "--candles")
    )
    the_plan = plan(parsed, request)
    cli = state(ctx)
    core = cli.core(
        pool_size=SERVICE_POOL_SIZE,
        clock=MarketClock(the_plan.start),
        settings=replay_settings(cli.settings(), request, the_plan.step),
    )
    require_fresh(core, "replay")
    err.print(
        f"tradecore replay of {len(the_plan.replayed)} candle(s) of {candles.name} on "
        f"{core.address.display}"
    )
    result = run_replay(core, the_plan, request, lambda line: err.print(f"  {line}", markup=False))
    if html is not None:
        write_html(result, html)
    if as_json:
        emit_json(result)
        return
    print_replay(result)


def _multiple(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise InvalidCommand(f"--hold: not a number: {text!r}") from None
    if not value.is_finite():
        raise InvalidCommand(f"--hold: must be finite, got {text!r}")
    return value


def print_replay(result: dict[str, Any]) -> None:
    """The report for humans (stdout)."""
    r, eq, trades = result["replay"], result["equity"], result["trades"]
    out.print(
        f"replayed {r['candles']} candle(s) of {r['symbol']} from {r['from']} to {r['to']} "
        f"in {r['wall_seconds']} s ({r['candles_per_second']} candles/s), {r['marks']} marks",
        markup=False,
    )
    if result["hold"]:
        h = result["hold"]
        out.print(f"hold        long {h['quantity']} at {h['price']} ({h['multiple']}x)")
    out.print(
        f"trades      {trades['opened']} opened, {trades['closed']} closed, realized PnL "
        f"{trades['realized_pnl']:.2f} {dict(trades['by_reason'])}",
        markup=False,
    )
    deepest = eq["deepest_drawdown"]
    out.print(
        f"equity      {eq['readings']} readings ({eq['accepted']} accepted): first "
        f"{eq['first']}, last {eq['last']}, peak {eq['peak']}, deepest drawdown "
        f"{'-' if deepest is None else f'{deepest:.2%}'} at {eq['deepest_at']}",
        markup=False,
    )
    for b in result["breaches"]:
        out.print(f"breach      {b['type']} at {b['at']}: drawdown {b['drawdown']:.2%}")
    for a in result["activations"]:
        out.print(
            f"activation  {a['activated_at']} ({a['source']}): {a['trigger']}; flat at "
            f"{a['flat_at']} (market {a['time_to_flat_market_ms']} ms, wall "
            f"{a['time_to_flat_wall_ms']} ms)",
            markup=False,
        )
    if not result["activations"]:
        out.print("activation  none")
    s = result["sizing"]
    out.print(
        f"sizing      {s['decisions']} decision(s), {s['fallbacks']} fallback(s), caps {s['caps']}"
    )
    out.print(f"refusals    {result['gate_refusals'] or 'none'}", markup=False)
    m = result["models"]
    out.print(f"models      promoted {m['promoted']}, used for sizing {m['used_for_sizing']}")
    g = result["glitches"]
    if g["injected"]:
        out.print(f"glitches    {g['injected']} injected: {g['by_outcome']}", markup=False)
