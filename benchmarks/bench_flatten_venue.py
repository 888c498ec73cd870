"""How soon the emergency stop flattens a ccxt venue a network round trip away, in round trips.

Run from the repository root::

    python -m benchmarks.bench_flatten_venue [--database-url URL] [--runs 30]
        [--latency-ms 50] [--jitter-ms 10] [--baseline-samples 300]

For each dialect (Binance USD-M, Bybit), offline: a real ccxt exchange whose HTTP session is
a simulated account (``tests/ccxt_sim.py``: ccxt's real request building, signing and
parsing; every request waits latency ± jitter, uniform and seeded; its position endpoints
show a fill only after the venue's published position lag, 20 ms), the real ``CcxtVenue``
under its rate limiter, the real flattener and event store. Each run opens 20 positions on
20 symbols (every third short) and 20 resting orders (15 limit entries, 5 conditional
stop-losses) and times activation committed -> venue seen flat: the moment the flattener's
read that shows no position and no order returns, in milliseconds and in round trips
(divided by the baseline's p50). The flattener then records ``AccountFlat`` and closes the
trades; activation committed -> ``flattener.run()`` returned is shown apart.

The baseline, interleaved with the runs: one request through a venue of the same kind on an
account as large (``fetch_positions``, one GET answered with the 20 positions; no rate
limiter, which would hold back-to-back samples to Bybit's 10 a second) — what one round trip
costs here, ccxt's own work included. Target: p99 <= 3 round trips + 30 ms (180 ms at 50 ms).

Each run gets a new ccxt client, so each flatten starts with the venue's request budget
unspent, as a real one does (flattens are minutes apart, and the budget is per minute on
Binance); the client's markets and Bybit's account kind are loaded before the clock starts,
as a worker that has been running has them. Nothing is asserted on timings; a run that does
not end flat stops the benchmark.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
import threading
import time
from collections import Counter as Tally
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from functools import partial
from typing import Any, TypeVar

from adapters.ccxt.venue import CcxtVenue
from app.bootstrap import Core, bootstrap
from app.config import Settings
from benchmarks.bench_flatten import MARKS, _ExpectedActivation
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
from domain.venue import Balance, ExchangePort, Order, OrderRequest, Position, VenueError
from tests.ccxt_sim import SimulatedSession, open_position, rest_order, simulated_exchange

T = TypeVar("T")

DIALECTS = {"binanceusdm": "Binance USD-M", "bybit": "Bybit"}
TARGET_ROUND_TRIPS = 3
TARGET_SLACK_MS = 30.0
WARMUP_RUNS = 2
ACTOR = "bench"


# -- the account ----------------------------------------------------------------------------------


def open_account(session: SimulatedSession) -> None:
    """20 positions (every third short) and one resting order each: a stop-loss on every
    fourth symbol (5), a limit entry away from the mark on the others (15)."""
    for i, (symbol, mark) in enumerate(MARKS.items()):
        short = i % 3 == 2
        quantity = (Decimal(1000) / mark).quantize(Decimal("0.001"))
        open_position(session, symbol, -quantity if short else quantity)
        if i % 4 == 3:
            trigger = mark * Decimal("1.2") if short else mark * Decimal("0.8")
            rest_order(
                session, symbol, "buy" if short else "sell", quantity, f"sl-{i}", trigger=trigger
            )
        else:
            price = mark * Decimal("1.1") if short else mark * Decimal("0.9")
            rest_order(
                session, symbol, "sell" if short else "buy", quantity, f"in-{i}", price=price
            )


class TimedVenue:
    """The port, passed through, recording when each call was in progress (calls may overlap:
    the flattener makes two at once on such a venue)."""

    def __init__(self, venue: ExchangePort) -> None:
        self.venue = venue
        self.name = venue.name
        self.position_lag = venue.position_lag
        self.concurrent_requests = venue.concurrent_requests
        self.spans: list[tuple[int, int]] = []
        # When the flattener slept (the position lag, a back-off): see ``sleep``.
        self.pauses: list[tuple[int, int]] = []
        # When a read last came back empty, per read: both empty is the venue seen flat.
        self.empty_at: dict[str, int] = {}
        self.calls: Tally[str] = Tally()
        self._lock = threading.Lock()

    def sleep(self, seconds: float) -> None:
        """The flattener's sleep, its span recorded."""
        start = now_ns()
        time.sleep(seconds)
        with self._lock:
            self.pauses.append((start, now_ns()))

    def busy_ms(self, since: int, until: int, *, pauses: bool = False) -> float:
        """Milliseconds from ``since`` to ``until`` (perf_counter_ns) in which a venue call
        was in progress (or, with ``pauses``, that or the flattener sleeping)."""
        spans = self.spans + self.pauses if pauses else self.spans
        total, end = 0, since
        for start, stop in sorted((a, min(b, until)) for a, b in spans if a < until):
            if stop > end:
                total += stop - max(start, end)
                end = stop
        return total / 1e6

    def _timed(self, method: str, call: Callable[[], T]) -> T:
        start = now_ns()
        try:
            return call()
        finally:
            with self._lock:
                self.spans.append((start, now_ns()))
                self.calls[method] += 1

    def flat_seen_at(self) -> int:
        """perf_counter_ns when the read that showed the venue flat returned."""
        return max(self.empty_at["fetch_positions"], self.empty_at["fetch_open_orders"])

    def _read(self, method: str, call: Callable[[], list[T]]) -> list[T]:
        rows = self._timed(method, call)
        if not rows:
            self.empty_at[method] = now_ns()
        return rows

    def check_delay(self) -> float:
        return self.venue.check_delay()

    def fetch_positions(self) -> list[Position]:
        return self._read("fetch_positions", self.venue.fetch_positions)

    def fetch_open_orders(self) -> list[Order]:
        return self._read("fetch_open_orders", self.venue.fetch_open_orders)

    def fetch_balance(self) -> Balance:
        return self._timed("fetch_balance", self.venue.fetch_balance)

    def fetch_mark_price(self, symbol: str) -> Decimal:
        return self._timed("fetch_mark_price", lambda: self.venue.fetch_mark_price(symbol))

    def fetch_closes(self, symbol: str, limit: int) -> list[Decimal]:
        return self._timed("fetch_closes", lambda: self.venue.fetch_closes(symbol, limit))

    def fetch_candles(self, symbol: str, limit: int) -> Candles:
        return self._timed("fetch_candles", lambda: self.venue.fetch_candles(symbol, limit))

    def create_order(self, request: OrderRequest) -> Order:
        return self._timed("create_order", lambda: self.venue.create_order(request))

    def create_orders(self, requests: Sequence[OrderRequest]) -> list[Order | VenueError]:
        return self._timed("create_orders", lambda: self.venue.create_orders(requests))

    def cancel_order(self, order: Order) -> None:
        self._timed("cancel_order", lambda: self.venue.cancel_order(order))

    def cancel_all_orders(self, symbol: str) -> int:
        return self._timed("cancel_all_orders", lambda: self.venue.cancel_all_orders(symbol))

    def cancel_all_orders_on(self, symbols: Sequence[str]) -> dict[str, int | VenueError]:
        return self._timed("cancel_all_orders_on", lambda: self.venue.cancel_all_orders_on(symbols))

    def fetch_order_by_client_id(self, client_order_id: str, symbol: str) -> Order | None:
        return self._timed(
            "fetch_order_by_client_id",
            lambda: self.venue.fetch_order_by_client_id(client_order_id, symbol),
        )

    def fetch_fills(self, requests: Sequence[OrderRequest]) -> dict[str, Order]:
        return self._timed("fetch_fills", lambda: self.venue.fetch_fills(requests))


