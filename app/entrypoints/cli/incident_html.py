"""An incident report as one self-contained HTML page: the equity and drawdown chart
(matplotlib, embedded as a PNG) marking the soft breach, the hard breach and flat, then the
trigger, the closing orders, the causation chain and the reset."""

from __future__ import annotations

import base64
import html
import io
from datetime import datetime
from typing import Any

from app.entrypoints.cli.output import plain


def chart_png(report: dict[str, Any]) -> bytes:
    import matplotlib  # noqa: PLC0415 - slow to import; only this command needs it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    path = report["equity_path"]
    times = [p["at"] for p in path]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 6), sharex=True)
    top.plot(times, [float(p["equity"]) for p in path], color="#1f5fa8", label="equity")
    top.plot(times, [float(p["peak"]) for p in path], color="#888888", ls="--", label="peak")
    top.set_ylabel("equity")
    bottom.plot(times, [float(p["drawdown"]) * 100 for p in path], color="#b22222")
    policy = report.get("policy_at_activation") or {}
    for key, colour in (("drawdown_soft_threshold", "#d4a017"), ("drawdown_hard_threshold", "r")):
        if policy.get(key) is not None:
            bottom.axhline(float(policy[key]) * 100, color=colour, ls=":", lw=1)
    bottom.set_ylabel("drawdown %")
    marks: list[tuple[datetime, str, str]] = [
        (b["at"], b["type"].rsplit(".", 1)[-1], "#d4a017" if "soft" in b["type"] else "r")
        for b in report["breaches"]
        if "recovered" not in b["type"]
    ]
    if report.get("flat_at"):
        marks.append((report["flat_at"], "flat", "green"))
    for at, label, colour in marks:
        for axis in (top, bottom):
            axis.axvline(at, color=colour, lw=1)
        top.annotate(
            label,
            (at, 1),
            xycoords=("data", "axes fraction"),
            rotation=90,
            va="top",
            ha="right",
            fontsize=8,
            color=colour,
        )
    top.legend(loc="lower left")
    top.set_title(f"incident {report['activation_number']}: {report['trigger']['source']}")
    fig.autofmt_xdate()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def render(report: dict[str, Any]) -> str:
    data = plain(report)
    image = base64.b64encode(chart_png(report)).decode()
    e = html.escape

    def table(rows: list[dict[str, Any]], columns: list[str]) -> str:
        head = "".join(f"<th>{e(c)}</th>" for c in columns)
        body = "".join(
            "<tr>" + "".join(f"<td>{e(str(r.get(c, '')))}</td>" for c in columns) + "</tr>"
            for r in rows
        )
        return f"<table><tr>{head}</tr>{body}</table>"

    trigger = "".join(
        f"<tr><th>{e(k)}</th><td>{e(str(v))}</td></tr>" for k, v in data["trigger"].items()
    )
    reset = data["reset"]
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>tradecore incident {e(str(data["activation_number"]))}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }}
th, td {{ border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; }}
.banner {{ background: #b22222; color: white; padding: 0.6em 1em; font-weight: bold; }}
</style></head><body>
<div class="banner">Emergency stop {e(str(data["activation_number"]))}:
{e(str(data["trigger"]["reason"]))}</div>
<p>incident <code>{e(str(data["incident_id"]))}</code>; activated {e(str(data["activated_at"]))}
by {e(str(data["activated_by"]))}; flat {e(str(data["flat_at"]))}
(time to flat {e(str(data["time_to_flat_ms"]))} ms); {data["positions_closed"]} position(s)
closed, {data["orders_canceled"]} order(s) canceled.</p>
<img alt="equity and drawdown around the incident" src="data:image/png;base64,{image}">
<h2>Trigger</h2><table>{trigger}</table>
<h2>Closing orders</h2>
{
        table(
            data["orders"],
            [
                "client_order_id",
                "symbol",
                "position_side",
                "quantity",
                "fill_price",
                "mark_price",
                "slippage_bps",
                "attempt",
            ],
        )
    }
<h2>Trades closed</h2>
{
        table(
            [
                {
                    "trade_id": t["trade_id"],
                    "realized_pnl": t["realized_pnl"],
                    "entry_model": t["entry"]["model"],
                    "entry_model_version": t["entry"]["model_version"],
                    "entry_confidence": t["entry"]["confidence"],
                }
                for t in data["trades_closed"]
            ],
            [
                "trade_id",
                "realized_pnl",
                "entry_model",
                "entry_model_version",
                "entry_confidence",
            ],
        )
    }
<h2>Causation chain</h2>
{table(data["causation_chain"], ["at", "type", "event_id", "caused_by"])}
<h2>In force at activation</h2>
<pre>{e(str(data["policy_at_activation"]))}</pre>
{table(data["models_at_activation"], ["consumer", "model", "version", "loaded_at"])}
<h2>Reset</h2><p>{e(str(reset)) if reset else "not reset yet"}</p>
</body></html>
"""
