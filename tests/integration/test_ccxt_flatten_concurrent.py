"""Issue 17: the emergency flatten of a ccxt venue sends the requests of each step at once.

Offline Binance USD-M and Bybit accounts (``tests/ccxt_sim.py``: real ccxt exchanges, their
HTTP session a simulated account with per-request latency) hold 20 positions on 20 symbols
and 20 resting orders, 5 of them conditional; the real flattener runs against a real event
store. Overlap is read from the recorded start and end of each request, never from a clock
bound on the whole.
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from decimal import Decimal
from uuid import UUID

import pytest

from adapters.ccxt.venue import CcxtVenue
from adapters.errors import StoreUnavailable
from app.bootstrap import Core
from app.processes.flattener import (
    Flattener,
    FlattenReport,
    client_order_id,
    positions_and_orders,
)
from domain.emergency import Emergency
from domain.ids import EMERGENCY_ID
from domain.venue import Position
from tests.ccxt_sim import (
    Call,
    SimulatedSession,
    open_position,
    overlapping,
    peak_in_flight,
    rest_order,
    simulated_exchange,
    venue_symbol,
)
from tests.waiting import wait_for

BASES = "BTC ETH SOL BNB XRP DOGE ADA AVAX LINK DOT TRX LTC BCH NEAR ATOM APT ARB OP FIL UNI"
SYMBOLS = [f"{base}/USDT:USDT" for base in BASES.split(" ")]
MARKS = {symbol: Decimal(100 + 10 * i) for i, symbol in enumerate(SYMBOLS)}
LATENCY, JITTER = 0.05, 0.01  # seconds per request, as the benchmark: longer than sending a step

# Each venue's endpoints, by step.
READS = {
    "binanceusdm": [
        ("GET", "/fapi/v3/positionRisk"),
        ("GET", "/fapi/v1/openOrders"),
        ("GET", "/fapi/v1/openAlgoOrders"),
    ],
    "bybit": [("GET", "/v5/position/list"), ("GET", "/v5/order/realtime")],
}
# The requests of one read of the account: Bybit lists each settle coin apart (USDT, USDC),
# open orders twice a coin (regular and conditional).
ONE_READ = {"binanceusdm": 3, "bybit": 6}
SWEEP = {
    "binanceusdm": [
        ("DELETE", "/fapi/v1/allOpenOrders"),
        ("DELETE", "/fapi/v1/algoOpenOrders"),
        ("POST", "/fapi/v1/batchOrders"),
    ],
    "bybit": [("POST", "/v5/order/cancel-all"), ("POST", "/v5/order/create-batch")],
}


def stocked(
    exchange_id: str, *, latency: float = LATENCY, position_lag: float = CcxtVenue.position_lag
) -> tuple[CcxtVenue, SimulatedSession]:
    """An offline account of 20 positions and 20 resting orders (5 conditional), its
    position endpoints trailing fills by ``position_lag`` seconds, markets loaded."""
    exchange, session = simulated_exchange(
        exchange_id,
        MARKS,
        latency=latency,
        jitter=JITTER if latency else 0.0,
        position_lag=position_lag,
    )
    for i, (symbol, mark) in enumerate(MARKS.items()):
        short = i % 3 == 2
        quantity = Decimal(i + 1)
        open_position(session, symbol, -quantity if short else quantity)
        if i % 4 == 3:  # 5 conditional stop-losses
            trigger = mark * Decimal("1.2") if short else mark * Decimal("0.8")
            rest_order(
                session, symbol, "buy" if short else "sell", quantity, f"sl-{i}", trigger=trigger
            )
        else:  # 15 limit entries away from the mark
            price = mark * Decimal("1.1") if short else mark * Decimal("0.9")
            rest_order(
                session, symbol, "sell" if short else "buy", quantity, f"in-{i}", price=price
            )
    venue = CcxtVenue(exchange)
    venue.fetch_positions()  # markets loaded before the clock of any step starts
    session.calls.clear()
    return venue, session


@pytest.fixture(params=["binanceusdm", "bybit"])
def rig(request: pytest.FixtureRequest) -> Iterator[tuple[str, CcxtVenue, SimulatedSession]]:
    exchange_id = str(request.param)
    venue, session = stocked(exchange_id)
    yield exchange_id, venue, session


def steps(session: SimulatedSession, endpoints: list[tuple[str, str]]) -> list[list[Call]]:
    """The calls to ``endpoints``, grouped by flatten attempt (a gap in time between them)."""
    calls = sorted(
        (c for c in session.calls if (c.method, c.path) in endpoints), key=lambda c: c.started
    )
    groups: list[list[Call]] = []
    for call in calls:
        if groups and call.started < max(c.ended for c in groups[-1]):
            groups[-1].append(call)
        else:
            groups.append([call])
    return groups


def test_twenty_positions_and_twenty_orders_flatten_with_each_step_sent_at_once(
    core: Core, rig: tuple[str, CcxtVenue, SimulatedSession]
) -> None:
    exchange_id, venue, session = rig
    before = {(p.symbol, p.side): p for p in venue.fetch_positions()}
    session.calls.clear()

    activation = core.commands.activate_emergency(reason="drill", actor="alice")
    report = core.flattener(venue=venue).run()

    assert report is not None and report.flat, report
    assert (report.positions_closed, report.orders_canceled, report.attempts) == (20, 20, 1)
    assert session.account.positions == {} and session.account.resting == {}
    # Every close went out once, under the id derived from the activation and the attempt.
    emergency = core.store.repository.get(EMERGENCY_ID)
    assert isinstance(emergency, Emergency) and emergency.activation_id is not None
    expected = {
        client_order_id(emergency.activation_id, 1, p): venue_symbol(p.symbol)
        for p in before.values()
    }
    assert {cid: f.symbol for cid, f in session.account.filled.items()} == expected
    assert activation.activated
    # The first read, the sweep (cancels and closes together) and the check: one step each.
    first_read, check = steps(session, READS[exchange_id])
    (sweep,) = steps(session, SWEEP[exchange_id])
    assert overlapping(first_read) and overlapping(check)
    cancels = [c for c in sweep if "cancel" in c.path.lower() or c.method == "DELETE"]
    closes = [c for c in sweep if c not in cancels]
    if exchange_id == "binanceusdm":  # cancel-all per symbol and kind shown: 15 + 5
        assert len(cancels) == 20 and len(closes) == 4  # batches of 5
    else:  # one settle-wide cancel-all, batches of 10
        assert len(cancels) == 1 and len(closes) == 2
    # Signing and sending take a little CPU each, so on a busy machine the last of a step may
    # leave after the first is answered; still most of the step is in flight together (one
    # after another, the peak is 1), and the closes go out with the cancels.
    assert peak_in_flight(sweep) > len(sweep) // 2, [(c.path, c.started, c.ended) for c in sweep]
    assert overlapping(closes) and overlapping([cancels[0], *closes])
    assert max(c.ended for c in first_read) <= min(c.started for c in sweep)
    assert max(c.ended for c in sweep) <= min(c.started for c in check)


def test_a_rate_limit_answer_is_retried_without_breaking_the_other_requests(
    core: Core, rig: tuple[str, CcxtVenue, SimulatedSession]
) -> None:
    exchange_id, venue, session = rig
    refused_close = "BTCUSDT"  # the batch holding BTC's close is refused once
    refused_cancel = "ETHUSDT"  # and (Binance) ETH's cancel-all of regular orders
    refused: set[str] = set()
    refused_batch: list[str] = []

    def refuse(method: str, path: str, params: dict[str, object]) -> bool:
        body = str(params)
        if path.endswith(("batchOrders", "create-batch")) and refused_close in body:
            kind = "close"
        elif path == "/fapi/v1/allOpenOrders" and params.get("symbol") == refused_cancel:
            kind = "cancel"
        else:
            return False
        if kind in refused:
            return False
        refused.add(kind)
        if kind == "close":
            quoted = ("'{}'", '"{}"')  # in Bybit's JSON body, in Binance's form field
            refused_batch.extend(
                s for s in SYMBOLS if any(q.format(venue_symbol(s)) in body for q in quoted)
            )
        return True

    session.refuse = refuse
    positions = {p.symbol: p for p in venue.fetch_positions()}
    session.calls.clear()

    core.commands.activate_emergency(reason="drill", actor="alice")
    report = core.flattener(venue=venue).run()

    assert report is not None and report.flat, report
    assert session.account.positions == {} and session.account.resting == {}
    assert report.attempts == 2 and report.positions_closed == 20
    events = list(core.store.events.get(EMERGENCY_ID))
    emergency = core.store.repository.get(EMERGENCY_ID)
    assert isinstance(emergency, Emergency) and emergency.activation_id is not None
    closed = {
        (e.attempt, c["symbol"]): c["client_order_id"]
        for e in events
        if isinstance(e, Emergency.PositionsClosed)
        for c in e.closes
    }
    # The refused batch (BTC's) is closed by attempt 2; the other batches by attempt 1.
    refused_symbols = set(refused_batch)
    assert len(refused_symbols) == (5 if exchange_id == "binanceusdm" else 10)
    assert {s for a, s in closed if a == 2} == refused_symbols
    assert {s for a, s in closed if a == 1} == set(SYMBOLS) - refused_symbols
    for (attempt, symbol), cid in closed.items():  # every id the deterministic one
        assert cid == client_order_id(emergency.activation_id, attempt, positions[symbol])
    canceled = {
        e.attempt: set(e.symbols) for e in events if isinstance(e, Emergency.OrdersCanceled)
    }
    order_symbols = set(SYMBOLS)
    if exchange_id == "binanceusdm":  # the other 19 symbols' cancels stood
        assert canceled[1] == order_symbols - {"ETH/USDT:USDT"}
        assert "ETH/USDT:USDT" in canceled[2]
    else:
        assert canceled[1] == order_symbols


def test_the_simulated_account_shows_its_longs_and_shorts_through_ccxt(
    rig: tuple[str, CcxtVenue, SimulatedSession],
) -> None:
    _, venue, _ = rig
    positions = venue.fetch_positions()
    assert len(positions) == 20
    assert all(isinstance(p, Position) for p in positions)
    assert {p.side for p in positions} == {"long", "short"}


def _reads_answered(exchange_id: str, session: SimulatedSession) -> bool:
    return any((c.method, c.path) in READS[exchange_id] for c in list(session.calls))


def test_the_first_read_goes_out_while_the_lock_is_taken_and_sizes_the_attempt(
    core: Core, rig: tuple[str, CcxtVenue, SimulatedSession]
) -> None:
    exchange_id, venue, session = rig
    flattener = core.flattener(venue=venue)
    take_lock = flattener.lock

    def lock_once_the_venue_was_read(name: UUID, timeout: float) -> AbstractContextManager[bool]:
        # Reading sends nothing, so the flattener need not hold its lock to read.
        wait_for(
            lambda: _reads_answered(exchange_id, session),
            timeout=5.0,
            what="a read of the venue answered before the lock is taken",
        )
        return take_lock(name, timeout)

    flattener.lock = lock_once_the_venue_was_read

    core.commands.activate_emergency(reason="drill", actor="alice")
    report = flattener.run()

    assert report is not None and report.flat, report
    assert (report.positions_closed, report.orders_canceled, report.attempts) == (20, 20, 1)
    assert session.account.positions == {} and session.account.resting == {}
    # That read sized the attempt: one read before the sweep and the check after it.
    first_read, check = steps(session, READS[exchange_id])
    (sweep,) = steps(session, SWEEP[exchange_id])
    assert max(c.ended for c in first_read) <= min(c.started for c in sweep)
    assert max(c.ended for c in sweep) <= min(c.started for c in check)


@pytest.mark.parametrize("rig", ["bybit"], indirect=True)
def test_bybit_fills_are_read_together_with_the_check_not_before_it(
    core: Core, rig: tuple[str, CcxtVenue, SimulatedSession]
) -> None:
    exchange_id, venue, session = rig

    core.commands.activate_emergency(reason="drill", actor="alice")
    report = core.flattener(venue=venue).run()

    assert report is not None and report.flat and report.attempts == 1, report
    # Bybit only acknowledges a market order: its fill comes from one listing of the latest
    # orders, sent once the closes are answered and in flight with the check's reads.
    (fills,) = session.to("GET", "/v5/order/history")
    (sweep,) = steps(session, SWEEP[exchange_id])
    _, check = steps(session, READS[exchange_id])
    assert max(c.ended for c in sweep) <= fills.started
    assert overlapping([fills, *check]), [(c.path, c.started, c.ended) for c in [fills, *check]]
    # And the fills were recorded: every close with the quantity and price it got.
    events = list(core.store.events.get(EMERGENCY_ID))
    (closed,) = [e for e in events if isinstance(e, Emergency.PositionsClosed)]
    assert len(closed.closes) == 20
    assert all(c["quantity"] > 0 and c["average_price"] is not None for c in closed.closes)


def test_a_read_sent_before_the_barrier_never_shows_the_account_flat(core: Core) -> None:
    exchange, session = simulated_exchange("bybit", MARKS, latency=LATENCY, jitter=JITTER)
    venue = CcxtVenue(exchange)
    venue.fetch_positions()
    session.calls.clear()
    flattener = core.flattener(venue=venue)
    take_barrier = flattener.barrier

    def barrier_answering_an_order(timeout: float) -> bool:
        # An order past the gate before the activation is answered while the barrier waits
        # for it, after the flattener's first read found the account flat.
        wait_for(
            lambda: _reads_answered("bybit", session),
            timeout=5.0,
            what="the first read answered",
        )
        open_position(session, SYMBOLS[0], Decimal(2))
        return take_barrier(timeout)

    flattener.barrier = barrier_answering_an_order

    core.commands.activate_emergency(reason="drill", actor="alice")
    report = flattener.run()

    assert report is not None and report.flat, report
    assert session.account.positions == {}  # the order answered late was closed
    assert (report.positions_closed, report.attempts) == (1, 1)


def test_a_recheck_of_an_account_recorded_flat_reads_the_venue_once(
    core: Core, rig: tuple[str, CcxtVenue, SimulatedSession]
) -> None:
    exchange_id, venue, session = rig
    core.commands.activate_emergency(reason="drill", actor="alice")
    first = core.flattener(venue=venue).run()
    assert first is not None and first.flat, first
    session.calls.clear()

    again = core.flattener(venue=venue).run()  # the worker's re-check, seconds later

    assert again is not None and again.flat and again.attempts == 1, again
    # No early read beside the lock: the account is known flat, one read confirms it.
    # (Counted, not grouped in time: Bybit's per-endpoint budget of the second may hold back
    # a listing of this read after the two reads of the flatten just before it.)
    read = [c for c in session.calls if (c.method, c.path) in READS[exchange_id]]
    assert len(session.calls) == len(read) == ONE_READ[exchange_id]


def test_the_venue_starts_its_request_threads_before_a_sweep_needs_them() -> None:
    exchange, _ = simulated_exchange("binanceusdm", MARKS)
    venue = CcxtVenue(exchange)
    prefix = f"tradecore-{exchange.id}"
    sweep = 24  # Binance's sweep of 20 symbols: 15 + 5 cancel-alls and 4 close batches

    before = set(threading.enumerate())  # other venues' pools, of earlier tests

    venue.fetch_open_orders()  # two listings at once: the venue's pool is made

    # A thread started in the middle of a step makes its request leave late, so the pool
    # starts them beforehand, aside.
    wait_for(
        lambda: (
            sum(t.name.startswith(prefix) for t in set(threading.enumerate()) - before) >= sweep
        ),
        timeout=10.0,
        what=f"{sweep} request threads started",
    )


def recorded_waits(flattener: Flattener) -> list[float]:
    """The seconds of each of ``flattener``'s sleeps, as it takes them."""
    waits: list[float] = []
    sleep = flattener.sleep

    def recorded(seconds: float) -> None:
        waits.append(seconds)
        sleep(seconds)

    flattener.sleep = recorded
    return waits


