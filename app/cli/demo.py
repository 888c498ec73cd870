"""``tradecore demo``: a whole crash on the paper venue, then its incident report."""

from __future__ import annotations

from typing import Annotated

import typer

from app.bootstrap import SERVICE_POOL_SIZE
from app.cli.audit import print_report
from app.cli.context import state
from app.cli.output import emit_json, err, out
from app.demo import run_demo


def demo(
    ctx: typer.Context,
    seed: Annotated[int, typer.Option("--seed", help="the synthetic market's seed")] = 7,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON on stdout")] = False,
) -> None:
    """On a fresh store: deposit, train and promote a model, run the worker on a synthetic
    market (calm, a slide, a flash crash) and let the drawdown breaker stop and flatten the
    account; then print the incident report from the log. Under a minute."""
    core = state(ctx).core(pool_size=SERVICE_POOL_SIZE)
    err.print(f"tradecore demo on {core.address.display} (a synthetic, seeded market)")
    result = run_demo(core, lambda line: err.print(f"  {line}", markup=False), seed=seed)
    if as_json:
        emit_json(result)
        return
    demo_info = result["demo"]
    out.print(f"demo finished in {demo_info['seconds']} s; the incident, replayed from the log:")
    print_report(result["incident"])
    out.print(
        "next: `tradecore audit incident --latest --html incident.html`, "
        "`tradecore audit timeline --since <time>`, `tradecore audit state --at <time>`"
    )
