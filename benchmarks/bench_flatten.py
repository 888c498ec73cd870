"""How soon the emergency stop makes a paper account flat, beside one paper order's round trip.

Run from the repository root::

    python -m benchmarks.bench_flatten [--database-url URL] [--runs 30] [--baseline-samples 200]

Each run opens 20 positions on 20 symbols (longs and shorts) and 20 resting orders (limit
entries and reduce-only stop-losses) on the paper venue with no faults, then times:

- ``activate_emergency`` called -> it returns (the activation is committed);
- activation committed -> ``core.flattener().run()`` returns with the account flat
  (the headline figure; target: p99 under 250 ms);

and then resets the emergency, untimed, so the next run starts from a clean latch. The
baseline, interleaved with the runs on the same server: the round trip of one small market
order through the paper venue's port (``venue.create_order``), the kind of call a flatten
makes twenty of.

Nothing is asserted on timings; a run that does not end flat stops the benchmark. It works
in a database of its own that it creates and drops (see ``benchmarks.support``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
import time
import uuid
from collections import Counter as Tally
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from decimal import Decimal
from functools import partial
from typing import TypeVar
from uuid import UUID

from adapters.locks import advisory_lock
from adapters.paper.venue import PaperVenue
from app.bootstrap import Core, bootstrap
from app.config import Settings
from app.processes.flattener import Flattener
from benchmarks.support import (
    Row,
    Summary,
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
from domain.market_data import Candles
from domain.venue import (
    Balance,
    CashTransfer,
    ExchangePort,
    Order,
    OrderRequest,
    Position,
    Side,
    VenueError,
)

T = TypeVar("T")

TARGET_P99_MS = 250.0
TARGET_OVERHEAD_P99_MS = 20.0
WARMUP_RUNS = 2
WARMUP_ORDERS = 10
ACTOR = "bench"
NOTIONAL = Decimal(1000)  # per position, in USDT
QTY = Decimal("0.001")

# 20 symbols for the positions and resting orders, and one apart for the baseline orders.
MARKS: dict[str, Decimal] = {
    f"{base}/USDT:USDT": Decimal(price)
    for base, price in [
        ("BTC", "50000"),
        ("ETH", "3000"),
        ("SOL", "150"),
        ("BNB", "600"),
        ("XRP", "0.6"),
        ("DOGE", "0.15"),
        ("ADA", "0.45"),
        ("AVAX", "35"),
        ("LINK", "15"),
        ("DOT", "7"),
        ("TRX", "0.12"),
        ("LTC", "80"),
        ("BCH", "400"),
        ("NEAR", "5"),
        ("ATOM", "8"),
        ("APT", "9"),
        ("ARB", "1.1"),
        ("OP", "2.5"),
        ("FIL", "5.5"),
        ("UNI", "10"),
    ]
}
BASELINE_SYMBOL = "XLM/USDT:USDT"
BASELINE_MARK = Decimal("0.1")
BASELINE_QTY = Decimal(10)


# -- the account ----------------------------------------------------------------------------------


def _cid() -> str:
    return f"bench-{uuid.uuid4().hex[:24]}"


def prepare_market(admin: PaperVenue) -> None:
    admin.deposit(Decimal(10_000_000))
    for symbol, mark in [*MARKS.items(), (BASELINE_SYMBOL, BASELINE_MARK)]:
        admin.set_price(symbol, mark)


def open_account(admin: PaperVenue) -> None:
    """One position per symbol (every third one short) and one resting order per symbol:
    a limit entry well away from the mark on even symbols, a reduce-only stop-loss on odd
    ones. Placed through the un-faulted back office, as the drills do."""
    for i, (symbol, mark) in enumerate(MARKS.items()):
        short = i % 3 == 2
        side: Side = "sell" if short else "buy"
        quantity = (NOTIONAL / mark).quantize(QTY)
        admin.create_order(OrderRequest(symbol, side, quantity, _cid()))
        if i % 2 == 0:
            price = (mark * Decimal("0.9") if side == "buy" else mark * Decimal("1.1")).quantize(
                QTY
            )
            admin.create_order(
                OrderRequest(symbol, side, quantity, _cid(), type="limit", price=price)
            )
        else:
            closing: Side = "buy" if short else "sell"
            stop = (mark * Decimal("1.2") if short else mark * Decimal("0.8")).quantize(QTY)
            admin.create_order(
                OrderRequest(
                    symbol,
                    closing,
                    quantity,
                    _cid(),
                    type="stop",
                    stop_price=stop,
                    reduce_only=True,
                )
            )


def exposure(venue: ExchangePort) -> tuple[int, int]:
    return len(venue.fetch_positions()), len(venue.fetch_open_orders())


# -- measurements ---------------------------------------------------------------------------------


def order_round_trips(venue: ExchangePort, pairs: int) -> list[float]:
    """``pairs`` buy-then-sell market orders on the baseline symbol through the port, so the
    symbol ends flat; each order's round trip in milliseconds."""
    samples = []
    sides: tuple[Side, Side] = ("buy", "sell")
    for _ in range(pairs):
        for side in sides:
            request = OrderRequest(BASELINE_SYMBOL, side, BASELINE_QTY, _cid())
            elapsed, order = time_ms(partial(venue.create_order, request))
            if order.status != "closed":
                raise RuntimeError(f"baseline order did not fill: {order}")
            samples.append(elapsed)
    return samples