@pytest.mark.parametrize("exchange_id", ["binanceusdm", "bybit"])
def test_on_a_fast_network_the_check_waits_out_the_position_lag(
    core: Core, exchange_id: str
) -> None:
    # No network time to cover the lag: a check read sent at once would still show the
    # positions just closed, and the flattener would send a second attempt for them.
    venue, session = stocked(exchange_id, latency=0.0, position_lag=0.1)
    venue.position_lag = 0.1
    flattener = core.flattener(venue=venue)
    waits = recorded_waits(flattener)
    core.commands.activate_emergency(reason="drill", actor="alice")
    report = flattener.run()

    assert report is not None and report.flat and report.attempts == 1, report
    assert session.account.positions == {}
    assert waits and waits[0] > 0.09, waits  # the lag, less half of a near-zero round trip


def test_a_round_trip_longer_than_twice_the_position_lag_leaves_nothing_to_wait(
    core: Core, rig: tuple[str, CcxtVenue, SimulatedSession]
) -> None:
    # 50 ms requests: a read sent the moment the closes are answered reaches the venue at
    # least 20 ms after the fills (half the shortest round trip), the whole 20 ms lag.
    _, venue, session = rig
    flattener = core.flattener(venue=venue)
    waits = recorded_waits(flattener)
    core.commands.activate_emergency(reason="drill", actor="alice")
    report = flattener.run()

    assert report is not None and report.flat and report.attempts == 1, report
    assert session.account.positions == {}
    assert venue.round_trips.shortest() >= 2 * venue.position_lag
    assert waits == [0.0], waits


