"""``tradecore replay`` as an operator runs it: a bad candle file is one line naming the line
and exit 2, with nothing written; a replay needs a fresh store (exit 3 on one with history);
a good one prints its report."""

from __future__ import annotations

import json
from pathlib import Path

from adapters.data import excerpt_path
from tests.e2e.conftest import Cli

HEADER = "timestamp,open,high,low,close,volume"


def _real_lines(count: int) -> list[str]:
    return excerpt_path().read_text().splitlines()[1 : count + 1]


def _json_rows(count: int) -> list[list[object]]:
    rows = []
    for line in _real_lines(count):
        ts, *values = line.split(",")
        rows.append([ts.replace(" ", "T") + "Z", *(float(v) for v in values)])
    return rows


def test_bad_candle_files_exit_2_naming_the_line_and_leave_the_store_fresh(
    cli: Cli, tmp_path: Path
) -> None:
    good = _real_lines(80)
    high_below_low = good.copy()
    ts, o, _, low, c, v = high_below_low[55].split(",")
    high_below_low[55] = ",".join([ts, o, str(float(low) - 1), low, c, v])
    bad_time = good.copy()
    bad_time[9] = "yesterday," + bad_time[9].split(",", 1)[1]
    rows = _json_rows(80)
    whole = "[\n" + ",\n".join(json.dumps(r) for r in rows) + "\n]\n"
    rows[40][4] = "lots"
    pretty = "[\n" + ",\n".join(json.dumps(r) for r in rows) + "\n]\n"
    cases = {
        "high.csv": ("\n".join([HEADER, *high_below_low]), "line 57"),
        "time.csv": ("\n".join([HEADER, *bad_time]), "line 11"),
        "short.csv": ("\n".join([HEADER, *good[:10]]), "too few candles"),
        "close.json": (pretty, "line 42"),
        "cut.json": (whole[:-40], "line 81"),
    }
    for name, (text, named) in cases.items():
        path = tmp_path / name
        path.write_text(text)
        result = cli("replay", "--candles", str(path), "--max-speed")
        assert result.code == 2, (name, result.code, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and named in lines[0] and name in lines[0], (name, lines)
    for args, named in (
        (["--speed", "0"], "--speed"),
        (["--speed", "60", "--max-speed"], "--max-speed"),
        (["--hold", "lots"], "--hold"),
        (["--from", "2022-01-21", "--to", "2022-01-20"], "--to"),
        (["--train-until", "2022-01-20T00:10"], "--train-until"),
    ):
        path = tmp_path / "good.csv"
        path.write_text("\n".join([HEADER, *good]))
        result = cli("replay", "--candles", str(path), *args)
        assert result.code == 2, (args, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and named in lines[0], (args, lines)
    # Nothing was written by any of them: the store is still fresh, so a replay runs.
    ran = cli("replay", "--candles", str(tmp_path / "good.csv"), "--json", timeout=180)
    assert ran.code == 0, ran.stderr
    report = ran.json()
    assert report["replay"]["candles"] == 80
    assert report["replay"]["marks"] == 320
    assert report["activations"] == []

    again = cli("replay", "--candles", str(tmp_path / "good.csv"))
    assert again.code == 3, again.stderr
    assert "fresh" in again.stderr and len(again.stderr.strip().splitlines()) == 1


def test_a_json_candle_file_replays_like_its_csv(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "ccxt.json"
    rows = _json_rows(60)
    path.write_text(json.dumps([[_epoch_ms(r[0]), *r[1:]] for r in rows]))
    page = tmp_path / "replay.html"
    ran = cli(
        "replay", "--candles", str(path), "--hold", "1", "--json", "--html", str(page), timeout=180
    )
    assert ran.code == 0, ran.stderr
    report = ran.json()
    assert report["replay"]["from"] == "2022-01-20T00:00:00+00:00"
    assert report["replay"]["candles"] == 60
    assert report["equity"]["accepted"] == 240
    assert report["trades"]["opened"] == 1  # the held long, adopted by reconciliation
    assert "data:image/png;base64," in page.read_text(encoding="utf-8")


def _epoch_ms(iso: object) -> int:
    from datetime import datetime  # noqa: PLC0415

    return int(datetime.fromisoformat(str(iso)).timestamp() * 1000)
