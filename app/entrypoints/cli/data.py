"""``tradecore data fetch``: a venue's recorded candles into a CSV file (no API keys)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import Progress

from adapters.clock import utc_now
from app.commands.candle_history_fetch import PAGE_SIZE, FetchReport, fetch_to_file
from app.entrypoints.cli.audit import instant
from app.entrypoints.cli.options import Json
from app.entrypoints.cli.output import emit_json, err, out
from domain.errors import InvalidCommand
from domain.validation import integer_value, symbol_value
from domain.venue import VenueError

app = typer.Typer(help="Market data: fetch a venue's candle history.", no_args_is_help=True)


@app.command("fetch")
def fetch(
    exchange: Annotated[str, typer.Option("--exchange", help="ccxt exchange id, e.g. bybit")],
    symbol: Annotated[str, typer.Option("--symbol", help="unified symbol, e.g. BTC/USDT:USDT")],
    since: Annotated[str, typer.Option("--since", help="first candle, ISO 8601 (UTC if no zone)")],
    out_file: Annotated[Path, typer.Option("--out", help="CSV file (appended to, resumed)")],
    timeframe: Annotated[str, typer.Option("--timeframe", help="candle length")] = "1m",
    until: Annotated[
        str | None,
        typer.Option("--until", help="end, exclusive (default: now)", show_default=False),
    ] = None,
    page_size: Annotated[int, typer.Option("--page-size", help="candles a request")] = PAGE_SIZE,
    as_json: Json = False,
) -> None:
    """Fetch ``--symbol``'s candles from ``--since`` to ``--until`` page by page (ccxt's
    fetch_ohlcv, under the venue's rate limit) into ``--out``. An existing file of this
    format is resumed after its last candle; gaps in the venue's history are reported."""
    from adapters.ccxt.errors import CcxtConfigurationError  # noqa: PLC0415
    from adapters.ccxt.history import CcxtHistory  # noqa: PLC0415 - ccxt takes ~1 s to import

    start = instant(since, "--since")
    end = instant(until, "--until") if until else utc_now()
    symbol = symbol_value(symbol, "--symbol")
    page_size = integer_value(page_size, "--page-size", column=(1, 10_000))
    if not out_file.parent.is_dir():
        raise InvalidCommand(f"--out: folder {out_file.parent} does not exist")
    try:
        history = CcxtHistory.from_id(exchange)
        history.timeframe_ms(timeframe)
    except (CcxtConfigurationError, VenueError) as e:
        raise InvalidCommand(str(e)) from None
    report = _with_progress(
        lambda progress: fetch_to_file(
            history,
            symbol=symbol,
            timeframe=timeframe,
            since=start,
            until=end,
            out=out_file,
            page_size=page_size,
            progress=progress,
        )
    )
    if as_json:
        emit_json(report)
        return
    _print(report)


def _with_progress(run: Callable[[Callable[[float], None]], FetchReport]) -> FetchReport:
    """``run`` with a progress bar on a terminal (nothing on a pipe)."""
    if not err.is_terminal:
        return run(lambda _: None)
    with Progress(console=err, transient=True) as bar:
        task = bar.add_task("fetching candles", total=1.0)
        return run(lambda done: bar.update(task, completed=done))


def _print(report: FetchReport) -> None:
    if report.resumed_after is not None:
        out.print(f"resumed after {report.resumed_after.isoformat()}")
    span = (
        f" ({report.first.isoformat()} .. {report.last.isoformat()})"
        if report.first and report.last
        else ""
    )
    out.print(f"{report.written} candle(s) in {report.pages} page(s) to {report.path}{span}")
    for first, last in report.gaps:
        out.print(f"gap: no candles from {first.isoformat()} to {last.isoformat()}")