def test_an_operator_activation_reads_the_venue_while_the_activation_commits(
    core: Core, rig: tuple[str, CcxtVenue, SimulatedSession]
) -> None:
    exchange_id, venue, session = rig
    flattener = core.flattener(venue=venue)

    flattener.read_ahead()  # as `emergency activate --yes` does, before committing
    core.commands.activate_emergency(reason="drill", actor="alice")
    committed = time.monotonic()
    report = flattener.run()

    assert report is not None and report.flat, report
    assert (report.positions_closed, report.orders_canceled, report.attempts) == (20, 20, 1)
    assert session.account.positions == {} and session.account.resting == {}
    first_read, check = steps(session, READS[exchange_id])
    assert min(c.started for c in first_read) < committed  # it went out before the commit
    assert len(check) == len(first_read)  # and was used: no second read before the sweep


def read_ahead_then_activate(core: Core, venue: CcxtVenue, session: SimulatedSession) -> Flattener:
    """A flattener whose read ahead (of the 20 positions) was answered before the emergency
    was activated."""
    late = core.flattener(venue=venue)
    late.read_ahead()
    wait_for(lambda: bool(session.calls), timeout=5.0, what="the read ahead answered")
    core.commands.activate_emergency(reason="drill", actor="alice")
    return late


def test_a_read_ahead_of_an_account_since_recorded_flat_is_not_used(
    core: Core, rig: tuple[str, CcxtVenue, SimulatedSession]
) -> None:
    _, venue, session = rig
    late = read_ahead_then_activate(core, venue, session)
    first = core.flattener(venue=venue).run()  # the worker got there first
    assert first is not None and first.flat and first.attempts == 1, first

    report = late.run()

    # Its read showed positions since closed: sizing an attempt from it would send 20 closes
    # more. It reads again instead and finds the account flat.
    assert report is not None and report.flat and report.attempts == 1, report
    assert len(session.account.filled) == 20


