"""A replay's report as one self-contained HTML page: the equity, peak and drawdown chart
(matplotlib, embedded as a PNG) with the breaches and activations marked, then the report."""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Any

from app.entrypoints.cli.output import plain


def chart_png(result: dict[str, Any]) -> bytes:
    import matplotlib  # noqa: PLC0415 - slow to import; only --html needs it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    path = result["equity"]["path"]
    times = [p["at"] for p in path]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 6), sharex=True)
    top.plot(times, [float(p["equity"]) for p in path], color="#1f5fa8", label="equity")
    top.plot(times, [float(p["peak"]) for p in path], color="#888888", ls="--", label="peak")
    top.set_ylabel("equity")
    bottom.plot(times, [float(p["drawdown"]) * 100 for p in path], color="#b22222")
    bottom.set_ylabel("drawdown %")
    for b in result["breaches"]:
        colour = {"soft": "#d4a017", "hard": "r"}.get(b["type"], "green")
        for axis in (top, bottom):
            axis.axvline(b["at"], color=colour, lw=1)
    top.legend(loc="lower left")
    top.set_title(f"replay of {result['replay']['symbol']}")
    fig.autofmt_xdate()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def write_html(result: dict[str, Any], out: Path) -> None:
    """Write the page to ``out`` (replaced whole)."""
    png = base64.b64encode(chart_png(result)).decode("ascii")
    body = html.escape(json.dumps(plain(result), indent=2))
    page = (
        "<!doctype html><meta charset='utf-8'><title>tradecore replay</title>"
        "<style>body{font-family:sans-serif;margin:2em}pre{font-size:12px}</style>"
        f"<h1>Replay of {html.escape(result['replay']['symbol'])}</h1>"
        f"<img alt='equity and drawdown' src='data:image/png;base64,{png}'>"
        f"<h2>Report</h2><pre>{body}</pre>"
    )
    tmp = out.with_suffix(out.suffix + ".tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(out)
