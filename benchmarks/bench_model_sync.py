"""How soon every consumer runs a newly promoted model (P0-06; target p99 < 1 s).

Run from the repository root::

    python -m benchmarks.bench_model_sync [--database-url URL] [--promotions 25]

The worker runs in this process with its three model consumers (signal engine, position
monitor, insights logger), each loading real LightGBM artifacts trained on the shipped
sample. Each promotion alternates between two versions; the figure is the time from the
promotion's commit until ``model status`` (the read model) shows all three consumers on the
new version. The baseline, measured in the same run against the same worker, is the time
from a policy change's commit until the policy view shows it: the floor any change that
the worker must notice and record costs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import sys
import tempfile
import threading
import time
from pathlib import Path

from adapters.data import sample_path
from adapters.signal_model import train
from app.bootstrap import bootstrap
from app.config import Settings
from app.entrypoints.worker import Worker
from benchmarks.support import (
    Poller,
    Row,
    add_database_url_option,
    app,
    machine,
    now_ns,
    print_markdown,
    print_table,
    scratch_database,
    server,
    server_version,
)
from domain.market_data import parse_ohlcv_csv

NAME = "signal"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench_model_sync", description=__doc__.split("\n\n")[0]
    )
    add_database_url_option(parser)
    parser.add_argument("--promotions", type=int, default=25, help="promotions timed (25)")
    args = parser.parse_args(argv)
    if args.promotions < 20:
        parser.error("--promotions must be at least 20")
    started = time.monotonic()
    candles = parse_ohlcv_csv(sample_path().read_text(), source="sample_ohlcv.csv")
    models = [train(candles, seed=seed) for seed in (7, 8)]
    with (
        server(args.database_url) as srv,
        scratch_database(srv) as address,
        tempfile.TemporaryDirectory() as artifacts,
    ):
        pg_version = server_version(address)
        settings = Settings(database_url=app(address).url, artifact_dir=Path(artifacts))
        with bootstrap(settings, pool_size=4) as core:
            core.commands.ensure_initialised()
            for model in models:
                core.models().register(
                    NAME,
                    artifact=model.artifact,
                    data_from=model.data_from,
                    data_to=model.data_to,
                    metrics=model.metrics,
                    actor="bench",
                )
            stop = threading.Event()
            worker = threading.Thread(target=Worker(core).run, args=(stop,), daemon=True)
            worker.start()
            status = Poller(
                address,
                "SELECT CASE WHEN count(*) = 3 AND min(version) = max(version) "
                "THEN min(version) END FROM readmodel.model_consumers",
            )
            view = Poller(address, "SELECT version FROM readmodel.policy_view")
            ours, floor, timeouts = [], [], 0
            notional = itertools.count(30_001)
            try:
                for i in range(args.promotions + 2):  # two warm-up rounds, not counted
                    version = 1 + i % 2
                    core.models().promote(NAME, version, actor="bench", reason="bench")
                    committed = now_ns()
                    seen = _wait_equal(status, version)
                    change = core.commands.update_policy(
                        actor="bench", reason="bench", max_position_notional=str(next(notional))
                    )
                    changed = now_ns()
                    seen_floor = view.wait_until_at_least(change.version)
                    if i < 2:
                        continue
                    if seen is None or seen_floor is None:
                        timeouts += 1
                        continue
                    ours.append((seen - committed) / 1e6)
                    floor.append((seen_floor - changed) / 1e6)
            finally:
                stop.set()
                worker.join(timeout=10)
                status.close()
                view.close()
    notes = [
        "3 consumers in one worker (woken by NOTIFY, poll 1 s); real LightGBM artifacts, "
        "hash-checked on every load",
        "resolution: one polling round trip on the read model",
    ]
    if timeouts:
        notes.append(f"timed out (5 s, not counted): {timeouts}")
    rows = [
        Row(
            "promotion committed -> all 3 consumers report it",
            ours,
            "policy change committed -> policy view shows it",
            floor,
            notes,
        )
    ]
    context = (
        f"`python -m benchmarks.bench_model_sync` on {dt.date.today().isoformat()}: "
        f"{machine(pg_version, srv)}; {args.promotions} promotions; "
        f"run took {time.monotonic() - started:.1f} s."
    )
    print()
    print("tradecore benchmark: model promotion to every consumer")
    print(context.replace("`", ""))
    print()
    print_table(rows)
    print()
    print("Markdown for the README:")
    print()
    print_markdown(rows, context)
    return 0


def _wait_equal(poller: Poller, target: int, timeout: float = 5.0) -> int | None:
    deadline = now_ns() + int(timeout * 1e9)
    while True:
        value = poller.read()
        seen = now_ns()
        if value == target:
            return seen
        if seen > deadline:
            return None


if __name__ == "__main__":
    sys.exit(main())