def test_the_collector_spares_old_objects_while_a_flatten_runs(
    core: Core, rig: tuple[str, CcxtVenue, SimulatedSession]
) -> None:
    _, venue, _ = rig
    frozen: list[int] = []
    read = venue.fetch_positions

    def read_noting_the_collector() -> list[Position]:
        frozen.append(gc.get_freeze_count())
        return read()

    venue.fetch_positions = read_noting_the_collector  # type: ignore[method-assign]
    core.commands.activate_emergency(reason="drill", actor="alice")
    report = core.flattener(venue=venue).run()

    assert report is not None and report.flat, report
    assert frozen and min(frozen) > 0  # a full collection scans none of the old objects
    assert gc.get_freeze_count() == 0  # and they are collectable again afterwards


def test_a_read_ahead_older_than_a_recorded_attempt_is_not_used(
    core: Core, rig: tuple[str, CcxtVenue, SimulatedSession]
) -> None:
    _, venue, session = rig
    late = read_ahead_then_activate(core, venue, session)
    # Another flattener recorded its attempt 1 and its closes of 5 positions filled; it
    # has not recorded their results yet.
    emergency = core.store.repository.get(EMERGENCY_ID)
    assert isinstance(emergency, Emergency)
    emergency.record_attempt(attempt=1, positions_open=20, orders_open=20, timestamp=core.clock())
    core.store.save(emergency)
    closed_elsewhere = sorted(session.account.positions)[:5]
    for symbol in closed_elsewhere:
        del session.account.positions[symbol]

    report = late.run()

    assert report is not None and report.flat and report.attempts == 2, report
    # Attempt 2 closed the 15 positions still open, sized from a read of its own.
    assert len(session.account.filled) == 15
    assert {f.symbol for f in session.account.filled.values()}.isdisjoint(closed_elsewhere)