@dataclass
class FlattenRun:
    activation_ms: float  # activate_emergency called -> returned (committed)
    flat_ms: float  # returned -> the flattener returned flat
    attempts: int
    recorded_ms: int | None  # the emergency's own time_to_flat_ms (activated_at -> flat)
    venue_ms: float = 0.0  # of flat_ms, inside venue calls (the paper venue makes them in turn)
    pause_ms: float = 0.0  # of flat_ms, the venue's position lag waited out

    @property
    def overhead_ms(self) -> float:
        """tradecore's own share: everything outside venue calls and the lag."""
        return self.flat_ms - self.venue_ms - self.pause_ms


def flatten_once(
    core: Core, run: int, make_flattener: Callable[[], Flattener], counting: CountingVenue | None
) -> FlattenRun:
    venue = core.venue()
    admin = _paper(venue).admin()
    open_account(admin)
    if exposure(admin) != (len(MARKS), len(MARKS)):
        raise RuntimeError(f"run {run}: set-up gave {exposure(admin)} (positions, orders)")

    called = now_ns()
    activation = core.commands.activate_emergency(reason=f"bench run {run}", actor=ACTOR)
    committed = now_ns()
    in_venue_before = counting.elapsed_ms if counting else 0.0
    report = make_flattener().run()
    flat = now_ns()
    in_venue = (counting.elapsed_ms if counting else 0.0) - in_venue_before

    left = exposure(admin)
    if not activation.activated or report is None or not report.flat or left != (0, 0):
        raise RuntimeError(f"run {run}: not flat: {report}, venue shows {left}")
    core.commands.reset_emergency(
        reason="bench: next run", actor=ACTOR, venue_exposure=lambda: exposure(venue)
    )
    return FlattenRun(
        activation_ms=(committed - called) / 1e6,
        flat_ms=(flat - committed) / 1e6,
        attempts=report.attempts,
        recorded_ms=report.time_to_flat_ms,
        venue_ms=in_venue,
        pause_ms=report.attempts * venue.position_lag * 1000,
    )


