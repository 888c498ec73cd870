"""How long ``tradecore audit state --at T`` takes on a long log, and its memory.

Run from the repository root::

    python -m benchmarks.bench_audit [--database-url URL] [--events 1000000] [--trades 500]

It writes a log of ``--events`` events as a worker would over days: one equity reading a
second on the ``Account`` aggregate (its own events, encoded by the store's mapper, with a
snapshot every 200 versions as ``store.save`` takes them), ``--trades`` trades opened and
closed along the way, and the timestamp index built over it. Then it runs the installed
``tradecore audit state --at T --json`` in a subprocess for instants in the middle and at
the end of the log, and reports wall seconds and the subprocess's peak RSS (targets: < 10 s,
< 500 MB). The baseline, in the same run: reading the same log raw (every row of the events
table up to the same position, through a server-side cursor).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import resource
import subprocess
import sys
import time
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import uuid4

from eventsourcing.domain import Snapshot

from adapters.database import DatabaseAddress
from adapters.eventstore import EVENTS_SCHEMA, EVENTS_TABLE, SNAPSHOTS_TABLE
from app.bootstrap import Core, bootstrap
from app.config import Settings
from benchmarks.support import (
    Figure,
    app,
    machine,
    print_figures,
    print_figures_markdown,
    scratch_database,
    server,
    server_version,
)
from domain.account import Account
from domain.drawdown import Reading, Thresholds
from domain.trade import Trade
from projections.event_index import EventIndexProjection

EVENTS = f"{EVENTS_SCHEMA}.{EVENTS_TABLE}"
SNAPSHOTS = f"{EVENTS_SCHEMA}.{SNAPSHOTS_TABLE}"
CHUNK = 20_000
SNAPSHOT_EVERY = 200
LIMITS = Thresholds(soft=Decimal("-0.05"), hard=Decimal("-0.10"))
TRADECORE = Path(sys.executable).with_name("tradecore")
TARGET_SECONDS, TARGET_MB = 10.0, 500.0


def generate(core: Core, address: DatabaseAddress, events: int, trades: int) -> dt.datetime:
    """Write the log; returns the time of its first event."""
    core.commands.ensure_initialised()
    first = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=events)
    account = Account.open(account=core.settings.account, timestamp=first)
    rng = random.Random(7)
    equity = Decimal(100_000)
    trade_every = max(events // (trades + 1), 1)
    mapper = core.store.mapper
    made, pending, snapshots = 0, [], []
    with address.connect(autocommit=False) as conn:
        while made < events:
            at = first + dt.timedelta(seconds=made)
            batch = _trade(at) if trades and made % trade_every == trade_every // 2 else []
            equity = (equity * Decimal(str(1 + rng.gauss(0, 0.0005)))).quantize(Decimal("0.01"))
            account.record_reading(
                Reading(equity, equity, Decimal(0), "bench", at),
                thresholds=LIMITS,
                positions_open=True,
                emergency_active=False,
                entries_allowed=True,
                breaker_stopped_entries=False,
                timestamp=at,
                correlation_id=uuid4(),
            )
            batch += account.collect_events()
            if account.version // SNAPSHOT_EVERY > (account.version - len(batch)) // SNAPSHOT_EVERY:
                snapshots.append(mapper.to_stored_event(Snapshot.take(account)))
            pending += batch
            made += len(batch)
            if len(pending) >= CHUNK or made >= events:
                _copy(conn, [mapper.to_stored_event(e) for e in pending], EVENTS)
                _copy(conn, snapshots, SNAPSHOTS)
                pending, snapshots = [], []
                print(f"  {made:,} events written", file=sys.stderr, flush=True)
    return first


def _trade(at: dt.datetime) -> list[Any]:
    trade = Trade.open(
        trade_id=uuid4(),
        symbol="BTC/USDT:USDT",
        side="long",
        quantity=Decimal("0.01"),
        leverage=Decimal(1),
        actor="bench",
        reason="bench log",
        timestamp=at,
        source="executor",
    )
    trade.close(reason="signal", actor="bench", timestamp=at + dt.timedelta(milliseconds=1))
    return list(trade.collect_events())


def _copy(conn: object, stored: Sequence[object], table: str) -> None:
    if not stored:
        return
    sql = (
        f"COPY {table} (originator_id, originator_version, topic, state) FROM STDIN (FORMAT BINARY)"
    )
    with conn.transaction():  # type: ignore[attr-defined]
        conn.execute(f"LOCK TABLE {table} IN EXCLUSIVE MODE")  # type: ignore[attr-defined]
        with conn.cursor().copy(sql) as copy:  # type: ignore[attr-defined]
            copy.set_types(["uuid", "int8", "text", "bytea"])
            for s in stored:
                copy.write_row(
                    (s.originator_id, s.originator_version, s.topic, s.state)  # type: ignore[attr-defined]
                )


def audit_state(
    address: DatabaseAddress, at: dt.datetime
) -> tuple[float, float, dict[str, object]]:
    """Seconds and peak RSS (MiB) of the installed CLI answering ``audit state --at``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.monotonic()
    done = subprocess.run(
        [
            str(TRADECORE),
            "--database-url",
            app(address).url,
            "audit",
            "state",
            "--at",
            at.isoformat(),
            "--json",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.monotonic() - started
    if done.returncode != 0:
        raise RuntimeError(f"audit state failed: {done.stderr}")
    peak = max(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, before) / 1024
    return seconds, peak, json.loads(done.stdout)


def raw_read(address: DatabaseAddress, upto: int) -> float:
    started = time.monotonic()
    total = 0
    with address.connect(autocommit=False) as conn, conn.cursor(name="raw") as cursor:
        cursor.itersize = 10_000
        cursor.execute(
            "SELECT notification_id, originator_id, originator_version, topic, state "
            f"FROM {EVENTS} WHERE notification_id <= %s ORDER BY notification_id",
            (upto,),
        )
        for row in cursor:
            total += len(row[4])
    return time.monotonic() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_audit")
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--trades", type=int, default=500)
    args = parser.parse_args(argv)
    with server(args.database_url) as srv, scratch_database(srv) as address:
        pg_version = server_version(address)
        with bootstrap(Settings(database_url=app(address).url)) as core:
            started = time.monotonic()
            first = generate(core, address, args.events, args.trades)
            generated = time.monotonic() - started
            index = core.runner.projection(EventIndexProjection.default_name)
            core.runner.catch_up_projection(index)
            indexed = time.monotonic() - started - generated
            head = core.store.recorder.max_notification_id() or 0
        figures = []
        for label, at in (
            ("middle", first + (dt.datetime.now(dt.UTC) - first) / 2),
            ("end", dt.datetime.now(dt.UTC)),
        ):
            seconds, peak, state = audit_state(address, at)
            position = int(state["position"])  # type: ignore[call-overload]
            raw = raw_read(address, position)
            figures.append(
                Figure(
                    f"audit state --at the {label} (position {position:,})",
                    f"{seconds:.2f} s, {peak:.0f} MB",
                    "raw read of the log up to it",
                    f"{raw:.2f} s",
                    f"< {TARGET_SECONDS:.0f} s, < {TARGET_MB:.0f} MB",
                    seconds < TARGET_SECONDS and peak < TARGET_MB,
                )
            )
    context = (
        f"python -m benchmarks.bench_audit on {dt.date.today().isoformat()}: "
        f"{machine(pg_version, srv)}; {head:,} events ({args.trades} trades), written in "
        f"{generated:.0f} s, indexed in {indexed:.0f} s."
    )
    print()
    print("tradecore benchmark: the state at an instant, replayed from a long log")
    print(context)
    print()
    print_figures(figures)
    print()
    print_figures_markdown(figures, context)
    return 0


if __name__ == "__main__":
    sys.exit(main())
