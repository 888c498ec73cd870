"""Replaying the log: rebuilds, catch-up after a backlog, and the worker under sustained load.

Run from the repository root::

    python -m benchmarks.bench_replay [--database-url URL] [--events 1000000]
        [--backlog 100000] [--rate 500] [--seconds 60] [--writers 4]
        [--parts rebuild,catchup,load]

Three parts, each in a scratch database of its own (created, migrated, dropped):

1. rebuild: a log of ``--events`` policy changes (real ``Policy.LimitsUpdated`` events, encoded
   by the store's mapper, loaded with COPY), then ``projections.rebuild.rebuild`` of every
   read model, in a child process of its own so the figure's peak RSS is the rebuild's alone.
   Baseline: the library paging through the same notifications
   (``recorder.select_notifications``), in another child process, in the same run.
2. catchup: a fresh database with a ``--backlog`` of events and no read model yet;
   ``core.runner.catch_up()`` from position 0 until every projection's lag is 0. Baseline: the
   library's read of the same notifications.
3. load: ``--writers`` threads, each saving one small aggregate through the real store at
   ``--rate / --writers`` events/s for ``--seconds``, with the worker (``Worker(core).run``, as
   ``tradecore run`` runs it) in a separate process. Commit latency (the ``save`` call) beside
   a single-row INSERT commit on the same server; projection lag (save returned -> every read
   model has applied the event) beside a NOTIFY -> LISTEN delivery; events lost (log rows
   with no ``event_index`` row once the worker has caught up).

Nothing is asserted on timings: targets are printed as met or not met.
"""

from __future__ import annotations

import argparse
import bisect
import datetime as dt
import json
import os
import resource
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from adapters.database import DatabaseAddress
from adapters.eventstore import EVENTS_SCHEMA, EVENTS_TABLE
from app.bootstrap import Core, bootstrap
from app.config import Settings
from benchmarks.load_aggregate import LoadTick
from benchmarks.support import (
    Figure,
    Progress,
    Row,
    Server,
    Summary,
    add_database_url_option,
    app,
    machine,
    now_ns,
    peak_rss_mb,
    print_figures,
    print_figures_markdown,
    print_markdown,
    print_table,
    scratch_database,
    server,
    server_version,
)

TARGET_REBUILD_RATE = 20_000  # events/s
TARGET_RSS_MB = 300.0
TARGET_COMMIT_P99_MS = 25.0
TARGET_LAG_P99_MS = 100.0

PARTS = ("rebuild", "catchup", "load")
CHILD_URL_ENV = "BENCH_REPLAY_DATABASE_URL"  # the child's database (kept out of argv)
CHILD_T0_ENV = "BENCH_REPLAY_STARTED"  # the parent's start, for the progress lines
COPY_CHUNK = 5_000  # events per COPY transaction while generating a log
PROGRESS_EVERY_S = 10.0
BASELINE_PROBE_INTERVAL_S = 0.1
CATCH_UP_TIMEOUT_S = 120.0
PROBE_SCHEMA = "benchprobe"
PROBE_CHANNEL = "bench_replay_probe"
EVENTS = f"{EVENTS_SCHEMA}.{EVENTS_TABLE}"

say = Progress()


# -- generating a log -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Generated:
    events: int  # events in the log, the initial Policy and Emergency included
    seconds: float  # to generate the policy changes

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else float("nan")


