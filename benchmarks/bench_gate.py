"""How fast the policy gate answers, and how soon a committed change reaches the policy view.

Run from the repository root::

    python -m benchmarks.bench_gate [--database-url URL] [--samples 500] [--latency-samples 200]

Each figure is printed beside a baseline measured in the same run on the same server:

- gate decision (view current / view behind) vs. a bare ``SELECT 1`` on the gate's engine;
- change committed -> policy view shows it (tradecore's ProjectionRunner, woken by NOTIFY)
  vs. the bare eventsourcing library's save -> projection (its ProjectionRunner and a
  PostgresTrackingRecorder view).

Nothing is asserted on timings. The benchmark works in a database of its own that it
creates and drops (see ``benchmarks.support``), so it never touches a real policy.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import sys
import threading
import time
from collections import Counter as Tally
from collections.abc import Iterator

from sqlalchemy import text

from adapters.database import DatabaseAddress
from app.bootstrap import Core, bootstrap
from app.commands.safety import PolicyChange
from app.config import Settings
from benchmarks import library_baseline as lib
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
    tally,
    time_ms,
)

WARMUP = 10
# Pause between latency samples, so each change reaches a consumer that is idle and waiting
# (the usual case) rather than one still finishing the previous batch.
PAUSE_BETWEEN_CHANGES_S = 0.005
GATE_MAX_LAG_EVENTS = 100


# -- measurements -------------------------------------------------------------------------------


def select_one(core: Core) -> None:
    with core.engine.connect() as conn:
        conn.execute(text("SELECT 1")).scalar_one()


def gate_from_view(core: Core, samples: int) -> Row:
    """The gate with the view caught up, interleaved call by call with its SELECT 1 baseline."""
    core.runner.catch_up()
    gate_ms: list[float] = []
    select_ms: list[float] = []
    sources: Tally[str] = Tally()
    for i in range(WARMUP + samples):
        elapsed, decision = time_ms(core.gate.can_open_new_trades)
        baseline, _ = time_ms(lambda: select_one(core))
        if i >= WARMUP:
            gate_ms.append(elapsed)
            select_ms.append(baseline)
            sources[decision.source] += 1
    return Row(
        "gate decision, view current",
        gate_ms,
        "SELECT 1 on the gate's engine",
        select_ms,
        [f"gate answered from: {tally(sources)}"],
    )


def gate_from_aggregate(core: Core, samples: int, notional: Iterator[int]) -> Row:
    """The gate right after a committed change, before the view has it (no runner running)."""
    gate_ms: list[float] = []
    select_ms: list[float] = []
    sources: Tally[str] = Tally()
    first_version = last_version = 0
    for i in range(WARMUP + samples):
        change = _change_policy(core, notional)
        elapsed, decision = time_ms(core.gate.can_open_new_trades)
        baseline, _ = time_ms(lambda: select_one(core))
        core.runner.catch_up()  # untimed: keeps the view within the gate's lag bound
        if i >= WARMUP:
            gate_ms.append(elapsed)
            select_ms.append(baseline)
            sources[decision.source] += 1
            first_version = first_version or change.version
            last_version = change.version
    return Row(
        "gate decision, view 1 event behind",
        gate_ms,
        "SELECT 1 on the gate's engine",
        select_ms,
        [
            f"gate answered from: {tally(sources)}",
            f"it loads the Policy aggregate (v{first_version}..v{last_version}, from its latest "
            "snapshot, taken every 50 versions)",
        ],
    )


def commit_to_visible(
    core: Core, address: DatabaseAddress, samples: int, notional: Iterator[int]
) -> Row:
    """Commit -> view visible, tradecore and the bare library interleaved sample by sample."""
    core.runner.catch_up()
    stop = threading.Event()
    runner_thread = threading.Thread(
        target=core.runner.run,
        args=(stop, core.waiter()),
        kwargs={"poll_interval": 1.0},
        name="tradecore-projections",
        daemon=True,
    )
    ours_ms: list[float] = []
    theirs_ms: list[float] = []
    timeouts: Tally[str] = Tally()
    lib.create_schema(address)
    ours_poll = Poller(address, "SELECT version FROM readmodel.policy_view")
    runner_thread.start()
    library = None
    try:
        library = lib.start_runner(address)
        with library:
            theirs_poll = Poller(address, lib.view_query(library))
            counter = lib.Counter()
            library.app.save(counter)
            try:
                for i in range(WARMUP + samples):
                    change = _change_policy(core, notional)
                    committed = now_ns()
                    seen = ours_poll.wait_until_at_least(change.version)
                    time.sleep(PAUSE_BETWEEN_CHANGES_S)

                    counter.set(i + 1)
                    library.app.save(counter)
                    saved = now_ns()
                    seen_lib = theirs_poll.wait_until_at_least(i + 1)
                    time.sleep(PAUSE_BETWEEN_CHANGES_S)

                    if i < WARMUP:
                        continue
                    if seen is None:
                        timeouts["tradecore"] += 1
                    else:
                        ours_ms.append((seen - committed) / 1e6)
                    if seen_lib is None:
                        timeouts["library"] += 1
                    else:
                        theirs_ms.append((seen_lib - saved) / 1e6)
            finally:
                theirs_poll.close()
    finally:
        if library is not None:
            library.view.datastore.close()
        ours_poll.close()
        stop.set()
        runner_thread.join(timeout=5)
    notes = [
        "tradecore: ProjectionRunner.run woken by NOTIFY (poll 1 s), policy_view.version polled",
        "library: eventsourcing ProjectionRunner -> PostgresTrackingRecorder view, value polled",
        f"resolution: one polling round trip; samples interleaved; {WARMUP} warm-up discarded",
    ]
    if timeouts:
        notes.append(f"timed out (5 s, not counted): {tally(timeouts)}")
    return Row(
        "change committed -> policy view shows it",
        ours_ms,
        "bare eventsourcing save -> projection",
        theirs_ms,
        notes,
    )


def _change_policy(core: Core, notional: Iterator[int]) -> PolicyChange:
    change = core.commands.update_policy(
        actor="bench", reason="bench", max_position_notional=str(next(notional))
    )
    assert change.changed  # a benchmark of nothing would be worse than no benchmark
    return change


# -- main -----------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench_gate", description=__doc__.split("\n\n")[0]
    )
    add_database_url_option(parser)
    parser.add_argument(
        "--samples", type=int, default=500, help="gate calls with the view current (500)"
    )
    parser.add_argument(
        "--latency-samples",
        type=int,
        default=200,
        help="committed changes for the view-behind gate and the commit->visible figures (200)",
    )
    args = parser.parse_args(argv)
    if args.samples < 1 or args.latency_samples < 1:
        parser.error("sample counts must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    notional = itertools.count(20_001)  # every change differs from the last (and the default)
    with server(args.database_url) as srv, scratch_database(srv) as address:
        pg_version = server_version(address)
        settings = Settings(database_url=app(address).url, gate_max_lag_events=GATE_MAX_LAG_EVENTS)
        with bootstrap(settings, pool_size=4) as core:
            core.commands.ensure_initialised()
            rows = [
                gate_from_view(core, args.samples),
                gate_from_aggregate(core, args.latency_samples, notional),
                commit_to_visible(core, address, args.latency_samples, notional),
            ]
    elapsed = time.monotonic() - started
    context = (
        f"`python -m benchmarks.bench_gate` on {dt.date.today().isoformat()}: "
        f"{machine(pg_version, srv)}; "
        f"{args.samples} gate calls, {args.latency_samples} changes; run took {elapsed:.1f} s."
    )
    print()
    print("tradecore benchmark: policy gate and policy view")
    print(context.replace("`", ""))
    print()
    print_table(rows)
    print()
    print("Markdown for the README:")
    print()
    print_markdown(rows, context)
    return 0


if __name__ == "__main__":
    sys.exit(main())
