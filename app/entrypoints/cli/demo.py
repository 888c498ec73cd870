"""``tradecore demo``: the real January 2022 sell-off through the whole chain, then its
incident report."""

from __future__ import annotations

import typer

from adapters.clock import MarketClock
from app.bootstrap import SERVICE_POOL_SIZE
from app.entrypoints.cli.audit import print_report
from app.entrypoints.cli.context import state
from app.entrypoints.cli.options import Json
from app.entrypoints.cli.output import emit_json, err, out
from app.entrypoints.demo import demo_plan, demo_settings, run_demo
from app.entrypoints.replay import require_fresh


def demo(
    ctx: typer.Context,
    as_json: Json = False,
) -> None:
    """On a fresh store: train and promote a model on the shipped real candles before
    2022-01-20 21:00, hold a 3x long and replay the evening's real fall through the worker,
    the drawdown breaker and the flattener; then print the incident report from the log."""
    the_plan = demo_plan()
    cli = state(ctx)
    core = cli.core(
        pool_size=SERVICE_POOL_SIZE,
        clock=MarketClock(the_plan.start),
        settings=demo_settings(cli.settings(), the_plan),
    )
    require_fresh(core, "demo")
    err.print(
        f"tradecore demo on {core.address.display}: the real BTC perpetual sell-off of "
        f"2022-01-20 ({len(the_plan.replayed)} one-minute candles after "
        f"{the_plan.start:%Y-%m-%d %H:%M} UTC)"
    )
    result = run_demo(core, the_plan, lambda line: err.print(f"  {line}", markup=False))
    if as_json:
        emit_json(result)
        return
    demo_info, replay = result["demo"], result["replay"]
    out.print(
        f"demo finished in {demo_info['seconds']} s ({replay['replay']['candles']} real candles "
        f"replayed up to {replay['replay']['to']}); the incident, replayed from the log:",
        markup=False,
    )
    if result["incident"] is None:
        out.print("no incident: the breaker did not fire")
        raise typer.Exit(1)
    print_report(result["incident"])
    for activation in replay["activations"]:
        out.print(
            f"wall time   {activation['time_to_flat_wall_ms']} ms from the crossing reading to "
            "flat (the market stands still while the chain acts: 0 ms of market time)",
            markup=False,
        )
    out.print(
        "next: `tradecore audit incident --latest --html incident.html`, "
        "`tradecore replay --candles <file> --max-speed`"
    )