def generate_log(core: Core, address: DatabaseAddress, count: int) -> Generated:
    """Initialise the store, then append ``count`` policy changes, fast.

    Each event is made by the Policy aggregate's own command (``update_limits``) and encoded
    by the store's mapper, exactly as a save would store it; only the insert differs: COPY,
    ``COPY_CHUNK`` events to a transaction that holds the table lock the library takes, so
    notification ids follow the versions. One event a millisecond, ending now.
    """
    core.commands.ensure_initialised()
    policy = core.commands.load_policy()
    assert policy is not None
    first = dt.datetime.now(dt.UTC) - dt.timedelta(milliseconds=count)
    copy_sql = (
        f"COPY {EVENTS} (originator_id, originator_version, topic, state) "
        "FROM STDIN (FORMAT BINARY)"
    )
    started = time.monotonic()
    last_report = started
    made = 0
    with address.connect(autocommit=False) as conn:
        while made < count:
            n = min(COPY_CHUNK, count - made)
            for i in range(made, made + n):
                policy.update_limits(
                    actor="bench",
                    reason="bench_replay log",
                    timestamp=first + dt.timedelta(milliseconds=i),
                    max_position_notional=str(20_000 + i),
                )
            stored = [core.store.mapper.to_stored_event(e) for e in policy.collect_events()]
            with conn.transaction():
                conn.execute(f"LOCK TABLE {EVENTS} IN EXCLUSIVE MODE")
                with conn.cursor().copy(copy_sql) as copy:
                    copy.set_types(["uuid", "int8", "text", "bytea"])
                    for s in stored:
                        copy.write_row((s.originator_id, s.originator_version, s.topic, s.state))
            made += n
            if time.monotonic() - last_report >= PROGRESS_EVERY_S:
                last_report = time.monotonic()
                rate = made / (last_report - started)
                say(f"  generated {made:,} / {count:,} events ({rate:,.0f} events/s)")
    seconds = time.monotonic() - started
    with address.connect() as conn:
        row = conn.execute(f"SELECT count(*) FROM {EVENTS}").fetchone()
    assert row is not None
    return Generated(int(row[0]), seconds)


# -- reading and replaying (the children of part 1, and part 2 in-process) -------------------------


@dataclass
class ReadResult:
    events: int = 0
    read_seconds: float = 0.0  # in select_notifications
    decode_seconds: float = 0.0  # in mapper.to_domain_event, for information

    @property
    def rate(self) -> float:
        return self.events / self.read_seconds if self.read_seconds else float("nan")


def library_read(core: Core, limit: int, *, decode: bool, label: str) -> ReadResult:
    """Page through every notification with the library's recorder, ``limit`` at a time."""
    recorder = core.store.recorder
    head = recorder.max_notification_id() or 0
    result = ReadResult()
    start = 1
    last_report = time.monotonic()
    while True:
        began = now_ns()
        page = recorder.select_notifications(start, limit)
        result.read_seconds += (now_ns() - began) / 1e9
        if not page:
            break
        if decode:
            began = now_ns()
            for notification in page:
                core.store.mapper.to_domain_event(notification)
            result.decode_seconds += (now_ns() - began) / 1e9
        result.events += len(page)
        start = page[-1].id + 1
        if time.monotonic() - last_report >= PROGRESS_EVERY_S:
            last_report = time.monotonic()
            say(f"  {label}: {page[-1].id:,} / {head:,} ({result.rate:,.0f} events/s)")
    return result


def _rusage() -> dict[str, float]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"maxrss_mb": usage.ru_maxrss / 1024, "cpu_s": usage.ru_utime + usage.ru_stime}


def child_read(url: str) -> dict[str, Any]:
    with bootstrap(Settings(database_url=url), pool_size=1) as core:
        at_start = peak_rss_mb()
        result = library_read(core, core.runner.batch_size, decode=True, label="library read")
    return {
        "events": result.events,
        "read_seconds": result.read_seconds,
        "decode_seconds": result.decode_seconds,
        "limit": core.runner.batch_size,
        "rss_at_start_mb": at_start,
        **_rusage(),
    }


