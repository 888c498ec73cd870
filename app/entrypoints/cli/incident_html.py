"""An incident report as one self-contained HTML page: the equity and drawdown chart
(matplotlib, embedded as a PNG) marking the soft breach, the hard breach and flat, then the
trigger, the closing orders, the causation chain and the reset."""

from __future__ import annotations

import base64
import html
from datetime import datetime
from typing import Any

from app.entrypoints.cli.output import plain
from app.entrypoints.cli.report_page import equity_chart_png


def chart_png(report: dict[str, Any]) -> bytes:
    policy = report.get("policy_at_activation") or {}
    thresholds = [
        (float(policy[key]), colour)
        for key, colour in (
            ("drawdown_soft_threshold", "#d4a017"),
            ("drawdown_hard_threshold", "r"),
        )
        if policy.get(key) is not None
    ]
    marks: list[tuple[datetime, str, str]] = [
        (b["at"], b["type"].rsplit(".", 1)[-1], "#d4a017" if "soft" in b["type"] else "r")
        for b in report["breaches"]
        if "recovered" not in b["type"]
    ]
    if report.get("flat_at"):
        marks.append((report["flat_at"], "flat", "green"))
    return equity_chart_png(
        report["equity_path"],
        marks,
        title=f"incident {report['activation_number']}: {report['trigger']['source']}",
        thresholds=thresholds,
    )


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