class CountingVenue:
    """The port, passed through, counting the calls made on it and the time they take."""

    def __init__(self, venue: ExchangePort) -> None:
        self.venue = venue
        self.name = venue.name
        self.position_lag = venue.position_lag
        self.concurrent_requests = venue.concurrent_requests
        self.transfer_interval = venue.transfer_interval
        self.calls: Tally[str] = Tally()
        self.elapsed_ms = 0.0

    def _count(self, method: str, call: Callable[[], T]) -> T:
        self.calls[method] += 1
        elapsed, result = time_ms(call)
        self.elapsed_ms += elapsed
        return result  # type: ignore[no-any-return]

    def check_delay(self) -> float:
        return self.venue.check_delay()

    def fetch_positions(self) -> list[Position]:
        return self._count("fetch_positions", self.venue.fetch_positions)

    def fetch_open_orders(self) -> list[Order]:
        return self._count("fetch_open_orders", self.venue.fetch_open_orders)

    def fetch_balance(self) -> Balance:
        return self._count("fetch_balance", self.venue.fetch_balance)

    def fetch_transfers(self, since: dt.datetime | None) -> list[CashTransfer]:
        return self._count("fetch_transfers", lambda: self.venue.fetch_transfers(since))

    def fetch_mark_price(self, symbol: str) -> Decimal:
        return self._count("fetch_mark_price", lambda: self.venue.fetch_mark_price(symbol))

    def fetch_closes(self, symbol: str, limit: int) -> list[Decimal]:
        return self._count("fetch_closes", lambda: self.venue.fetch_closes(symbol, limit))

    def fetch_candles(self, symbol: str, limit: int) -> Candles:
        return self._count("fetch_candles", lambda: self.venue.fetch_candles(symbol, limit))

    def create_order(self, request: OrderRequest) -> Order:
        return self._count("create_order", lambda: self.venue.create_order(request))

    def create_orders(self, requests: Sequence[OrderRequest]) -> list[Order | VenueError]:
        return self._count("create_orders", lambda: self.venue.create_orders(requests))

    def cancel_order(self, order: Order) -> None:
        self._count("cancel_order", lambda: self.venue.cancel_order(order))

    def cancel_all_orders_on(self, symbols: Sequence[str]) -> dict[str, int | VenueError]:
        return self._count("cancel_all_orders_on", lambda: self.venue.cancel_all_orders_on(symbols))

    def cancel_all_orders(self, symbol: str) -> int:
        return self._count("cancel_all_orders", lambda: self.venue.cancel_all_orders(symbol))

    def fetch_order_by_client_id(self, client_order_id: str, symbol: str) -> Order | None:
        return self._count(
            "fetch_order_by_client_id",
            lambda: self.venue.fetch_order_by_client_id(client_order_id, symbol),
        )

    def fetch_fills(self, requests: Sequence[OrderRequest]) -> dict[str, Order]:
        return self._count("fetch_fills", lambda: self.venue.fetch_fills(requests))


def counting_flattener(core: Core, venue: CountingVenue) -> Flattener:
    """A flattener wired as ``Core.flattener`` wires it, on the counting venue."""

    def lock(name: UUID, timeout: float) -> AbstractContextManager[bool]:
        return advisory_lock(core.address, name, timeout=timeout)

    return Flattener(core.store, venue, core.clock, lock, deadline=core.settings.flatten_deadline)


def _paper(venue: ExchangePort) -> PaperVenue:
    if not isinstance(venue, PaperVenue):
        raise RuntimeError(f"the benchmark needs the paper venue, got {venue.name}")
    return venue


@dataclass
class Results:
    runs: list[FlattenRun] = field(default_factory=list)
    orders_ms: list[float] = field(default_factory=list)
    venue_calls: Tally[str] = field(default_factory=Tally)
    counted_run: FlattenRun | None = None
    counted_venue_ms: float = 0.0
    pause_ms: float = 0.0  # the venue's position lag: the flattener waits it out after an attempt