def child_rebuild(url: str) -> dict[str, Any]:
    from projections.rebuild import rebuild  # noqa: PLC0415 - only the child needs it

    with bootstrap(Settings(database_url=url), pool_size=2) as core:
        at_start = peak_rss_mb()
        cpu_at_start = _rusage()["cpu_s"]
        projections = []
        began = time.monotonic()
        for projection in core.runner.projections:
            label = f"rebuild {projection.name}"
            started = time.monotonic()
            report = rebuild(core.runner, projection, _rate_reporter(label, started))
            projections.append(
                {
                    "name": projection.name,
                    "events": report.events_applied,
                    "seconds": time.monotonic() - started,
                }
            )
            say(f"  {label}: done in {projections[-1]['seconds']:.1f} s")
        seconds = time.monotonic() - began
    usage = _rusage()
    return {
        "projections": projections,
        "seconds": seconds,
        "rss_at_start_mb": at_start,
        "maxrss_mb": usage["maxrss_mb"],
        "cpu_s": usage["cpu_s"] - cpu_at_start,
    }


def _rate_reporter(label: str, started: float) -> Callable[[int, int], None]:
    last = [started]

    def report(position: int, head: int) -> None:
        now = time.monotonic()
        if now - last[0] >= PROGRESS_EVERY_S:
            last[0] = now
            rate = position / (now - started) if now > started else 0.0
            say(f"  {label}: {position:,} / {head:,} ({rate:,.0f} events/s)")

    return report


def child_worker(url: str) -> None:
    """``tradecore run``'s worker, until SIGTERM."""
    from app.entrypoints.worker import Worker  # noqa: PLC0415 - only the child needs it

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with bootstrap(Settings(database_url=url)) as core:
        print("ready", flush=True)
        Worker(core).run(stop)


def child_env(address: DatabaseAddress) -> dict[str, str]:
    return {**os.environ, CHILD_URL_ENV: app(address).url, CHILD_T0_ENV: repr(say.started)}


def run_child(kind: str, address: DatabaseAddress) -> dict[str, Any]:
    """Run ``--child kind`` in a fresh interpreter; its last stdout line is its JSON result."""
    command = [sys.executable, "-m", "benchmarks.bench_replay", "--child", kind]
    done = subprocess.run(
        command, env=child_env(address), stdout=subprocess.PIPE, text=True, check=True
    )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# -- part 1: rebuild ------------------------------------------------------------------------------


@dataclass
class RebuildPart:
    generated: Generated
    read: dict[str, Any]
    rebuild: dict[str, Any]


def part_rebuild(srv: Server, events: int) -> RebuildPart:
    with scratch_database(srv) as address:
        say(f"part 1: generating a log of {events:,} policy changes (COPY) ...")
        with bootstrap(Settings(database_url=app(address).url), pool_size=2) as core:
            generated = generate_log(core, address, events)
        say(
            f"  {generated.events:,} events in the log; generated in {generated.seconds:.1f} s "
            f"({generated.rate:,.0f} events/s)"
        )
        with address.connect() as conn:
            conn.execute(f"VACUUM ANALYZE {EVENTS}")
        say("part 1: baseline, the library reading every notification (child process) ...")
        read = run_child("read", address)
        say(f"  read {read['events']:,} in {read['read_seconds']:.1f} s")
        say("part 1: rebuilding every read model (child process) ...")
        rebuilt = run_child("rebuild", address)
        say(f"  rebuilt in {rebuilt['seconds']:.1f} s, peak RSS {rebuilt['maxrss_mb']:.0f} MB")
    return RebuildPart(generated, read, rebuilt)


