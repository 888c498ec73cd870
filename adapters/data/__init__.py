"""Data shipped with tradecore (see README.md here): no download at run time."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def sample_path() -> Path:
    """The synthetic one-minute OHLCV sample (seeded; not market data)."""
    return Path(str(files("adapters.data") / "sample_ohlcv.csv"))


def excerpt_path() -> Path:
    """Real one-minute candles of a BTC perpetual, 2022-01-20 and 21 (see README.md here)."""
    return Path(str(files("adapters.data") / "btc_perp_2022_01_20_21_1m.csv"))


EXCERPT_SOURCE = (
    "real one-minute candles of the FTX BTC-PERP perpetual, 2022-01-20 00:00 to 2022-01-21 "
    "23:59 UTC, cut from a public test-data set of an open-source trading engine"
)
