"""``tradecore data fetch``'s paging, offline: real ccxt clients (Binance USD-M, Bybit) whose
HTTP session is the simulated venue of ``tests/ccxt_sim.py`` serving synthetic candles
through the venues' real kline endpoints (ccxt builds, signs and parses every request)."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from adapters.ccxt.history import CcxtHistory
from app.commands.candle_history_fetch import HEADER, FetchReport, fetch_to_file
from domain.market_data import CandleDataInvalid, parse_ohlcv_csv
from domain.venue import VenueError
from tests.ccxt_sim import SimulatedSession, simulated_exchange

SYMBOL = "BTC/USDT:USDT"
T0 = datetime(2022, 1, 17, tzinfo=UTC)
MINUTE = 60_000


def synthetic_candles(n: int, *, missing: range = range(0)) -> list[tuple[int, ...]]:
    """``n`` one-minute candles from T0 (synthetic: a smooth wave), ``missing`` left out."""
    rows = []
    for i in range(n):
        if i in missing:
            continue
        close = 40_000 + 500 * math.sin(i / 20)
        rows.append(
            (int(T0.timestamp() * 1000) + i * MINUTE, close - 5, close + 20, close - 25, close, 3.5)
        )
    return rows


def venue(exchange_id: str, candles: list[tuple[int, ...]]) -> tuple[CcxtHistory, SimulatedSession]:
    exchange, session = simulated_exchange(exchange_id, {SYMBOL: Decimal(40_000)}, rate_limit=False)
    session.candles = candles  # type: ignore[assignment]
    return CcxtHistory(exchange), session


def klines(session: SimulatedSession) -> list[dict[str, object]]:
    return [c.params for c in session.calls if "kline" in c.path.lower()]


def fetch(
    history: CcxtHistory,
    out: Path,
    *,
    since: datetime = T0,
    until: timedelta = timedelta(hours=5),
    sleep: Callable[[float], None] = lambda _: None,
) -> FetchReport:
    """Pages of 100 from ``since`` until ``until`` past T0, into ``out``."""
    return fetch_to_file(
        history,
        symbol=SYMBOL,
        timeframe="1m",
        since=since,
        until=T0 + until,
        out=out,
        page_size=100,
        sleep=sleep,
    )


@pytest.mark.parametrize("exchange_id", ["binanceusdm", "bybit"])
def test_three_pages_are_fetched_in_order_into_one_readable_file(
    tmp_path: Path, exchange_id: str
) -> None:
    history, session = venue(exchange_id, synthetic_candles(250))
    out = tmp_path / "btc.csv"

    report = fetch(history, out)

    assert report.written == 250 and report.gaps == []
    assert len(klines(session)) == 4  # 100 + 100 + 50, then an empty page ends it
    candles = parse_ohlcv_csv(out.read_text(), source=str(out))
    assert len(candles) == 250
    assert candles.first == T0 and candles.last == T0 + timedelta(minutes=249)
    assert candles.close[10] == pytest.approx(40_000 + 500 * math.sin(10 / 20))


def test_a_rate_limit_answer_is_retried_and_the_file_has_every_candle_once(
    tmp_path: Path,
) -> None:
    history, session = venue("binanceusdm", synthetic_candles(250))
    refused: list[str] = []

    def refuse_the_second_page_once(method: str, path: str, params: dict[str, object]) -> bool:
        if path.endswith("klines") and len(klines(session)) == 1 and not refused:
            refused.append(path)
            return True
        return False

    session.refuse = refuse_the_second_page_once
    waits: list[float] = []
    out = tmp_path / "btc.csv"

    report = fetch(history, out, sleep=waits.append)

    assert refused and waits  # refused once, waited, asked again
    assert report.written == 250
    lines = out.read_text().splitlines()
    assert lines[0] == HEADER and len(lines) == 251 and len(set(lines)) == 251


def test_a_second_run_resumes_after_the_last_candle_and_cuts_a_torn_line(
    tmp_path: Path,
) -> None:
    out = tmp_path / "btc.csv"
    history, _ = venue("bybit", synthetic_candles(250))
    first = fetch(history, out, until=timedelta(minutes=120))
    assert first.written == 120
    with out.open("a") as file:  # the machine lost power mid-line
        file.write("2022-01-17T02:00:00Z,40000.1,400")

    history, session = venue("bybit", synthetic_candles(250))
    second = fetch(history, out)

    assert second.resumed_after == T0 + timedelta(minutes=119)
    assert second.written == 130
    assert int(str(klines(session)[0]["start"])) == int(T0.timestamp() * 1000) + 120 * MINUTE
    candles = parse_ohlcv_csv(out.read_text(), source=str(out))  # strictly increasing times
    assert len(candles) == 250 and candles.last == T0 + timedelta(minutes=249)


def test_a_hole_in_the_venues_history_is_reported_as_a_gap(tmp_path: Path) -> None:
    history, _ = venue("binanceusdm", synthetic_candles(250, missing=range(120, 125)))

    report = fetch(history, tmp_path / "btc.csv", since=T0 - timedelta(minutes=3))

    assert report.written == 245
    assert report.gaps == [
        (T0 - timedelta(minutes=3), T0 - timedelta(minutes=1)),  # before the venue's first
        (T0 + timedelta(minutes=120), T0 + timedelta(minutes=124)),
    ]


def test_a_file_of_another_format_is_refused_untouched(tmp_path: Path) -> None:
    out = tmp_path / "notes.csv"
    out.write_text("date,price\n2022-01-17,40000\n")
    history, session = venue("binanceusdm", synthetic_candles(10))

    with pytest.raises(CandleDataInvalid, match="line 1: not a candle file"):
        fetch(history, out, until=timedelta(hours=1))
    assert out.read_text() == "date,price\n2022-01-17,40000\n" and klines(session) == []


def test_an_unknown_symbol_or_timeframe_is_a_venue_refusal(tmp_path: Path) -> None:
    history, _ = venue("binanceusdm", synthetic_candles(10))
    with pytest.raises(VenueError, match="timeframe '7m'"):
        history.timeframe_ms("7m")
    with pytest.raises(VenueError, match="no market ETH/USDT:USDT"):
        history.page("ETH/USDT:USDT", "1m", 0, 10)