def rebuild_figures(part: RebuildPart) -> list[Figure]:
    log_events = part.generated.events
    rebuilt, read = part.rebuild, part.read
    rate = log_events / rebuilt["seconds"]
    read_rate = read["events"] / read["read_seconds"]
    decode_rate = read["events"] / (read["read_seconds"] + read["decode_seconds"])
    per_projection = ", ".join(
        f"{p['name']} {p['seconds']:.1f} s, {p['events']:,} applied"
        + (f" ({p['events'] / p['seconds']:,.0f}/s)" if p["events"] and p["seconds"] else "")
        for p in rebuilt["projections"]
    )
    return [
        Figure(
            f"rebuild of all {len(rebuilt['projections'])} read models, {log_events:,}-event log",
            f"{rate:,.0f} events/s",
            f"library select_notifications paging (limit {read['limit']})",
            f"{read_rate:,.0f} events/s",
            f">= {TARGET_REBUILD_RATE:,} events/s",
            rate >= TARGET_REBUILD_RATE,
            [
                f"log events / wall time of rebuild() for every read model in turn: "
                f"{rebuilt['seconds']:.1f} s ({per_projection})",
                f"the rebuild child used {rebuilt['cpu_s']:.1f} s of CPU in "
                f"{rebuilt['seconds']:.1f} s (the rest: waiting on the server)",
                f"library read + decode (mapper.to_domain_event), same child as the baseline: "
                f"{decode_rate:,.0f} events/s",
                f"log generated in {part.generated.seconds:.1f} s "
                f"({part.generated.rate:,.0f} events/s): Policy.update_limits + the store's "
                f"mapper, COPY {COPY_CHUNK:,} events a transaction",
            ],
        ),
        Figure(
            "rebuild peak RSS (child process, ru_maxrss)",
            f"{rebuilt['maxrss_mb']:.0f} MB",
            "peak RSS of the read + decode child",
            f"{read['maxrss_mb']:.0f} MB",
            f"< {TARGET_RSS_MB:.0f} MB",
            rebuilt["maxrss_mb"] < TARGET_RSS_MB,
            [
                f"each child's RSS after imports and bootstrap: rebuild "
                f"{rebuilt['rss_at_start_mb']:.0f} MB, read {read['rss_at_start_mb']:.0f} MB; "
                "the server's memory is not in either figure"
            ],
        ),
    ]


# -- part 2: catch-up -----------------------------------------------------------------------------


@dataclass
class CatchUpPart:
    generated: Generated
    read: ReadResult
    seconds: float
    applied: int
    lags: list[int]


def part_catch_up(srv: Server, backlog: int) -> CatchUpPart:
    with scratch_database(srv) as address:
        say(f"part 2: generating a backlog of {backlog:,} events (COPY) ...")
        with bootstrap(Settings(database_url=app(address).url), pool_size=2) as core:
            generated = generate_log(core, address, backlog)
            with address.connect() as conn:
                conn.execute(f"VACUUM ANALYZE {EVENTS}")
            say(f"  generated in {generated.seconds:.1f} s; baseline: the library's read ...")
            read = library_read(core, core.runner.batch_size, decode=False, label="library read")
            say("part 2: core.runner.catch_up() from position 0 ...")
            began = now_ns()
            applied = core.runner.catch_up()
            seconds = (now_ns() - began) / 1e9
            lags = [p.lag for p in core.runner.positions()]
            say(f"  caught up in {seconds:.1f} s, lags {lags}")
    return CatchUpPart(generated, read, seconds, applied, lags)


def catch_up_figures(part: CatchUpPart) -> list[Figure]:
    events = part.generated.events
    read = part.read
    return [
        Figure(
            f"catch-up from 0 to lag 0, {events:,}-event backlog",
            f"{part.seconds:.2f} s, {events / part.seconds:,.0f} events/s",
            "library select_notifications of the same log",
            f"{read.read_seconds:.2f} s, {read.rate:,.0f} events/s",
            notes=[
                f"lag after catch_up(): {part.lags} events; {part.applied:,} events applied "
                "over all read models (each applies the whole log)"
            ],
        )
    ]


# -- part 3: sustained load -----------------------------------------------------------------------


