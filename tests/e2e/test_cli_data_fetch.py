"""``tradecore data fetch`` refuses what it cannot use with exit 2 and one line, before any
request and before touching the output file (there is no network here: the paging itself is
tested offline in tests/unit/test_candle_history_fetch.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.conftest import Cli


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--exchange", "nosuchvenue"], "nosuchvenue"),
        (["--since", "yesterday-ish"], "--since"),
        (["--until", "2021-01-01"], "--until"),
        (["--symbol", "BTC USDT"], "--symbol"),
        (["--page-size", "0"], "--page-size"),
        (["--timeframe", "7m"], "7m"),
        (["--out", "/no/such/folder/btc.csv"], "--out"),
    ],
    ids=["exchange", "since", "until-before-since", "symbol", "page-size", "timeframe", "out"],
)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(
    cli: Cli, tmp_path: Path, args: list[str], named: str
) -> None:
    out = tmp_path / "btc.csv"
    options = {
        "--exchange": "binanceusdm",
        "--symbol": "BTC/USDT:USDT",
        "--since": "2022-01-17",
        "--until": "2022-01-18",
        "--out": str(out),
    }
    extra: dict[str, str] = {}
    for name, value in zip(args[::2], args[1::2], strict=True):
        (options if name in options else extra)[name] = value
    flat = [part for pair in (options | extra).items() for part in pair]

    result = cli("data", "fetch", *flat)

    assert result.code == 2, (result.code, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and named in lines[0], result.stderr
    assert not out.exists()
