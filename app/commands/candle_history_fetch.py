"""``tradecore data fetch``: a venue's candle history into a CSV file, page by page.

The file is the one candle format tradecore reads everywhere (``domain.market_data``): a
header ``timestamp,open,high,low,close,volume``, one candle a line, ISO-8601 UTC times.
Each page is appended whole and flushed to disk before the next is asked for, so a run that
is stopped leaves a file that ends with a complete page; the next run on the same file
resumes after its last candle (a torn last line, from a machine that lost power mid-write,
is cut off first). Missing candles are not invented: each hole in the venue's history is
reported as a gap.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path
from typing import Protocol, TextIO

from adapters.venues import retry_transient
from domain.errors import InvalidCommand
from domain.market_data import COLUMNS, CandleDataInvalid
from domain.validation import instant_text

# (epoch ms, open, high, low, close, volume)
Row = tuple[int, float, float, float, float, float]
HEADER = ",".join(COLUMNS)
PAGE_SIZE = 1000  # candles a request: within Binance's 1,500 and Bybit's 1,000


class CandleHistory(Protocol):
    """A venue's public candle history (``adapters.ccxt.history.CcxtHistory``)."""

    name: str

    def timeframe_ms(self, timeframe: str) -> int: ...

    def page(self, symbol: str, timeframe: str, since_ms: int, limit: int) -> list[Row]: ...


@dataclass
class FetchReport:
    """What one run wrote. Times are candle open times, UTC."""

    path: Path
    written: int = 0  # candles this run appended
    pages: int = 0  # requests answered
    resumed_after: datetime | None = None  # the file's last candle before this run
    first: datetime | None = None  # of the candles written by this run
    last: datetime | None = None
    # (first, last) open time of each run of candles the venue does not have
    gaps: list[tuple[datetime, datetime]] = field(default_factory=list)


def fetch_to_file(
    history: CandleHistory,
    *,
    symbol: str,
    timeframe: str,
    since: datetime,
    until: datetime,
    out: Path,
    page_size: int = PAGE_SIZE,
    progress: Callable[[float], None] = lambda _: None,
    sleep: Callable[[float], None] | None = None,
) -> FetchReport:
    """Append ``symbol``'s ``timeframe`` candles opening in [since, until) to ``out``
    (created with its header when missing), resuming after the file's last candle.

    ``progress`` gets the fraction of the span done (0..1) after each page. Transient venue
    errors (rate limits, outages) are retried with the one read back-off
    (``retry_transient``). Raises CandleDataInvalid when ``out`` is not a candle file of this
    format or ``until`` is not after ``since``; VenueError when the venue refuses.
    """
    if until <= since:
        raise CandleDataInvalid(f"--until {until.isoformat()} is not after --since")
    step = history.timeframe_ms(timeframe)
    report = FetchReport(out)
    start, end = _millis(since), _millis(until)
    last = _resume_point(out)
    if last is not None:
        report.resumed_after = last
        start = max(start, _millis(last) + step)
    cursor, previous = start, (_millis(last) if last is not None else None)
    with out.open("a", encoding="utf-8", newline="") as file:
        if last is None:
            _write(file, HEADER + "\n")
        while cursor < end:
            page = _read_page(history, symbol, timeframe, cursor, page_size, sleep)
            report.pages += 1
            rows = [r for r in page if cursor <= r[0] < end]
            if not rows:
                break  # the venue has nothing more in the span
            expected = previous + step if previous is not None else start
            if rows[0][0] > expected:  # a hole before this page (or at the span's start)
                report.gaps.append((_time(expected), _time(rows[0][0] - step)))
            for before, after in pairwise(rows):
                if after[0] - before[0] > step:
                    report.gaps.append((_time(before[0] + step), _time(after[0] - step)))
            _write(file, "".join(_line(r) for r in rows))
            report.written += len(rows)
            report.first = report.first or _time(rows[0][0])
            report.last = _time(rows[-1][0])
            previous, cursor = rows[-1][0], rows[-1][0] + step
            progress(min((cursor - start) / max(end - start, 1), 1.0))
    return report


def _read_page(
    history: CandleHistory,
    symbol: str,
    timeframe: str,
    since_ms: int,
    limit: int,
    sleep: Callable[[float], None] | None,
) -> list[Row]:
    def call() -> list[Row]:
        return sorted(history.page(symbol, timeframe, since_ms, limit))

    return retry_transient(call) if sleep is None else retry_transient(call, sleep=sleep)


def _resume_point(out: Path) -> datetime | None:
    """The last candle's time in ``out``; None when there is no file or only a header.
    A torn last line is cut off. Raises CandleDataInvalid when the file is not this
    command's CSV."""
    if not out.exists() or out.stat().st_size == 0:
        return None
    with out.open("rb+") as file:
        data = file.read()
        if not data.endswith(b"\n"):  # a line torn by a crash mid-write: drop it
            keep = data.rfind(b"\n") + 1
            file.truncate(keep)
            data = data[:keep]
    lines = data.decode("utf-8", errors="replace").splitlines()
    if not lines or lines[0].strip().lower() != HEADER:
        raise CandleDataInvalid(f"{out}: line 1: not a candle file of this format ({HEADER})")
    body = [line for line in lines[1:] if line.strip()]
    if not body:
        return None
    try:
        return instant_text(body[-1].split(",", 1)[0], "timestamp")
    except InvalidCommand as e:
        raise CandleDataInvalid(f"{out}: line {len(lines)}: {e}") from None


def _write(file: TextIO, text: str) -> None:
    """Append ``text`` and put it on disk before the next page is asked for."""
    file.write(text)
    file.flush()
    os.fsync(file.fileno())


def _line(row: Row) -> str:
    stamp = _time(row[0]).strftime("%Y-%m-%dT%H:%M:%SZ")
    return ",".join([stamp, *(repr(v) for v in row[1:])]) + "\n"


def _millis(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _time(millis: int) -> datetime:
    return datetime.fromtimestamp(millis / 1000, UTC)