# -- measurements ---------------------------------------------------------------------------------


@dataclass
class FlattenRun:
    flat_ms: float  # activation committed -> the flattener's read showed the venue flat
    returned_ms: float  # activation committed -> the flattener returned (flat recorded)
    venue_ms: float  # of which some venue call was in progress
    pause_ms: float  # of which the flattener slept (the position lag) with no call in progress
    attempts: int
    requests: int  # HTTP requests the flatten sent
    limiter_wait_ms: float  # time requests were held back by the rate limiter

    @property
    def overhead_ms(self) -> float:
        return self.flat_ms - self.venue_ms - self.pause_ms


@dataclass
class Results:
    exchange_id: str
    runs: list[FlattenRun] = field(default_factory=list)
    request_ms: list[float] = field(default_factory=list)
    calls: Tally[str] = field(default_factory=Tally)
    endpoints: Tally[str] = field(default_factory=Tally)


def new_venue(
    exchange_id: str, args: argparse.Namespace, seed: int, *, rate_limit: bool = True
) -> tuple[CcxtVenue, Any]:
    exchange, session = simulated_exchange(
        exchange_id,
        MARKS,
        latency=args.latency_ms / 1000,
        jitter=args.jitter_ms / 1000,
        seed=seed,
        rate_limit=rate_limit,
        position_lag=CcxtVenue.position_lag,
    )
    venue = CcxtVenue(exchange)
    venue.fetch_positions()  # the markets, as a running worker has them
    if exchange_id == "bybit":
        exchange.is_unified_enabled()  # ccxt asks once per client which account kind it is
    return venue, session


