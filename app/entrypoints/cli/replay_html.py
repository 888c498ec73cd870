"""A replay's report as one self-contained HTML page: the equity, peak and drawdown chart
(matplotlib, embedded as a PNG) with the breaches and activations marked, then the report."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

from app.entrypoints.cli.output import plain
from app.entrypoints.cli.report_page import equity_chart_png, write_page


def chart_png(result: dict[str, Any]) -> bytes:
    marks = [
        (b["at"], "", {"soft": "#d4a017", "hard": "r"}.get(b["type"], "green"))
        for b in result["breaches"]
    ]
    return equity_chart_png(
        result["equity"]["path"],
        marks,
        title=f"replay of {result['replay']['symbol']}",
        width=11,
    )


def write_html(result: dict[str, Any], out: Path) -> None:
    """Write the page to ``out``, whole or not at all. Raises InvalidCommand if it cannot."""
    png = base64.b64encode(chart_png(result)).decode("ascii")
    body = html.escape(json.dumps(plain(result), indent=2))
    page = (
        "<!doctype html><meta charset='utf-8'><title>tradecore replay</title>"
        "<style>body{font-family:sans-serif;margin:2em}pre{font-size:12px}</style>"
        f"<h1>Replay of {html.escape(result['replay']['symbol'])}</h1>"
        f"<img alt='equity and drawdown' src='data:image/png;base64,{png}'>"
        f"<h2>Report</h2><pre>{body}</pre>"
    )
    write_page(out, page)
