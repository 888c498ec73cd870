"""Data shipped with tradecore (see README.md here): no download at run time."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def sample_path() -> Path:
    """The synthetic one-minute OHLCV sample (seeded; not market data)."""
    return Path(str(files("adapters.data") / "sample_ohlcv.csv"))