CLOSES = {
    "binanceusdm": ("POST", "/fapi/v1/batchOrders"),
    "bybit": ("POST", "/v5/order/create-batch"),
}


def test_with_a_read_ahead_no_close_leaves_before_its_attempt_is_committed_but_the_cancels_do(
    core: Core, rig: tuple[str, CcxtVenue, SimulatedSession]
) -> None:
    exchange_id, venue, session = rig
    committed_when_sent: dict[str, list[bool]] = {"cancel": [], "close": []}
    cancel_sent, close_sent = threading.Event(), threading.Event()

    def note(method: str, path: str, params: dict[str, object]) -> bool:
        if (method, path) in SWEEP[exchange_id]:
            kind = "close" if (method, path) == CLOSES[exchange_id] else "cancel"
            (close_sent if kind == "close" else cancel_sent).set()
            events = core.store.events.get(EMERGENCY_ID)
            committed_when_sent[kind].append(
                any(isinstance(e, Emergency.FlattenAttempted) for e in events)
            )
        return False  # answer normally

    session.refuse = note
    flattener = core.flattener(venue=venue)
    save = flattener.repository.save

    def slow_save(aggregate: Emergency) -> None:
        # The attempt's save is held until a cancel has gone (the wait ends at once if the
        # cancels do not wait for the commit; else after 2 s, and they count as committed),
        # then for a fixed 0.5 s in which a close sent without waiting for the commit would
        # reach the venue first: that watch is the negative check, not a synchronisation.
        if isinstance(aggregate, Emergency) and not aggregate.flat:
            cancel_sent.wait(timeout=2.0)
            close_sent.wait(timeout=0.5)
        save(aggregate)

    flattener.repository.save = slow_save  # type: ignore[method-assign,assignment]
    flattener.read_ahead()
    core.commands.activate_emergency(reason="drill", actor="alice")
    report = flattener.run()

    assert report is not None and report.flat and report.attempts == 1, report
    assert committed_when_sent["close"] and all(committed_when_sent["close"]), committed_when_sent
    # The cancels went while the attempt was being committed: the commit is off their path.
    assert committed_when_sent["cancel"] and not all(committed_when_sent["cancel"])
    (attempted,) = [
        e for e in core.store.events.get(EMERGENCY_ID) if isinstance(e, Emergency.FlattenAttempted)
    ]
    # With the close orders it was about to send, for whoever must look one up later.
    assert len(attempted.close_orders) == attempted.positions_open == 20


