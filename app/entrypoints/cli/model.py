"""``tradecore model train|list|promote|rollback|status`` (P0-06)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from sqlalchemy import select

from app.entrypoints.cli.context import default_actor, state
from app.entrypoints.cli.input_file import read_input_file
from app.entrypoints.cli.options import Actor, Json, Reason, Yes
from app.entrypoints.cli.output import confirmer, emit_json, out
from domain.market_data import parse_ohlcv
from domain.validation import INTEGER, integer_value, text_value
from projections.tables import model_consumers

app = typer.Typer(help="Signal models (P0-06): train, register, promote, roll back.")


@app.command("train")
def train_model(
    ctx: typer.Context,
    data: Annotated[
        Path,
        typer.Option(
            "--data",
            help="candles: CSV timestamp,open,high,low,close,volume or a ccxt/Freqtrade JSON array",
        ),
    ],
    name: Annotated[str, typer.Option("--name", help="the model's name, e.g. signal")],
    seed: Annotated[int, typer.Option("--seed", help="training seed (reproducible)")] = 7,
    actor: Actor = None,
    as_json: Json = False,
) -> None:
    """Train a LightGBM classifier of the next bar's direction, store it, register it as
    the model's next version (not promoted)."""
    # LightGBM takes a C int seed: one past INTEGER's range would fail inside the trainer.
    seed = integer_value(seed, "--seed", column=(0, INTEGER[1]))
    candles = parse_ohlcv(read_input_file(data, "--data"), source=text_value(data.name, "--data"))
    from adapters.signal_model import train  # noqa: PLC0415 - LightGBM only when training

    trained = train(candles, seed=seed)
    registered = (
        state(ctx)
        .core()
        .models()
        .register(
            name,
            artifact=trained.artifact,
            data_from=trained.data_from,
            data_to=trained.data_to,
            metrics=trained.metrics,
            actor=actor or default_actor(),
        )
    )
    result = {
        "name": name,
        "version": registered.version,
        "sha256": registered.sha256,
        "metrics": trained.metrics,
        "data_from": trained.data_from,
        "data_to": trained.data_to,
    }
    if as_json:
        emit_json(result)
        return
    metrics = ", ".join(f"{k} {v:.4g}" for k, v in trained.metrics.items())
    out.print(f"{name} v{registered.version} registered ({registered.sha256[:12]}…): {metrics}")


@app.command("list")
def list_models(ctx: typer.Context, as_json: Json = False) -> None:
    """Every model, its versions and the one in force."""
    models = state(ctx).core().models()
    data: list[dict[str, Any]] = []
    for name in models.names():
        registry = models.registry(name)
        assert registry is not None
        data.append(
            {
                "name": name,
                "promoted": registry.promoted,
                "versions": [
                    {"version": int(v), **info}
                    for v, info in sorted(registry.versions.items(), key=lambda kv: int(kv[0]))
                ],
            }
        )
    if as_json:
        emit_json(data)
        return
    if not data:
        out.print("no models")
    for m in data:
        for v in m["versions"]:
            mark = " (in force)" if v["version"] == m["promoted"] else ""
            out.print(f"{m['name']} v{v['version']}{mark} {v['sha256'][:12]}… {v['metrics']}")


@app.command("promote")
def promote(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="the model")],
    version: Annotated[int, typer.Argument(help="the version to put in force")],
    reason: Reason,
    actor: Actor = None,
    yes: Yes = False,
) -> None:
    """Put a version in force; every consumer follows. Refused (exit 3) when its artifact
    fails the hash check."""
    confirmer(yes)(f"promote {name} v{version}")
    changed = (
        state(ctx)
        .core()
        .models()
        .promote(name, version, actor=actor or default_actor(), reason=reason)
    )
    out.print(f"{name} v{version} {'promoted' if changed else 'was already in force'}")


@app.command("rollback")
def rollback(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="the model")],
    reason: Reason,
    actor: Actor = None,
    yes: Yes = False,
) -> None:
    """Return to the version in force before the current one."""
    confirmer(yes)(f"roll back {name}")
    version = (
        state(ctx).core().models().roll_back(name, actor=actor or default_actor(), reason=reason)
    )
    out.print(f"{name} rolled back to v{version}")


@app.command("status")
def status(ctx: typer.Context, as_json: Json = False) -> None:
    """One entry per consumer: the model and version it runs, since when, its last error."""
    core = state(ctx).current()
    with core.engine.connect() as conn:
        rows = conn.execute(
            select(model_consumers).order_by(model_consumers.c.consumer, model_consumers.c.model)
        ).all()
    data: list[dict[str, Any]] = [
        {
            "consumer": r.consumer,
            "model": r.model,
            "version": r.version,
            "loaded_at": r.loaded_at,
            "last_error": r.last_error,
        }
        for r in rows
    ]
    if as_json:
        emit_json(data)
        return
    if not data:
        out.print("no consumer has loaded a model yet (is `tradecore run` running?)")
    for d in data:
        error = f"  last error: {d['last_error']}" if d["last_error"] else ""
        out.print(f"{d['consumer']:16} {d['model']} v{d['version']} since {d['loaded_at']}{error}")