class Positions:
    """The log's head and the lowest tracked position of every read model, on one connection."""

    def __init__(self, address: DatabaseAddress, names: list[str]) -> None:
        self.conn = address.connect(autocommit=True)
        self.names = names

    def lowest(self) -> int:
        row = self.conn.execute(
            "SELECT count(*), min(position) FROM readmodel.projection_tracking "
            "WHERE name = ANY(%s)",
            (self.names,),
            prepare=True,
        ).fetchone()
        assert row is not None
        return int(row[1]) if row[0] == len(self.names) else 0

    def head(self) -> int:
        row = self.conn.execute(
            f"SELECT coalesce(max(notification_id), 0) FROM {EVENTS}", prepare=True
        ).fetchone()
        assert row is not None
        return int(row[0])

    def wait_caught_up(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.lowest() >= self.head():
                return True
            time.sleep(0.05)
        return False

    def close(self) -> None:
        self.conn.close()


@dataclass
class LoadPart:
    rate: float
    seconds: float
    writers: int
    commits: list[tuple[int, int, float]] = field(default_factory=list)  # (id, returned, ms)
    samples: list[tuple[int, int]] = field(default_factory=list)  # (seen, lowest position)
    commit_probe_ms: list[float] = field(default_factory=list)
    notify_probe_ms: list[float] = field(default_factory=list)
    wall_seconds: float = 0.0
    behind_ms: float = 0.0  # the furthest a writer fell behind its schedule
    errors: list[str] = field(default_factory=list)
    caught_up: bool = False
    log_rows: int = 0
    indexed_rows: int = 0
    missing: int = 0  # log rows with no event_index row
    saved_ticks: int = 0
    logged_ticks: int = 0
    poll_ms: float = 0.0


def _writer(
    core: Core,
    aggregate: LoadTick,
    count: int,
    interval_ns: float,
    start_ns: int,
    out: list[tuple[int, int, float]],
    part: LoadPart,
) -> None:
    behind = 0
    try:
        for k in range(count):
            due = start_ns + int(k * interval_ns)
            wait = due - now_ns()
            if wait > 0:
                time.sleep(wait / 1e9)
            else:
                behind = max(behind, -wait)
            aggregate.tick(k + 1)
            began = now_ns()
            recordings = core.store.save(aggregate)
            returned = now_ns()
            latency = (returned - began) / 1e6
            out.extend((r.notification.id, returned, latency) for r in recordings)
    except Exception as error:  # reported with the figures
        part.errors.append(f"writer {aggregate.writer}: {type(error).__name__}: {error}")
    part.behind_ms = max(part.behind_ms, behind / 1e6)


def _poller(
    positions: Positions, stop: threading.Event, poll_s: float, out: list[tuple[int, int]]
) -> None:
    """Every ``poll_s``: (time the answer came back, lowest tracked position, never lower)."""
    lowest = -1
    while not stop.is_set():
        lowest = max(positions.lowest(), lowest)
        out.append((now_ns(), lowest))
        time.sleep(poll_s)


def _baseline_probe(address: DatabaseAddress, stop: threading.Event, part: LoadPart) -> None:
    """A single-row INSERT commit, and a NOTIFY's delivery to a listener, every 100 ms."""
    with (
        address.connect(autocommit=False) as writer,
        address.connect(autocommit=True) as notifier,
        address.connect(autocommit=True) as listener,
    ):
        listener.execute(f"LISTEN {PROBE_CHANNEL}")
        while not stop.wait(BASELINE_PROBE_INTERVAL_S):
            began = now_ns()
            writer.execute(f"INSERT INTO {PROBE_SCHEMA}.commit_probe DEFAULT VALUES", prepare=True)
            writer.commit()
            part.commit_probe_ms.append((now_ns() - began) / 1e6)
            notifier.execute(f"NOTIFY {PROBE_CHANNEL}")
            sent = now_ns()
            for _ in listener.notifies(timeout=1.0, stop_after=1):
                part.notify_probe_ms.append((now_ns() - sent) / 1e6)


def part_load(srv: Server, rate: float, seconds: float, writers: int, poll_ms: float) -> LoadPart:
    part = LoadPart(rate=rate, seconds=seconds, writers=writers, poll_ms=poll_ms)
    with scratch_database(srv) as address:
        with address.connect() as conn:
            conn.execute(f"CREATE SCHEMA {PROBE_SCHEMA}")
            conn.execute(f"CREATE TABLE {PROBE_SCHEMA}.commit_probe (id bigserial PRIMARY KEY)")
        settings = Settings(database_url=app(address).url)
        with bootstrap(settings, pool_size=writers + 2) as core:
            core.commands.ensure_initialised()
            aggregates = [LoadTick(writer=w) for w in range(writers)]
            core.store.save(*aggregates)
            say("part 3: starting the worker (child process) ...")
            worker = subprocess.Popen(
                [sys.executable, "-m", "benchmarks.bench_replay", "--child", "worker"],
                env=child_env(address),
                stdout=subprocess.PIPE,
                text=True,
            )
            positions = Positions(address, [p.name for p in core.runner.projections])
            try:
                assert worker.stdout is not None
                if worker.stdout.readline().strip() != "ready":
                    raise RuntimeError("the worker did not start")
                if not positions.wait_caught_up(CATCH_UP_TIMEOUT_S):
                    raise RuntimeError("the worker did not catch up before the load")
                _run_load(core, address, positions, aggregates, part)
            finally:
                worker.send_signal(signal.SIGTERM)
                try:
                    worker.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    worker.kill()
                    worker.wait()
                positions.close()
            _count(address, aggregates, part)
    return part


def _run_load(
    core: Core,
    address: DatabaseAddress,
    positions: Positions,
    aggregates: list[LoadTick],
    part: LoadPart,
) -> None:
    writers = len(aggregates)
    per_writer = round(part.rate / writers * part.seconds)
    interval_ns = 1e9 * writers / part.rate
    say(
        f"part 3: {writers} writers x {per_writer:,} events at {part.rate / writers:g}/s each "
        f"for {part.seconds:g} s, worker running ..."
    )
    stop_probes = threading.Event()
    poll_positions = Positions(address, positions.names)
    poller = threading.Thread(
        target=_poller, args=(poll_positions, stop_probes, part.poll_ms / 1000, part.samples)
    )
    probe = threading.Thread(target=_baseline_probe, args=(address, stop_probes, part))
    start_ns = now_ns() + 50_000_000
    outs: list[list[tuple[int, int, float]]] = [[] for _ in aggregates]
    threads = [
        threading.Thread(
            target=_writer,
            args=(
                core,
                aggregate,
                per_writer,
                interval_ns,
                start_ns + int(w * interval_ns / writers),  # interleaved, not in step
                outs[w],
                part,
            ),
            name=f"writer-{w}",
        )
        for w, aggregate in enumerate(aggregates)
    ]
    poller.start()
    probe.start()
    for t in threads:
        t.start()
    reporter_stop = threading.Event()

    def report() -> None:
        while not reporter_stop.wait(PROGRESS_EVERY_S):
            done = sum(len(o) for o in outs)
            lag = positions_head_lag()
            say(f"  {done:,} events saved; worker {lag} events behind")

    def positions_head_lag() -> int:
        last = part.samples[-1][1] if part.samples else 0
        committed = max((o[-1][0] for o in outs if o), default=last)
        return max(committed - last, 0)

    reporter = threading.Thread(target=report, daemon=True)
    reporter.start()
    for t in threads:
        t.join()
    part.wall_seconds = (now_ns() - start_ns) / 1e9
    say("  writers done; waiting for the worker to reach the head ...")
    part.caught_up = positions.wait_caught_up(CATCH_UP_TIMEOUT_S)
    time.sleep(part.poll_ms / 1000 * 2)  # one more poll sample at the head
    stop_probes.set()
    reporter_stop.set()
    poller.join()
    probe.join()
    poll_positions.close()
    part.commits = sorted(c for o in outs for c in o)


def _count(address: DatabaseAddress, aggregates: list[LoadTick], part: LoadPart) -> None:
    ids = [a.id for a in aggregates]
    with address.connect() as conn:

        def one(query: str, params: tuple[Any, ...] = ()) -> int:
            row = conn.execute(query, params).fetchone()
            assert row is not None
            return int(row[0])

        part.log_rows = one(f"SELECT count(*) FROM {EVENTS}")
        part.indexed_rows = one("SELECT count(*) FROM readmodel.event_index")
        part.missing = one(
            f"SELECT count(*) FROM {EVENTS} e LEFT JOIN readmodel.event_index i "
            "USING (notification_id) WHERE i.notification_id IS NULL"
        )
        part.logged_ticks = one(
            f"SELECT count(*) FROM {EVENTS} WHERE originator_id = ANY(%s) "
            "AND originator_version > 1",
            (ids,),
        )
    part.saved_ticks = len(part.commits)


def lag_samples(part: LoadPart) -> tuple[list[float], list[float], int]:
    """Per event: save returned -> the first poll that saw every read model past it (ms).
    Per poll during the load: the age of the oldest committed event not yet applied (ms).
    And how many events no poll saw applied."""
    seen_at = [s for s, _ in part.samples]
    lowest = [p for _, p in part.samples]
    per_event: list[float] = []
    unseen = 0
    for notification_id, returned, _ in part.commits:
        i = bisect.bisect_left(lowest, notification_id)
        if i == len(lowest):
            unseen += 1
            continue
        per_event.append(max(seen_at[i] - returned, 0) / 1e6)
    ids = [c[0] for c in part.commits]
    returned_at = [c[1] for c in part.commits]
    first, last = (returned_at[0], returned_at[-1]) if returned_at else (0, 0)
    ages: list[float] = []
    for seen, position in part.samples:
        if not first <= seen <= last:
            continue
        j = bisect.bisect_right(ids, position)
        ages.append(max(seen - returned_at[j], 0) / 1e6 if j < len(ids) else 0.0)
    return per_event, ages, unseen


def load_rows(part: LoadPart) -> tuple[list[Row], list[Figure]]:
    per_event, ages, unseen = lag_samples(part)
    commit_ms = [c[2] for c in part.commits]
    achieved = len(part.commits) / part.wall_seconds if part.wall_seconds else float("nan")
    commit = Summary.of(commit_ms)
    commit_base = Summary.of(part.commit_probe_ms)
    lag = Summary.of(per_event)
    lag_base = Summary.of(part.notify_probe_ms)
    age = Summary.of(ages)
    load = f"{part.rate:g} events/s, {part.writers} writers, {part.seconds:g} s"
    rows = [
        Row(
            f"commit latency (store.save of 1 event), {load}",
            commit_ms,
            "single-row INSERT commit, same server, same time",
            part.commit_probe_ms,
            [
                f"achieved {achieved:,.1f} events/s over {part.wall_seconds:.1f} s; the "
                f"furthest a writer fell behind its schedule: {part.behind_ms:.0f} ms",
                "writers are threads of one process (the GIL is part of the latency); the "
                "worker is a separate process",
            ],
        ),
        Row(
            "projection lag (save returned -> every read model applied)",
            per_event,
            "NOTIFY -> LISTEN delivery, same server, same time",
            part.notify_probe_ms,
            [
                f"read by polling min(projection_tracking.position) every {part.poll_ms:g} ms "
                f"(the resolution); sampled age of the oldest unapplied event at each poll: "
                f"p50 {age.p50:.1f} ms, p99 {age.p99:.1f} ms, max {max(ages, default=0):.1f} ms",
            ]
            + ([f"{unseen} events never seen applied"] if unseen else []),
        ),
    ]
    lost = part.missing + (part.saved_ticks - part.logged_ticks)
    lost_notes = [
        f"log {part.log_rows:,} rows, event_index {part.indexed_rows:,} rows, "
        f"{part.missing} log rows without an event_index row; writers saved "
        f"{part.saved_ticks:,} events, {part.logged_ticks:,} of them in the log; worker "
        f"{'caught up' if part.caught_up else 'DID NOT catch up'} after the load"
    ]
    lost_notes += part.errors
    figures = [
        Figure(
            f"commit latency p99 at {load}",
            f"{commit.p99:.1f} ms",
            "single-row INSERT commit p99",
            f"{commit_base.p99:.1f} ms",
            f"< {TARGET_COMMIT_P99_MS:.0f} ms",
            commit.p99 < TARGET_COMMIT_P99_MS,
        ),
        Figure(
            "projection lag p99 (save returned -> applied)",
            f"{lag.p99:.1f} ms",
            "NOTIFY -> LISTEN p99",
            f"{lag_base.p99:.1f} ms",
            f"< {TARGET_LAG_P99_MS:.0f} ms",
            lag.p99 < TARGET_LAG_P99_MS and not unseen,
        ),
        Figure(
            "events lost",
            f"{lost} of {part.log_rows:,}",
            "-",
            "-",
            "0",
            lost == 0 and part.caught_up and not part.errors,
            lost_notes,
        ),
    ]
    return rows, figures


# -- main -----------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench_replay", description=__doc__.split("\n\n")[0]
    )
    add_database_url_option(parser)
    parser.add_argument(
        "--events", type=int, default=1_000_000, help="log length for the rebuild (1000000)"
    )
    parser.add_argument(
        "--backlog", type=int, default=100_000, help="backlog for the catch-up (100000)"
    )
    parser.add_argument("--rate", type=float, default=500.0, help="sustained events/s (500)")
    parser.add_argument("--seconds", type=float, default=60.0, help="sustained load for (60)")
    parser.add_argument("--writers", type=int, default=4, help="writer threads (4)")
    parser.add_argument(
        "--poll-ms", type=float, default=10.0, help="lag polling interval in ms (10)"
    )
    parser.add_argument(
        "--parts",
        default=",".join(PARTS),
        help=f"which parts to run, comma-separated ({','.join(PARTS)})",
    )
    parser.add_argument("--child", choices=["read", "rebuild", "worker"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    if unknown := set(args.parts) - set(PARTS):
        parser.error(f"unknown parts: {', '.join(sorted(unknown))}")
    if min(args.events, args.backlog, args.writers) < 1 or args.rate <= 0 or args.seconds <= 0:
        parser.error("counts, --rate and --seconds must be positive")
    return args


def child_main(kind: str) -> int:
    url = os.environ[CHILD_URL_ENV]
    say.started = float(os.environ.get(CHILD_T0_ENV, say.started))
    if kind == "worker":
        child_worker(url)
        return 0
    result = child_read(url) if kind == "read" else child_rebuild(url)
    print(json.dumps(result), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        return child_main(args.child)
    started = say.started = time.monotonic()
    figures: list[Figure] = []
    rows: list[Row] = []
    with server(args.database_url) as srv:
        with scratch_database(srv) as address:
            pg_version = server_version(address)
        if "rebuild" in args.parts:
            figures += rebuild_figures(part_rebuild(srv, args.events))
        if "catchup" in args.parts:
            figures += catch_up_figures(part_catch_up(srv, args.backlog))
        if "load" in args.parts:
            load = part_load(srv, args.rate, args.seconds, args.writers, args.poll_ms)
            rows, load_figures = load_rows(load)
            figures += load_figures
    elapsed = time.monotonic() - started
    options = " ".join(argv if argv is not None else sys.argv[1:])
    command = f"python -m benchmarks.bench_replay{' ' + options if options else ''}"
    context = (
        f"`{command}` on {dt.date.today().isoformat()}: {machine(pg_version, srv)}; "
        f"parts {', '.join(args.parts)}; run took {elapsed:.0f} s."
    )
    print()
    print("tradecore benchmark: replay, catch-up and sustained load")
    print(context.replace("`", ""))
    print()
    print_figures(figures)
    if rows:
        print()
        print_table(rows)
    print()
    print("Markdown for the README:")
    print()
    print_figures_markdown(figures)
    if rows:
        print()
        print_markdown(rows, context)
    else:
        print()
        print(f"_{context}_")
    print()
    for f in figures:
        if f.met is not None:
            print(f"Target {f.target} for {f.figure}: {f.verdict} ({f.value}).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
