"""OHLCV candles, their CSV form, and the signal model's features (pure, numpy).

Features, one row per candle (NaN until enough history):

- ``ret_1``, ``ret_3``, ``ret_12``: log return of the close over 1, 3 and 12 bars;
- ``vol_12``: realized volatility, the standard deviation of 1-bar log returns over 12 bars;
- ``range``: (high - low) / close of the bar;
- ``volume_z``: the bar's volume as a z-score over the last 20 bars (NaN when flat).

The label is 1 when the next close is above this one, else 0 (NaN on the last bar).
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from domain.errors import InvalidCommand
from domain.validation import instant_text

if TYPE_CHECKING:
    import numpy as np

COLUMNS = ("timestamp", "open", "high", "low", "close", "volume")
FEATURE_NAMES = ("ret_1", "ret_3", "ret_12", "vol_12", "range", "volume_z")
MIN_CANDLES = 50


class CandleDataInvalid(InvalidCommand):
    """An OHLCV file or series that cannot be used; the message names the file and line."""


@dataclass(frozen=True)
class Candles:
    timestamps: tuple[datetime, ...]
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray

    def __len__(self) -> int:
        return len(self.timestamps)

    @property
    def first(self) -> datetime:
        return self.timestamps[0]

    @property
    def last(self) -> datetime:
        return self.timestamps[-1]


def candles_from_rows(rows: list[tuple[datetime, float, float, float, float, float]]) -> Candles:
    """Candles from (time, open, high, low, close, volume) rows, oldest first."""
    import numpy as np  # noqa: PLC0415 - numpy is loaded by the commands that use candles

    data = np.array([r[1:] for r in rows], dtype=np.float64).reshape(len(rows), 5)
    return Candles(
        tuple(r[0] for r in rows), data[:, 0], data[:, 1], data[:, 2], data[:, 3], data[:, 4]
    )


def parse_ohlcv(text: str, *, source: str) -> Candles:
    """Candles from a file's text, CSV or JSON (told apart by the first character): the one
    reader of every candle file tradecore takes (training, replay, the demo's excerpt).

    CSV: see :func:`parse_ohlcv_csv`. JSON: an array of ``[time, open, high, low, close,
    volume]`` arrays, as ccxt's ``fetch_ohlcv`` and Freqtrade's data files write them
    (time in epoch ms, or ISO text). Rows oldest first, times strictly increasing, at least
    ``MIN_CANDLES``. Raises CandleDataInvalid naming ``source`` and the line."""
    if text.lstrip("\ufeff \t\r\n").startswith("["):
        return parse_ohlcv_json(text, source=source)
    return parse_ohlcv_csv(text, source=source)


def parse_ohlcv_json(text: str, *, source: str) -> Candles:
    """Candles from a JSON array of ``[time, open, high, low, close, volume]`` arrays.
    Raises CandleDataInvalid naming the line of the row (or of the syntax error)."""
    text = text.lstrip("\ufeff")
    decoder = json.JSONDecoder()
    at = _skip_space(text, 0)
    if text[at : at + 1] != "[":
        raise CandleDataInvalid(f"{source}: line {_line(text, at)}: not a JSON array")
    at = _skip_space(text, at + 1)
    times: list[datetime] = []
    rows: list[tuple[float, ...]] = []
    lines = _Lines(text)
    while text[at : at + 1] != "]":
        where = f"{source}: line {lines.at(at)}, candle {len(rows) + 1}"
        try:
            row, end = decoder.raw_decode(text, at)
        except json.JSONDecodeError as e:
            raise CandleDataInvalid(f"{source}: line {e.lineno}: not JSON: {e.msg}") from None
        if not isinstance(row, list) or len(row) < len(COLUMNS):
            raise CandleDataInvalid(
                f"{where}: a candle is an array of {len(COLUMNS)} values "
                f"({', '.join(COLUMNS)}), got {_shown(row)}"
            )
        when = _time(str(row[0]), where)
        values = tuple(
            _number(str(v), c, where) for v, c in zip(row[1:6], COLUMNS[1:], strict=True)
        )
        _check(when, values, where, times)
        times.append(when)
        rows.append(values)
        at = _skip_space(text, end)
        if text[at : at + 1] == ",":
            at = _skip_space(text, at + 1)
        elif text[at : at + 1] != "]":
            raise CandleDataInvalid(f"{source}: line {_line(text, at)}: expected ',' or ']'")
    if text[at + 1 :].strip():
        raise CandleDataInvalid(f"{source}: line {_line(text, at + 1)}: text after the array")
    return _candles(times, rows, source)


def parse_ohlcv_csv(text: str, *, source: str) -> Candles:
    """Candles from a CSV with a header naming timestamp, open, high, low, close, volume (any
    order, any case; other columns ignored). Raises CandleDataInvalid naming the line."""
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    header = [h.strip().lower() for h in next(reader, [])]
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise CandleDataInvalid(f"{source}: line 1: missing column(s) {', '.join(missing)}")
    try:
        return _parse_rows(reader, header, source)
    except csv.Error as e:  # e.g. a field past the csv module's size limit
        raise CandleDataInvalid(f"{source}: line {reader.line_num}: {e}") from None


def _parse_rows(reader: Any, header: list[str], source: str) -> Candles:
    index = {c: header.index(c) for c in COLUMNS}
    times: list[datetime] = []
    rows: list[tuple[float, ...]] = []
    for number, fields in enumerate(reader, start=2):
        if not fields or all(not f.strip() for f in fields):
            continue
        where = f"{source}: line {number}"
        if len(fields) < len(header):
            raise CandleDataInvalid(
                f"{where}: {len(fields)} field(s), the header has {len(header)}"
            )
        when = _time(fields[index["timestamp"]].strip(), where)
        values = tuple(_number(fields[index[c]].strip(), c, where) for c in COLUMNS[1:])
        _check(when, values, where, times)
        times.append(when)
        rows.append(values)
    return _candles(times, rows, source)


def _check(when: datetime, values: tuple[float, ...], where: str, times: list[datetime]) -> None:
    """One candle's rules, whatever the file's format."""
    o, h, low, c, v = values
    if min(o, h, low, c) <= 0 or v < 0:
        raise CandleDataInvalid(f"{where}: prices must be positive and volume not negative")
    if h < max(o, c) or low > min(o, c):
        raise CandleDataInvalid(f"{where}: high/low do not contain open and close")
    if times and when <= times[-1]:
        raise CandleDataInvalid(f"{where}: timestamp {when.isoformat()} is not after the last")


def _candles(times: list[datetime], rows: list[tuple[float, ...]], source: str) -> Candles:
    import numpy as np  # noqa: PLC0415 - numpy is loaded by the commands that use candles

    if len(rows) < MIN_CANDLES:
        raise CandleDataInvalid(f"{source}: too few candles ({len(rows)}; {MIN_CANDLES} needed)")
    data = np.array(rows, dtype=np.float64)
    return Candles(tuple(times), data[:, 0], data[:, 1], data[:, 2], data[:, 3], data[:, 4])


def _skip_space(text: str, at: int) -> int:
    while at < len(text) and text[at] in " \t\r\n":
        at += 1
    return at


def _line(text: str, at: int) -> int:
    return text.count("\n", 0, at) + 1


class _Lines:
    """Line numbers of increasing offsets, counted once (not from the start each time)."""

    def __init__(self, text: str) -> None:
        self.text, self.offset, self.line = text, 0, 1

    def at(self, offset: int) -> int:
        self.line += self.text.count("\n", self.offset, offset)
        self.offset = offset
        return self.line


def _shown(value: object) -> str:
    shown = json.dumps(value)
    return shown if len(shown) <= 60 else shown[:57] + "..."


def candle_path(o: float, h: float, low: float, c: float) -> tuple[float, float, float, float]:
    """The prices a replay shows inside one candle, in order: the open, then the nearer of
    high and low (the low on a tie: the adverse side first for a long), then the other,
    then the close. So a candle's low and high are each seen once, as a mark."""
    if h - o < o - low:
        return (o, h, low, c)
    return (o, low, h, c)


def training_window(c: Candles, until: datetime) -> Candles:
    """The candles that open before ``until`` (what a model may learn from when the
    replay starts at ``until``: nothing at or after it)."""
    keep = sum(1 for t in c.timestamps if t < until)
    return window(c, 0, keep)


def window(c: Candles, start: int, stop: int) -> Candles:
    """Candles ``start`` to ``stop`` (exclusive), positions in ``c``."""
    return Candles(
        c.timestamps[start:stop],
        c.open[start:stop],
        c.high[start:stop],
        c.low[start:stop],
        c.close[start:stop],
        c.volume[start:stop],
    )


def features(c: Candles) -> np.ndarray:
    """The feature matrix, shape (len(c), len(FEATURE_NAMES)), rows aligned with candles."""
    import numpy as np  # noqa: PLC0415 - numpy is loaded by the commands that use candles

    log_close = np.log(c.close)
    n = len(c)
    out = np.full((n, len(FEATURE_NAMES)), np.nan)
    for column, lag in enumerate((1, 3, 12)):
        out[lag:, column] = log_close[lag:] - log_close[:-lag]
    one = out[:, 0]
    for i in range(12, n):
        out[i, 3] = float(np.std(one[i - 11 : i + 1], ddof=1))
    out[:, 4] = (c.high - c.low) / c.close
    for i in range(19, n):
        window = c.volume[i - 19 : i + 1]
        spread = float(np.std(window))
        out[i, 5] = (c.volume[i] - float(np.mean(window))) / spread if spread > 0 else np.nan
    return out


def labels(c: Candles) -> np.ndarray:
    """1.0 when the next close is higher, else 0.0; NaN on the last candle."""
    import numpy as np  # noqa: PLC0415 - numpy is loaded by the commands that use candles

    out = np.full(len(c), np.nan)
    out[:-1] = (c.close[1:] > c.close[:-1]).astype(np.float64)
    return out


def training_rows(c: Candles) -> tuple[np.ndarray, np.ndarray]:
    """(features, labels) of the candles that have full history and a next bar."""
    import numpy as np  # noqa: PLC0415 - numpy is loaded by the commands that use candles

    x, y = features(c), labels(c)
    keep = ~np.isnan(x[:, :5]).any(axis=1) & ~np.isnan(y)
    return x[keep], y[keep]


def _number(text: str, column: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise CandleDataInvalid(f"{where}: {column}: not a number: {text!r}") from None
    if not math.isfinite(value):
        raise CandleDataInvalid(f"{where}: {column}: must be finite, got {text!r}")
    return value


def _time(text: str, where: str) -> datetime:
    try:
        return instant_text(text, "timestamp")
    except InvalidCommand as e:
        raise CandleDataInvalid(f"{where}: {e}") from None
