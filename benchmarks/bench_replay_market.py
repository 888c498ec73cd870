"""The main job on a real market: a month of real one-minute candles through the whole chain.

Run from the repository root::

    python -m benchmarks.bench_replay_market --candles FILE [--limit N] [--hold 0.25]
        [--glitch-rate 1] [--database-url URL] [--markdown]

``--candles`` (or ``TRADECORE_REAL_CANDLES``) names the candle file, e.g. a month of
one-minute candles of a BTC perpetual (January 2022: 45,031 candles). Two runs, each in a
child process of its own (so each peak RSS is its own) on a scratch database of its own:

1. chain: ``app.entrypoints.replay.run_replay`` as ``tradecore replay --max-speed`` runs it:
   four marks a candle on the paper venue, a breaker reading after each, a worker round after
   each candle
   (read models, emergency supervision, model consumers and watch, reconciliation, the
   signal engine with sizing, executor and gate), with a fixed long of ``--hold`` times the
   deposit and ``--glitch-rate`` bad ticks an hour;
2. baseline (same run): the same marks and readings with the worker's rounds off (the venue
   and the store alone).

Printed: candles per second and wall time of each, peak RSS, where the chain's time went
(moving the marks, the breaker's readings, the worker's rounds), activations and glitches,
and the SQL statements a candle (psycopg's ``Cursor.execute``/``executemany`` calls during
the replay; transaction control not counted).
The target (the month in 3 minutes, >= 250 candles/s) is printed as met or not met; figures
from a shared machine are indicative.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

from adapters.database import DatabaseAddress
from benchmarks.support import (
    Figure,
    Progress,
    add_database_url_option,
    app,
    machine,
    peak_rss_mb,
    print_figures,
    print_figures_markdown,
    scratch_database,
    server,
    server_version,
)

TARGET_CANDLES_PER_SECOND = 250.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candles", default=os.environ.get("TRADECORE_REAL_CANDLES"))
    parser.add_argument("--limit", type=int, default=None, help="replay the first N candles")
    parser.add_argument("--hold", default="0.25", help="a fixed long, times the deposit")
    parser.add_argument("--glitch-rate", type=float, default=1.0, help="bad ticks an hour")
    parser.add_argument("--part", choices=["chain", "baseline"], help=argparse.SUPPRESS)
    parser.add_argument("--address", help=argparse.SUPPRESS)
    parser.add_argument("--markdown", action="store_true")
    add_database_url_option(parser)
    args = parser.parse_args()
    if not args.candles:
        parser.error("--candles FILE (or TRADECORE_REAL_CANDLES) is required")
    if not Path(args.candles).is_file():
        parser.error(f"--candles {args.candles}: no such file")
    if args.part:
        print(json.dumps(_part(args)))
        return
    progress = Progress()
    with server(args.database_url) as srv:
        context = machine(server_version(srv.admin), srv)
        results: dict[str, dict[str, Any]] = {}
        for part in ("chain", "baseline"):
            with scratch_database(srv) as address:
                progress(f"{part}: replaying {args.candles}")
                results[part] = _child(args, part, app(address).url)
                progress(
                    f"{part}: {results[part]['candles']} candles in {results[part]['wall']:.1f} s"
                )
        with scratch_database(srv) as address:
            progress("the server's floor: a round trip, a committed one-row insert")
            floor = _server_floor(address)
    _print(results, floor, context, markdown=args.markdown)


def _child(args: argparse.Namespace, part: str, url: str) -> dict[str, Any]:
    command = [
        sys.executable,
        "-m",
        "benchmarks.bench_replay_market",
        "--candles",
        args.candles,
        "--hold",
        args.hold,
        "--glitch-rate",
        str(args.glitch_rate),
        "--part",
        part,
        "--address",
        url,
    ]
    if args.limit:
        command += ["--limit", str(args.limit)]
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=6 * 3600)
    if done.returncode != 0:
        raise SystemExit(f"{part} run failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _part(args: argparse.Namespace) -> dict[str, Any]:
    from adapters.clock import MarketClock  # noqa: PLC0415
    from app.bootstrap import SERVICE_POOL_SIZE, bootstrap  # noqa: PLC0415
    from app.config import Settings  # noqa: PLC0415
    from app.entrypoints.replay import ReplayRequest, plan, replay_settings, run_replay  # noqa: PLC0415
    from domain.market_data import parse_ohlcv, window  # noqa: PLC0415

    candles = parse_ohlcv(Path(args.candles).read_text(), source=Path(args.candles).name)
    if args.limit:
        candles = window(candles, 0, args.limit)
    request = ReplayRequest(hold=Decimal(args.hold), glitch_rate=args.glitch_rate)
    the_plan = plan(candles, request)
    settings = replay_settings(Settings(database_url=args.address), request, the_plan.step)
    with bootstrap(
        settings, clock=MarketClock(the_plan.start), pool_size=SERVICE_POOL_SIZE
    ) as core:
        core.commands.ensure_initialised()
        with _counting_statements() as statements:
            report = run_replay(core, the_plan, request, consumers=args.part == "chain")
    replay = report["replay"]
    return {
        "candles": replay["candles"],
        "wall": replay["wall_seconds"],
        "per_second": replay["candles_per_second"],
        "seconds_in": replay["seconds_in"],
        "rss_mb": round(peak_rss_mb(), 1),
        "activations": len(report["activations"]),
        "glitches": report["glitches"]["by_outcome"],
        "deepest_drawdown": str(report["equity"]["deepest_drawdown"]),
        "trades": report["trades"]["opened"],
        "statements": statements[0],
    }


# Each candle commits at least this many transactions: each of its four marks moves the
# paper venue's prices in one, and each of its four readings is recorded in one.
COMMITS_A_CANDLE = 8
FLOOR_SAMPLES = 2000


def _server_floor(owner: DatabaseAddress) -> dict[str, float]:
    """This server's cost of the two things the chain cannot do without, in ms (medians of
    ``FLOOR_SAMPLES``, one connection, no ORM): a round trip (``SELECT 1``), and a one-row
    INSERT committed in its own transaction (the WAL flush included, as in every commit of
    the chain)."""
    import statistics  # noqa: PLC0415
    import time  # noqa: PLC0415

    def median_ms(call: Any) -> float:
        samples = []
        for _ in range(FLOOR_SAMPLES):
            began = time.perf_counter()
            call()
            samples.append((time.perf_counter() - began) * 1000)
        return statistics.median(samples)

    with owner.connect(autocommit=True) as conn:
        conn.execute("CREATE TABLE floor_probe (id bigserial PRIMARY KEY, body text)")
        body = "x" * 300  # about an equity reading's stored size

        def committed_insert() -> None:
            with conn.transaction():
                conn.execute("INSERT INTO floor_probe (body) VALUES (%s)", (body,))

        return {
            "round_trip_ms": median_ms(lambda: conn.execute("SELECT 1").fetchone()),
            "commit_ms": median_ms(committed_insert),
        }


@contextlib.contextmanager
def _counting_statements() -> Iterator[list[int]]:
    """Count the SQL statements this process sends through psycopg (the read models', the
    venue's and the event store's alike; transaction control not included) while inside."""
    import psycopg  # noqa: PLC0415

    counted = [0]
    execute, executemany = psycopg.Cursor.execute, psycopg.Cursor.executemany

    def counting_execute(self: Any, *args: Any, **kwargs: Any) -> Any:
        counted[0] += 1
        return execute(self, *args, **kwargs)

    def counting_executemany(self: Any, *args: Any, **kwargs: Any) -> Any:
        counted[0] += 1
        return executemany(self, *args, **kwargs)

    psycopg.Cursor.execute = counting_execute  # type: ignore[method-assign]
    psycopg.Cursor.executemany = counting_executemany  # type: ignore[method-assign]
    try:
        yield counted
    finally:
        psycopg.Cursor.execute = execute  # type: ignore[method-assign]
        psycopg.Cursor.executemany = executemany  # type: ignore[method-assign]


def _print(
    results: dict[str, dict[str, Any]], floor: dict[str, float], context: str, *, markdown: bool
) -> None:
    chain, base = results["chain"], results["baseline"]
    statements = chain["statements"] / chain["candles"]
    # The chain's statements at this server's floor, as if Python took no time at all.
    floor_ms = (statements - COMMITS_A_CANDLE) * floor["round_trip_ms"] + (
        COMMITS_A_CANDLE * floor["commit_ms"]
    )
    figures = [
        Figure(
            "candles/s through the whole chain",
            f"{chain['per_second']:.0f}",
            "venue + breaker only, no worker rounds",
            f"{base['per_second']:.0f}",
            f">= {TARGET_CANDLES_PER_SECOND:.0f}",
            chain["per_second"] >= TARGET_CANDLES_PER_SECOND,
            notes=[
                "time in: "
                + ", ".join(f"{k} {v:.0f} s" for k, v in sorted(chain["seconds_in"].items())),
                f"{chain['activations']} activation(s), glitches {chain['glitches']}, deepest "
                f"drawdown {chain['deepest_drawdown']}, {chain['trades']} trade(s) opened",
                f"SQL statements a candle: {statements:.0f} "
                f"(venue + breaker only: {base['statements'] / base['candles']:.0f})",
                f"this server's floor: a round trip {floor['round_trip_ms']:.3f} ms, a committed "
                f"one-row insert {floor['commit_ms']:.3f} ms; the chain's statements at that "
                f"floor with no Python time: {floor_ms:.1f} ms a candle, at most "
                f"{1000 / floor_ms:.0f} candles/s",
            ],
        ),
        Figure(
            f"wall time, {chain['candles']} candles",
            f"{chain['wall']:.0f} s",
            "venue + breaker only",
            f"{base['wall']:.0f} s",
        ),
        Figure(
            "peak RSS",
            f"{chain['rss_mb']:.0f} MiB",
            "venue + breaker only",
            f"{base['rss_mb']:.0f} MiB",
        ),
    ]
    if markdown:
        print_figures_markdown(figures, context)
    else:
        print_figures(figures)
        print(context)


if __name__ == "__main__":
    main()