def flatten_once(
    core: Core, exchange_id: str, args: argparse.Namespace, run: int
) -> tuple[FlattenRun, TimedVenue, SimulatedSession]:
    venue, session = new_venue(exchange_id, args, seed=run)
    open_account(session)
    # Checked on the simulated account itself: a check through the venue would spend the
    # request budget the flatten is meant to start with (Bybit's order listings: 10 a
    # second, four a read of the account).
    account = session.account
    if (len(account.positions), len(account.resting)) != (20, 20):
        raise RuntimeError(f"run {run}: the set-up did not give 20 positions and 20 orders")
    session.calls.clear()
    timed = TimedVenue(venue)
    assert venue.limiter is not None
    waited_before = venue.limiter.waited

    # As ``emergency activate --yes`` does: the flattener reads ahead while the activation
    # is committed.
    flattener = core.flattener(venue=timed)
    flattener.sleep = timed.sleep
    flattener.read_ahead()
    activation = core.commands.activate_emergency(reason=f"bench run {run}", actor=ACTOR)
    committed = now_ns()
    report = flattener.run()
    flat = now_ns()

    account = session.account
    if (
        not activation.activated
        or report is None
        or not report.flat
        or account.positions
        or account.resting
    ):
        raise RuntimeError(f"run {run}: not flat: {report}")
    measured = FlattenRun(
        flat_ms=(timed.flat_seen_at() - committed) / 1e6,
        returned_ms=(flat - committed) / 1e6,
        venue_ms=timed.busy_ms(committed, timed.flat_seen_at()),
        pause_ms=timed.busy_ms(committed, timed.flat_seen_at(), pauses=True)
        - timed.busy_ms(committed, timed.flat_seen_at()),
        attempts=report.attempts,
        requests=len(session.calls),
        limiter_wait_ms=(venue.limiter.waited - waited_before) * 1000,
    )
    core.commands.reset_emergency(
        reason="bench: next run", actor=ACTOR, venue_exposure=lambda: (0, 0)
    )
    return measured, timed, session


def measure(core: Core, exchange_id: str, args: argparse.Namespace) -> Results:
    results = Results(exchange_id)
    share = [
        args.baseline_samples // args.runs + (1 if r < args.baseline_samples % args.runs else 0)
        for r in range(args.runs)
    ]
    for run in range(WARMUP_RUNS + args.runs):
        measured, timed, session = flatten_once(core, exchange_id, args, run)
        if run < WARMUP_RUNS:
            continue
        results.runs.append(measured)
        results.calls.update(timed.calls)
        results.endpoints.update(f"{c.method} {c.path}" for c in session.calls)
        # One request through ccxt on the same kind of client, on an account as large, with
        # no rate limiter: back-to-back samples would otherwise be held to Bybit's 10 a second.
        # One HTTP request: ccxt's own fetch_positions for one settle coin (the venue's
        # lists Bybit's USDT and USDC contracts with two requests at once).
        _, probe_session = new_venue(exchange_id, args, seed=10_000 + run, rate_limit=False)
        open_account(probe_session)
        probe = probe_session.exchange
        params = {"settleCoin": "USDT"} if exchange_id == "bybit" else {}
        for _ in range(share[run - WARMUP_RUNS]):
            elapsed, _ = time_ms(partial(probe.fetch_positions, None, params))
            results.request_ms.append(elapsed)
    return results


# -- output ---------------------------------------------------------------------------------------