def test_an_attempt_the_store_cannot_record_sends_no_close_and_a_later_one_flattens(
    core: Core, rig: tuple[str, CcxtVenue, SimulatedSession]
) -> None:
    exchange_id, venue, session = rig
    flattener = core.flattener(venue=venue)
    flattener.sleep = lambda seconds: None  # the back-off after the failed commit, skipped
    closes_when_refused = first_commit_fails(flattener, session, exchange_id)
    core.commands.activate_emergency(reason="drill", actor="alice")
    report = flattener.run()

    assert closes_when_refused == [0]
    emergency = core.store.repository.get(EMERGENCY_ID)
    assert isinstance(emergency, Emergency) and emergency.activation_id is not None
    flat_with_each_close_recorded_once(core, session, report)


def first_commit_fails(
    flattener: Flattener, session: SimulatedSession, exchange_id: str
) -> list[int]:
    """Make the commit of the flattener's first attempt fail (once); returns the list that
    will hold how many close requests the venue had seen at that moment."""
    save = flattener.repository.save
    closes_when_refused: list[int] = []

    def failing_once(aggregate: Emergency) -> None:
        first = isinstance(aggregate, Emergency) and aggregate.flatten_attempts == 1
        if first and not closes_when_refused:
            closes_when_refused.append(len(session.to(*CLOSES[exchange_id])))
            raise StoreUnavailable("the store went away while the attempt was committed")
        save(aggregate)

    flattener.repository.save = failing_once  # type: ignore[method-assign,assignment]
    return closes_when_refused


def flat_with_each_close_recorded_once(
    core: Core, session: SimulatedSession, report: FlattenReport | None
) -> None:
    """The stocked account flat, its 20 positions and 20 orders counted, and each close sent
    once, under an attempt that was recorded (the failed first one never was)."""
    assert report is not None and report.flat, report
    assert session.account.positions == {} and session.account.resting == {}
    attempts = [
        e for e in core.store.events.get(EMERGENCY_ID) if isinstance(e, Emergency.FlattenAttempted)
    ]
    recorded_ids = {o["client_order_id"] for e in attempts for o in e.close_orders}
    assert set(session.account.filled) <= recorded_ids and len(session.account.filled) == 20
    assert report.positions_closed == 20 and report.orders_canceled == 20


