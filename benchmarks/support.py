"""What every benchmark needs: a throwaway database, a clock, percentiles and the printout.

A benchmark writes events (it changes the policy hundreds of times), so it never runs in a
database someone uses: it always creates a database of its own and drops it at the end, on
the server given by ``--database-url`` or on an embedded server started in a temp folder.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
import uuid
from collections import Counter as Tally
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from adapters import migrations
from adapters.database import DatabaseAddress
from adapters.embedded_pg import EmbeddedPostgres


def add_database_url_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database-url",
        help="a server to run on; the benchmark creates and drops its own database there "
        "(needs CREATEDB and CREATEROLE; sets the tradecore_app role's password). "
        "Default: a throwaway embedded server in a temp folder",
    )


@dataclass(frozen=True)
class Server:
    admin: DatabaseAddress  # the maintenance database, for CREATE/DROP DATABASE
    kind: str


@contextlib.contextmanager
def server(database_url: str | None) -> Iterator[Server]:
    """The given server, or an embedded one in a temp folder, stopped and removed at the end."""
    if database_url:
        yield Server(DatabaseAddress.parse(database_url), "external (--database-url)")
        return
    # As root the embedded server runs as another user, which must enter this folder: a
    # fresh 0755 folder under /tmp opens nothing private (docs/ARCHITECTURE.md, decision 3).
    folder = Path(tempfile.mkdtemp(prefix="tradecore-bench-"))
    folder.chmod(0o755)
    embedded = EmbeddedPostgres(folder / "home")
    try:
        yield Server(embedded.ensure_running(), "embedded (pgserver, temp folder)")
    finally:
        embedded.stop(mode="immediate")
        shutil.rmtree(folder, ignore_errors=True)


# The app role's password on a benchmark server (roles are per server). Over TCP the role
# logs in with it; the embedded server's socket trusts it anyway.
BENCH_APP_PASSWORD = "tradecore-bench-app"


def app(owner: DatabaseAddress) -> DatabaseAddress:
    """The database ``owner`` points at, as the application's role (tradecore refuses to run
    as a role that could rewrite events)."""
    return DatabaseAddress(
        owner.host, owner.port, owner.dbname, migrations.APP_ROLE, BENCH_APP_PASSWORD
    )


@contextlib.contextmanager
def scratch_database(srv: Server) -> Iterator[DatabaseAddress]:
    """A new database on ``srv``, migrated to head, dropped at the end: its owner's address
    (``app(address)`` is the application's)."""
    name = f"tradecore_bench_{uuid.uuid4().hex[:12]}"
    with srv.admin.connect(autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    address = srv.admin.with_dbname(name)
    try:
        engine = address.engine(pool_size=1)
        try:
            migrations.upgrade(engine)
            migrations.enable_app_login(engine, BENCH_APP_PASSWORD)
        finally:
            engine.dispose()
        yield address
    finally:
        with srv.admin.connect(autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def server_version(address: DatabaseAddress) -> str:
    with address.connect() as conn:
        row = conn.execute("SELECT current_setting('server_version')").fetchone()
    return str(row[0]) if row else "?"


def machine(pg_version: str, srv: Server) -> str:
    """Where the figures were measured, for the line printed under them."""
    return (
        f"PostgreSQL {pg_version}, {srv.kind}; {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, {platform.system()} {platform.machine()}"
    )


def now_ns() -> int:
    return time.perf_counter_ns()


class Progress:
    """Progress lines on stderr (the figures go to stdout), each with the seconds since start."""

    def __init__(self, started: float | None = None) -> None:
        # A child process passes its parent's start (time.monotonic is system-wide on Linux).
        self.started = time.monotonic() if started is None else started

    def __call__(self, message: str) -> None:
        print(f"[{time.monotonic() - self.started:7.1f} s] {message}", file=sys.stderr, flush=True)


def peak_rss_mb() -> float:
    """This process's peak resident set size so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def time_ms(call: Callable[[], Any]) -> tuple[float, Any]:
    """Run ``call``; return (elapsed milliseconds, its result)."""
    start = now_ns()
    result = call()
    return (now_ns() - start) / 1e6, result


class Poller:
    """Reads one integer from the database in a tight loop until it reaches a target.

    Both latency figures use this same loop on the same kind of connection (one psycopg
    connection in autocommit, a prepared statement), so its cost and resolution — one
    round trip — is the same on both sides of the comparison.
    """

    def __init__(self, address: DatabaseAddress, query: str) -> None:
        self.conn: psycopg.Connection[Any] = address.connect(autocommit=True)
        self.query = query

    def read(self) -> int | None:
        row = self.conn.execute(self.query, prepare=True).fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def wait_until_at_least(self, target: int, timeout: float = 5.0) -> int | None:
        """The perf_counter_ns time at which the value was first seen >= target (None: timeout)."""
        deadline = now_ns() + int(timeout * 1e9)
        while True:
            value = self.read()
            seen = now_ns()
            if value is not None and value >= target:
                return seen
            if seen > deadline:
                return None

    def close(self) -> None:
        self.conn.close()


@dataclass(frozen=True)
class Summary:
    n: int
    mean: float
    p50: float
    p99: float

    @classmethod
    def of(cls, samples: list[float]) -> Summary:
        if not samples:
            return cls(0, math.nan, math.nan, math.nan)
        ordered = sorted(samples)
        return cls(
            len(ordered),
            sum(ordered) / len(ordered),
            percentile(ordered, 50),
            percentile(ordered, 99),
        )


def percentile(ordered: list[float], pct: float) -> float:
    """Linear interpolation between closest ranks (numpy's default) on sorted data."""
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * pct / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


# -- the printout ---------------------------------------------------------------------------------


@dataclass
class Row:
    """One figure beside the baseline measured in the same run (times in milliseconds)."""

    figure: str
    samples: list[float]
    baseline: str
    baseline_samples: list[float]
    notes: list[str] = field(default_factory=list)

    @property
    def summary(self) -> Summary:
        return Summary.of(self.samples)

    @property
    def baseline_summary(self) -> Summary:
        return Summary.of(self.baseline_samples)


def tally(counts: Tally[str]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))


def _fmt(value: float) -> str:
    return f"{value:8.3f}"


def print_table(rows: list[Row]) -> None:
    fw = max(len(r.figure) for r in [*rows, Row("figure", [], "", [])]) + 1
    bw = max(len(r.baseline) for r in [*rows, Row("", [], "baseline", [])]) + 1
    head = (
        f"{'figure':<{fw}}{'n':>5}{'p50':>9}{'p99':>9}{'mean':>9}  | "
        f"{'baseline':<{bw}}{'n':>5}{'p50':>9}{'p99':>9}{'mean':>9}  | {'p50 ratio':>9}"
    )
    print(head)
    print("-" * len(head))
    for row in rows:
        s, b = row.summary, row.baseline_summary
        ratio = s.p50 / b.p50 if b.p50 else float("nan")
        print(
            f"{row.figure:<{fw}}{s.n:>5} {_fmt(s.p50)} {_fmt(s.p99)} {_fmt(s.mean)}  | "
            f"{row.baseline:<{bw}}{b.n:>5} {_fmt(b.p50)} {_fmt(b.p99)} {_fmt(b.mean)}  | "
            f"{ratio:>8.1f}x"
        )
    print("(all times in milliseconds)")
    for row in rows:
        for note in row.notes:
            print(f"  {row.figure}: {note}")


def print_markdown(rows: list[Row], context: str) -> None:
    print(
        "| figure | p50 ms | p99 ms | mean ms | baseline (same run) | p50 ms | p99 ms | mean ms |"
    )
    print("|---|---:|---:|---:|---|---:|---:|---:|")
    for row in rows:
        s, b = row.summary, row.baseline_summary
        print(
            f"| {row.figure} | {s.p50:.3f} | {s.p99:.3f} | {s.mean:.3f} "
            f"| {row.baseline} | {b.p50:.3f} | {b.p99:.3f} | {b.mean:.3f} |"
        )
    print()
    print(f"_{context}_")


# -- figures that are not latency distributions (rates, sizes, counts) ---------------------------


@dataclass
class Figure:
    """One measured figure (already formatted) beside its same-run baseline and its target."""

    figure: str
    value: str
    baseline: str
    baseline_value: str
    target: str = ""
    met: bool | None = None  # None: no target
    notes: list[str] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        return "" if self.met is None else ("met" if self.met else "NOT met")


def print_figures(figures: list[Figure]) -> None:
    columns = ["figure", "value", "baseline (same run)", "baseline value", "target", "met"]
    cells = [
        [f.figure, f.value, f.baseline, f.baseline_value, f.target, f.verdict] for f in figures
    ]
    widths = [max(len(row[i]) for row in [columns, *cells]) for i in range(len(columns))]
    right = {1, 3}  # the numbers

    def line(row: list[str]) -> str:
        return " | ".join(
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()

    print(line(columns))
    print("-" * len(line(columns)))
    for row in cells:
        print(line(row))
    for f in figures:
        for note in f.notes:
            print(f"  {f.figure}: {note}")


def print_figures_markdown(figures: list[Figure], context: str | None = None) -> None:
    print("| figure | value | baseline (same run) | baseline value | target | met |")
    print("|---|---:|---|---:|---|---|")
    for f in figures:
        print(
            f"| {f.figure} | {f.value} | {f.baseline} | {f.baseline_value} | {f.target} "
            f"| {f.verdict} |"
        )
    if context:
        print()
        print(f"_{context}_")
