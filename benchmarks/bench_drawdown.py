"""How soon a crash trips the drawdown breaker (P0-07) and the account is flat.

Run from the repository root::

    python -m benchmarks.bench_drawdown [--database-url URL] [--runs 30] [--baseline-per-run 5]

The worker (``app.entrypoints.worker.Worker``, as ``tradecore run`` runs it) runs in this
process on the paper venue with 20 open long positions (1,000 USDT each on 20,000 of equity).
Each run
moves all 20 marks down 15 % in one transaction — a flash crash, a 15 % drawdown — and
times, from that move's commit:

- the breaching reading committed -> ``EmergencyActivated`` committed (target p99 <= 50 ms):
  the first reading after the crash is a 15 % jump, held as pending; the confirming
  re-read commits with the hard breach and the activation;
- the move -> ``EmergencyActivated`` committed (the same target, a stricter figure): the whole
  breaker: the venue's NOTIFY, the equity read, the reading recorded and judged, the
  confirming re-read (a 15 % jump is held until confirmed), and the hard breach saved with
  the activation;
- -> venue flat: the paper venue shows no position (target p99 <= 250 ms).

Between runs, untimed: the peak is reset, the latch reset, the wallet topped up, the marks
restored and the positions re-opened. The baseline, interleaved with the runs on the same
server: the bare eventsourcing library saving an aggregate and its own ``ProjectionRunner``
showing it in a view (see ``benchmarks.library_baseline``).

Nothing is asserted on timings. It works in a database of its own that it creates and drops.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from eventsourcing.projection import ProjectionRunner

from adapters.paper.venue import PaperVenue
from app.bootstrap import Core, bootstrap
from app.config import Settings
from app.entrypoints.worker import Worker
from benchmarks import library_baseline as lib
from benchmarks.bench_flatten import MARKS
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
from domain.venue import OrderRequest

TARGET_ACTIVATION_P99_MS = 50.0
TARGET_FLAT_P99_MS = 250.0
WARMUP_RUNS = 2
EQUITY = Decimal(20_000)
NOTIONAL = Decimal(1_000)
CRASH = Decimal("0.85")
ACTOR = "bench"
ACTIVATIONS = (
    "SELECT count(*) FROM eventstore.tradecore_events "
    "WHERE topic = 'domain.emergency:Emergency.Activated'"
)
READINGS = (
    "SELECT coalesce(max(notification_id), 0) FROM eventstore.tradecore_events "
    "WHERE topic = 'domain.account:Account.EquityRecorded'"
)
FLAT = "SELECT CASE WHEN count(*) = 0 THEN 1 ELSE 0 END FROM paper.positions"


def wait(condition: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.005)


def settled_reading_after(core: Core, since: dt.datetime) -> bool:
    """The breaker has a reading newer than ``since`` and holds none for confirmation."""
    account = core.drawdown_breaker().load()
    return (
        account is not None
        and account.last_reading_at is not None
        and account.last_reading_at > since
        and account.pending is None
    )


def prepare_run(core: Core, admin: PaperVenue) -> None:
    """Back to 20 fresh longs on 20,000 of equity, breaker normal, latch off (untimed)."""
    admin.set_prices(MARKS)
    wallet = admin.fetch_balance().wallet
    if wallet < EQUITY:
        admin.deposit(EQUITY - wallet)
    since = core.clock()
    wait(lambda: settled_reading_after(core, since), what="a reading after the top-up")
    # A new high-water mark first: with the latch reset and the old peak kept, the next
    # reading would trip the breaker again.
    core.drawdown_breaker().reset_peak(actor=ACTOR, reason="bench: next run")
    emergency = core.commands.load_emergency()
    if emergency is not None and emergency.active:
        core.commands.reset_emergency(
            reason="bench: next run",
            actor=ACTOR,
            venue_exposure=lambda: (len(admin.fetch_positions()), len(admin.fetch_open_orders())),
        )
    for symbol, mark in MARKS.items():
        quantity = (NOTIONAL / mark).quantize(Decimal("0.001"))
        admin.create_order(OrderRequest(symbol, "buy", quantity, f"bench-{uuid.uuid4().hex[:24]}"))
    if len(admin.fetch_positions()) != len(MARKS):
        raise RuntimeError("the set-up did not open 20 positions")
    since = core.clock()
    wait(lambda: settled_reading_after(core, since), what="a reading of the open book")


@dataclass
class Pollers:
    readings: Poller
    activations: Poller
    flat: Poller


@dataclass
class Crash:
    reading_ms: float  # mark move committed -> the first reading after it committed
    activation_ms: float  # mark move committed -> EmergencyActivated committed
    flat_ms: float  # mark move committed -> the venue shows no position


def crash_once(admin: PaperVenue, polls: Pollers, run: int) -> Crash:
    before = polls.activations.read() or 0
    last_reading = polls.readings.read() or 0
    admin.set_prices({symbol: mark * CRASH for symbol, mark in MARKS.items()})
    moved = now_ns()
    read = polls.readings.wait_until_at_least(last_reading + 1, timeout=10)
    activated = polls.activations.wait_until_at_least(before + 1, timeout=10)
    is_flat = polls.flat.wait_until_at_least(1, timeout=10)
    if read is None or activated is None or is_flat is None:
        raise RuntimeError(f"run {run}: the crash did not trip the breaker and flatten in 10 s")
    return Crash((read - moved) / 1e6, (activated - moved) / 1e6, (is_flat - moved) / 1e6)


def library_samples(
    library: ProjectionRunner[lib.BaselineApp, lib.CounterView],
    poll: Poller,
    counter: lib.Counter,
    n: int,
) -> list[float]:
    samples = []
    for _ in range(n):
        counter.set(counter.value + 1)
        library.app.save(counter)
        saved = now_ns()
        seen = poll.wait_until_at_least(counter.value)
        if seen is not None:
            samples.append((seen - saved) / 1e6)
        time.sleep(0.01)
    return samples


def measure(core: Core, runs: int, per_run: int) -> tuple[list[Crash], list[float]]:
    venue = core.venue()
    if not isinstance(venue, PaperVenue):
        raise RuntimeError("the benchmark needs the paper venue")
    admin = venue.admin()
    admin.deposit(EQUITY)
    admin.set_prices(MARKS)
    stop = threading.Event()
    worker = threading.Thread(target=Worker(core).run, args=(stop,), daemon=True)
    worker.start()
    polls = Pollers(
        Poller(core.address, READINGS),
        Poller(core.address, ACTIVATIONS),
        Poller(core.address, FLAT),
    )
    lib.create_schema(core.address)
    crashes: list[Crash] = []
    baseline: list[float] = []
    try:
        with lib.start_runner(core.address) as library:
            view = Poller(core.address, lib.view_query(library))
            counter = lib.Counter()
            library.app.save(counter)
            try:
                for run in range(WARMUP_RUNS + runs):
                    prepare_run(core, admin)
                    crash = crash_once(admin, polls, run)
                    wait(
                        lambda: bool((e := core.commands.load_emergency()) and e.flat),
                        what="the flatten to be recorded",
                    )
                    samples = library_samples(library, view, counter, per_run)
                    if run >= WARMUP_RUNS:
                        crashes.append(crash)
                        baseline += samples
            finally:
                view.close()
                library.view.datastore.close()
    finally:
        stop.set()
        worker.join(timeout=30)
        for poller in (polls.readings, polls.activations, polls.flat):
            poller.close()
    return crashes, baseline


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench_drawdown", description=__doc__.split("\n\n")[0]
    )
    add_database_url_option(parser)
    parser.add_argument("--runs", type=int, default=30, help="timed crashes (30)")
    parser.add_argument(
        "--baseline-per-run", type=int, default=5, help="library save -> view samples per run (5)"
    )
    args = parser.parse_args(argv)
    if args.runs < 1 or args.baseline_per_run < 1:
        parser.error("--runs and --baseline-per-run must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Every run trips the breaker and flattens on purpose: their warnings would bury the table.
    logging.getLogger("app").setLevel(logging.CRITICAL)
    started = time.monotonic()
    with server(args.database_url) as srv, scratch_database(srv) as address:
        pg_version = server_version(address)
        settings = Settings(database_url=app(address).url, exchange="paper")
        with bootstrap(settings, pool_size=8) as core:
            core.commands.ensure_initialised()
            crashes, baseline = measure(core, args.runs, args.baseline_per_run)
    elapsed = time.monotonic() - started
    name = "library save -> its projection's view"
    table = [
        Row(
            "breaching reading committed -> EmergencyActivated committed",
            [c.activation_ms - c.reading_ms for c in crashes],
            name,
            baseline,
            ["the reading is held for confirmation (a 15 % jump): this is the re-read"],
        ),
        Row(
            "mark crash committed -> EmergencyActivated committed",
            [c.activation_ms for c in crashes],
            name,
            baseline,
        ),
        Row("mark crash committed -> venue flat", [c.flat_ms for c in crashes], name, baseline),
    ]
    context = (
        f"`python -m benchmarks.bench_drawdown` on {dt.date.today().isoformat()}: "
        f"{machine(pg_version, srv)}; {len(crashes)} crashes of 20 open positions "
        f"({WARMUP_RUNS} warm-up runs discarded), {len(baseline)} baseline samples; "
        f"run took {elapsed:.1f} s."
    )
    print()
    print("tradecore benchmark: drawdown breaker, crash -> emergency stop -> flat (paper venue)")
    print(context.replace("`", ""))
    print()
    print_table(table)
    print()
    targets = (
        (table[0], TARGET_ACTIVATION_P99_MS),
        (table[1], TARGET_ACTIVATION_P99_MS),
        (table[2], TARGET_FLAT_P99_MS),
    )
    for row, target in targets:
        met = "met" if row.summary.p99 <= target else "NOT met"
        print(f"Target p99 <= {target:.0f} ms for {row.figure}: {met} (p99 {row.summary.p99:.1f})")
    print()
    print("Markdown for the README:")
    print_markdown(table, context)
    return 0


if __name__ == "__main__":
    sys.exit(main())