# A venue's server error on a cancel-all: the request may have been executed (ccxt's
# OperationFailed / ExchangeError, the port's OutcomeUnknown), so nothing is assumed of it.
SERVER_ERRORS = {
    "binanceusdm": (
        503,
        {"code": -1001, "msg": "Internal error; unable to process your request. Please try again."},
    ),
    "bybit": (
        200,
        {
            "retCode": 10016,
            "retMsg": "System error. Please try again later.",
            "result": {},
            "retExtInfo": {},
            "time": 1767225600000,
        },
    ),
}


def test_cancels_failing_as_the_attempt_fails_to_record_send_no_close_and_a_later_one_flattens(
    core: Core, rig: tuple[str, CcxtVenue, SimulatedSession]
) -> None:
    exchange_id, venue, session = rig
    cancels = {(m, p) for m, p in SWEEP[exchange_id]} - {CLOSES[exchange_id]}
    flattener = core.flattener(venue=venue)
    first_over: list[float] = []

    def back_off(seconds: float) -> None:  # the back-off after the failed commit, skipped
        if not first_over:
            first_over.append(time.monotonic())

    flattener.sleep = back_off
    # Every cancel of the first attempt fails at the venue; the later ones are answered.
    session.refuse = lambda method, path, _: (
        SERVER_ERRORS[exchange_id] if (method, path) in cancels and not first_over else False
    )
    closes_when_refused = first_commit_fails(flattener, session, exchange_id)
    core.commands.activate_emergency(reason="drill", actor="alice")
    report = flattener.run()

    refused = [c for c in session.calls if c.refused]
    assert refused and {(c.method, c.path) for c in refused} <= cancels
    assert closes_when_refused == [0] and first_over
    # The failed attempt raised only once its cancels were answered (refused), and no close
    # left under it: every close request came after it.
    assert max(c.ended for c in refused) <= first_over[0]
    assert all(c.started > first_over[0] for c in session.to(*CLOSES[exchange_id]))
    flat_with_each_close_recorded_once(core, session, report)


@pytest.mark.parametrize("exchange_id", ["binanceusdm", "bybit"])
def test_usdc_perpetuals_are_seen_and_flattened_with_the_usdt_ones(
    core: Core, exchange_id: str
) -> None:
    btc, btc_usdc, eth_usdc = "BTC/USDT:USDT", "BTC/USDC:USDC", "ETH/USDC:USDC"
    marks = {btc: Decimal(100), btc_usdc: Decimal(101), eth_usdc: Decimal(30)}
    exchange, session = simulated_exchange(exchange_id, marks, latency=LATENCY, jitter=JITTER)
    for symbol, quantity in ((btc, "1"), (btc_usdc, "2"), (eth_usdc, "-3")):
        open_position(session, symbol, Decimal(quantity))
    rest_order(session, btc, "buy", Decimal(1), "in-usdt", price=Decimal(90))
    rest_order(session, eth_usdc, "sell", Decimal(1), "in-usdc", price=Decimal(33))
    rest_order(session, btc_usdc, "sell", Decimal(2), "sl-usdc", trigger=Decimal(80))
    venue = CcxtVenue(exchange)

    # What the reset check and reconciliation read: every contract, whatever it settles in.
    assert positions_and_orders(venue) == (3, 3)
    assert {(p.symbol, p.side) for p in venue.fetch_positions()} == {
        (btc, "long"),
        (btc_usdc, "long"),
        (eth_usdc, "short"),
    }
    session.calls.clear()
    core.commands.activate_emergency(reason="drill", actor="alice")
    report = core.flattener(venue=venue).run()

    assert report is not None and report.flat, report
    assert (report.positions_closed, report.orders_canceled) == (3, 3)
    assert session.account.positions == {} and session.account.resting == {}
    assert {f.symbol for f in session.account.filled.values()} == {venue_symbol(s) for s in marks}
    if exchange_id == "bybit":  # one listing a settle coin, each read's listings at once
        first_read, _ = steps(session, READS[exchange_id])
        listed = sorted((c.path, c.params.get("settleCoin")) for c in first_read)
        orders, positions = "/v5/order/realtime", "/v5/position/list"  # orders: 2 kinds each
        assert listed == [(orders, "USDC")] * 2 + [(orders, "USDT")] * 2 + [
            (positions, "USDC"),
            (positions, "USDT"),
        ]
        assert overlapping(first_read)