def rows(results: Results) -> list[Row]:
    runs = results.runs
    n = len(runs)
    name = DIALECTS[results.exchange_id]
    rtt = Summary.of(results.request_ms).p50
    flat = Summary.of([r.flat_ms for r in runs])
    overhead = Summary.of([r.overhead_ms for r in runs])
    baseline = f"one request through ccxt ({name}, fetch_positions)"
    per_run = Tally({k: v // n for k, v in results.endpoints.items()})
    return [
        Row(
            f"{name}: activation committed -> venue seen flat",
            [r.flat_ms for r in runs],
            baseline,
            results.request_ms,
            [
                f"in round trips (/ the baseline p50 {rtt:.1f} ms): p50 {flat.p50 / rtt:.2f}, "
                f"p99 {flat.p99 / rtt:.2f}",
                f"flatten attempts per run: {tally(Tally(str(r.attempts) for r in runs))}; "
                f"HTTP requests per run: {tally(Tally(str(r.requests) for r in runs))}",
                f"requests of one run by endpoint: {tally(per_run)}",
                f"where the time goes (mean ms): venue calls in progress "
                f"{sum(r.venue_ms for r in runs) / n:.1f}, the position lag waited out with no "
                f"call in progress {sum(r.pause_ms for r in runs) / n:.1f}, the rest (tradecore: "
                f"event store, bookkeeping, threads) {sum(r.overhead_ms for r in runs) / n:.1f} "
                f"(p50 {overhead.p50:.1f}, p99 {overhead.p99:.1f}); requests held back by the "
                f"rate limiter: {sum(r.limiter_wait_ms for r in runs) / n:.1f} ms a run",
            ],
        ),
        Row(
            f"{name}: tradecore overhead in it (outside venue calls and the position lag)",
            [r.overhead_ms for r in runs],
            baseline,
            results.request_ms,
        ),
        Row(
            f"{name}: activation committed -> flattener returned (flat recorded)",
            [r.returned_ms for r in runs],
            baseline,
            results.request_ms,
        ),
    ]


def target_ms(results: Results) -> float:
    return TARGET_ROUND_TRIPS * Summary.of(results.request_ms).p50 + TARGET_SLACK_MS


def verdict(row: Row, results: Results) -> str:
    p99, target = row.summary.p99, target_ms(results)
    met = "met" if p99 <= target else "NOT met"
    return (
        f"Target p99 <= {TARGET_ROUND_TRIPS} round trips + {TARGET_SLACK_MS:.0f} ms "
        f"({target:.1f} ms) for {row.figure}: {met} (p99 {p99:.1f} ms over {row.summary.n} runs)."
    )


# -- main -----------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench_flatten_venue", description=__doc__.split("\n\n")[0]
    )
    add_database_url_option(parser)
    parser.add_argument("--runs", type=int, default=30, help="timed flattens per dialect (30)")
    parser.add_argument("--latency-ms", type=float, default=50.0, help="per request (50)")
    parser.add_argument("--jitter-ms", type=float, default=10.0, help="uniform ± (10)")
    parser.add_argument(
        "--baseline-samples", type=int, default=300, help="single requests per dialect (300)"
    )
    parser.add_argument(
        "--exchange", choices=sorted(DIALECTS), action="append", help="only these (default: both)"
    )
    args = parser.parse_args(argv)
    if args.runs < 1 or args.baseline_samples < 1 or args.latency_ms < args.jitter_ms:
        parser.error("--runs and --baseline-samples must be at least 1, jitter below latency")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.getLogger("app.commands.safety").addFilter(_ExpectedActivation())
    started = time.monotonic()
    measured: list[Results] = []
    with server(args.database_url) as srv, scratch_database(srv) as address:
        pg_version = server_version(address)
        settings = Settings(database_url=app(address).url, exchange="paper")
        with bootstrap(settings, pool_size=4) as core:
            core.commands.ensure_initialised()
            for exchange_id in args.exchange or list(DIALECTS):
                measured.append(measure(core, exchange_id, args))
    elapsed = time.monotonic() - started
    table = [row for results in measured for row in rows(results)]
    names = ", ".join(DIALECTS[r.exchange_id] for r in measured)
    context = (
        f"`python -m benchmarks.bench_flatten_venue` on {dt.date.today().isoformat()}: "
        f"{machine(pg_version, srv)}; offline ccxt {names} "
        f"at {args.latency_ms:.0f} ± {args.jitter_ms:.0f} ms a request; {args.runs} runs each of "
        f"{len(MARKS)} positions + {len(MARKS)} resting orders (5 conditional; {WARMUP_RUNS} "
        f"warm-up runs discarded); run took {elapsed:.1f} s."
    )
    verdicts = [verdict(table[3 * i], r) for i, r in enumerate(measured)]
    print()
    print("tradecore benchmark: emergency stop -> flat on a ccxt venue with network latency")
    print(context.replace("`", ""))
    print()
    print_table(table)
    print()
    print("\n".join(verdicts))
    print()
    print("Markdown for the README:")
    print()
    print_markdown(table, context)
    print()
    print("\n".join(verdicts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