def measure(core: Core, runs: int, baseline_samples: int) -> Results:
    venue = core.venue()
    admin = _paper(venue).admin()
    admin.set_faults(None)
    prepare_market(admin)
    order_round_trips(venue, WARMUP_ORDERS // 2)
    # The baseline pairs, spread over the runs so both figures see the same server state.
    pairs = -(-baseline_samples // 2)
    share = [pairs // runs + (1 if r < pairs % runs else 0) for r in range(runs)]
    results = Results(pause_ms=venue.position_lag * 1000)
    # Every run's flattener goes through a timing pass-through (two clock reads a call), so
    # the time inside venue calls is known and the rest is tradecore's own.
    timing = CountingVenue(venue)
    for run in range(WARMUP_RUNS + runs):
        if run >= WARMUP_RUNS:
            results.orders_ms += order_round_trips(venue, share[run - WARMUP_RUNS])
        measured = flatten_once(core, run, lambda: core.flattener(venue=timing), timing)
        if run >= WARMUP_RUNS:
            results.runs.append(measured)
    # One more, untimed: how many venue calls one flatten makes.
    counting = CountingVenue(venue)
    results.counted_run = flatten_once(
        core, WARMUP_RUNS + runs, lambda: counting_flattener(core, counting), counting
    )
    results.venue_calls = counting.calls
    results.counted_venue_ms = counting.elapsed_ms
    return results


# -- output ---------------------------------------------------------------------------------------


def rows(results: Results) -> list[Row]:
    runs = results.runs
    overhead = [r.overhead_ms for r in runs]
    in_venue = Summary.of([r.venue_ms for r in runs])
    activation = [r.activation_ms for r in runs]
    flat = [r.flat_ms for r in runs]
    recorded = Summary.of([float(r.recorded_ms) for r in runs if r.recorded_ms is not None])
    baseline = "one paper market order round trip"
    calls = sum(results.venue_calls.values())
    counted = results.counted_run
    assert counted is not None
    return [
        Row(
            "activation committed -> venue flat",
            flat,
            baseline,
            results.orders_ms,
            [
                f"flatten attempts per run: {tally(Tally(str(r.attempts) for r in runs))}",
                f"the emergency's own time_to_flat_ms (activated_at -> flat recorded): "
                f"p50 {recorded.p50:.0f}, p99 {recorded.p99:.0f}",
                f"venue calls in one flatten (an extra run, not in the figures): {calls} "
                f"({tally(results.venue_calls)}), {results.counted_venue_ms:.0f} ms of its "
                f"{counted.flat_ms:.0f} ms; the rest is the event store and the "
                f"venue's position lag the flattener waits out ({results.pause_ms:.0f} ms)",
            ],
        ),
        Row(
            "tradecore overhead in it (outside venue calls)",
            overhead,
            baseline,
            results.orders_ms,
            [
                f"inside venue calls: p50 {in_venue.p50:.1f}, p99 {in_venue.p99:.1f} "
                f"(target for the overhead: p99 <= {TARGET_OVERHEAD_P99_MS:.0f} ms)"
            ],
        ),
        Row("activate_emergency called -> committed", activation, baseline, results.orders_ms),
        Row(
            "activate_emergency called -> venue flat",
            [a + f for a, f in zip(activation, flat, strict=True)],
            baseline,
            results.orders_ms,
        ),
    ]


def verdict(row: Row, overhead: Row) -> str:
    p99, p99_overhead = row.summary.p99, overhead.summary.p99
    met = "met" if p99 < TARGET_P99_MS else "NOT met"
    met_overhead = "met" if p99_overhead <= TARGET_OVERHEAD_P99_MS else "NOT met"
    return (
        f"Target p99 < {TARGET_P99_MS:.0f} ms for activation committed -> venue flat: "
        f"{met} (p99 {p99:.1f} ms over {row.summary.n} runs). Target p99 <= "
        f"{TARGET_OVERHEAD_P99_MS:.0f} ms for tradecore's overhead in it: {met_overhead} "
        f"(p99 {p99_overhead:.1f} ms)."
    )


# -- main -----------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench_flatten", description=__doc__.split("\n\n")[0]
    )
    add_database_url_option(parser)
    parser.add_argument(
        "--runs", type=int, default=30, help="timed flattens of 20 positions + 20 orders (30)"
    )
    parser.add_argument(
        "--baseline-samples",
        type=int,
        default=200,
        help="paper market orders for the baseline, spread over the runs (200)",
    )
    args = parser.parse_args(argv)
    if args.runs < 1 or args.baseline_samples < 1:
        parser.error("--runs and --baseline-samples must be at least 1")
    return args


class _ExpectedActivation(logging.Filter):
    """Every run activates the emergency stop on purpose: its warning would bury the table."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("EMERGENCY STOP ACTIVATED")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.getLogger("app.commands.safety").addFilter(_ExpectedActivation())
    started = time.monotonic()
    with server(args.database_url) as srv, scratch_database(srv) as address:
        pg_version = server_version(address)
        settings = Settings(database_url=app(address).url, exchange="paper")
        with bootstrap(settings, pool_size=4) as core:
            core.commands.ensure_initialised()
            results = measure(core, args.runs, args.baseline_samples)
    elapsed = time.monotonic() - started
    table = rows(results)
    context = (
        f"`python -m benchmarks.bench_flatten` on {dt.date.today().isoformat()}: "
        f"{machine(pg_version, srv)}; {len(results.runs)} runs of {len(MARKS)} positions + "
        f"{len(MARKS)} resting orders ({WARMUP_RUNS} warm-up runs discarded), "
        f"{len(results.orders_ms)} baseline orders; run took {elapsed:.1f} s."
    )
    print()
    print("tradecore benchmark: emergency stop -> flat on the paper venue")
    print(context.replace("`", ""))
    print()
    print_table(table)
    print()
    print(verdict(table[0], table[1]))
    print()
    print("Markdown for the README:")
    print()
    print_markdown(table, context)
    print()
    print(verdict(table[0], table[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
