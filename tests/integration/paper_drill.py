"""Shared set-up for emergency-stop tests: an account with positions and resting orders."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, select

from adapters.paper import tables as t
from adapters.paper.venue import PaperVenue
from app.bootstrap import Core
from app.commands.executor import TradeIntent
from domain.venue import OrderRequest, PositionSide, Side

PRICES = {
    "BTC/USDT:USDT": Decimal(50000),
    "ETH/USDT:USDT": Decimal(3000),
    "SOL/USDT:USDT": Decimal(150),
}


def place(venue: PaperVenue, symbol: str, side: Side, qty: str, **kwargs: object) -> None:
    venue.admin().create_order(
        OrderRequest(
            symbol=symbol,
            side=side,
            quantity=Decimal(qty),
            client_order_id=f"drill-{uuid.uuid4().hex[:20]}",
            **kwargs,  # type: ignore[arg-type]
        )
    )


def open_account(venue: PaperVenue, *, symbols: int = 3, resting: int = 2) -> None:
    """Positions on ``symbols`` symbols (longs and a short) and ``resting`` resting orders."""
    admin = venue.admin()
    admin.deposit(Decimal(1_000_000))
    names = list(PRICES) + [f"C{i}/USDT:USDT" for i in range(max(symbols - len(PRICES), 0))]
    for i, symbol in enumerate(names[:symbols]):
        price = PRICES.get(symbol, Decimal(10 + i))
        admin.set_price(symbol, price)
        side: Side = "sell" if i % 3 == 2 else "buy"
        place(venue, symbol, side, "0.1" if price > 1000 else "10")
    for i in range(resting):
        symbol = names[i % symbols]
        price = PRICES.get(symbol, Decimal(10 + i % symbols))
        if i % 2 == 0:
            place(venue, symbol, "buy", "0.1", type="limit", price=price * Decimal("0.9"))
        else:  # a conditional (stop) order, which some venues keep apart
            place(venue, symbol, "buy", "0.1", type="stop", stop_price=price * Decimal("1.2"))


def hedge_account(venue: PaperVenue) -> None:
    admin = venue.admin()
    admin.set_position_mode("hedge")
    admin.deposit(Decimal(1_000_000))
    admin.set_price("BTC/USDT:USDT", Decimal(50000))
    for position_side, side in (("long", "buy"), ("short", "sell")):
        ps: PositionSide = position_side  # type: ignore[assignment]
        place(venue, "BTC/USDT:USDT", side, "0.2", position_side=ps)  # type: ignore[arg-type]


def close_requests(engine: Engine) -> list[tuple[str, str]]:
    """(client order id, outcome) of every close request the flattener got to the venue."""
    with engine.connect() as conn:
        return [
            (r.client_order_id, r.outcome)
            for r in conn.execute(
                select(t.requests.c.client_order_id, t.requests.c.outcome)
                .where(t.requests.c.client_order_id.like("tcx%"))
                .order_by(t.requests.c.id)
            )
        ]


def doubled_orders(engine: Engine) -> list[str]:
    """Evidence of a doubled close order: the same client order id sent twice, or a close
    order that reached the venue when there was nothing left to close (the venue rejects
    such a reduce-only order, and its access log keeps the rejection)."""
    requests = close_requests(engine)
    sent = Counter(cid for cid, _ in requests)
    problems = [f"{cid} sent {n} times" for cid, n in sent.items() if n > 1]
    problems += [f"{cid}: {outcome}" for cid, outcome in requests if "would not reduce" in outcome]
    return problems


def breaker_reads(core: Core) -> None:
    """The drawdown breaker reads the account once, as a running worker does every second.

    The gate refuses entries while the breaker cannot see the account (BREAKER_BLIND); a
    test that opens trades without a worker takes this reading first. The test settings
    keep such a reading fresh for the length of a test (``breaker_blind_after``)."""
    poll = core.drawdown_breaker().poll()
    assert poll.last is not None and poll.last.status == "accepted", poll


def funded(core: Core, prices: dict[str, str]) -> PaperVenue:
    """The core's paper venue with 10,000 deposited (booked in its ledger) and these marks."""
    venue = core.venue()
    assert isinstance(venue, PaperVenue)
    admin = venue.admin()
    admin.deposit(Decimal(10_000))
    for symbol, price in prices.items():
        admin.set_price(symbol, Decimal(price))
    return venue


def long_book(venue: PaperVenue) -> None:
    """8,000 of longs on 10,000 of equity: a 15 % fall is a 12 % drawdown (BTC at 50,000 and
    ETH at 3,000, as ``funded`` sets them)."""
    place(venue, "BTC/USDT:USDT", "buy", "0.1")
    place(venue, "ETH/USDT:USDT", "buy", "1")


def move(venue: PaperVenue, factor: str) -> None:
    """BTC and ETH marks at ``factor`` times 50,000 and 3,000."""
    admin = venue.admin()
    for symbol, price in (("BTC/USDT:USDT", 50_000), ("ETH/USDT:USDT", 3_000)):
        admin.set_price(symbol, Decimal(price) * Decimal(factor))


@contextmanager
def running(worker: Any, wake: Callable[[], None] = lambda: None) -> Iterator[None]:
    """``worker`` (an ``app.entrypoints.worker.Worker``) in a thread; on exit it is stopped
    (``wake`` then nudges its breaker out of a long wait) and must end within 30 s."""
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), name="worker", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        wake()
        thread.join(timeout=30)
        assert not thread.is_alive(), "the worker did not stop within 30 s"


@contextmanager
def worker_threads(core: Core) -> Iterator[Callable[[], None]]:
    """Yields ``start()``, which starts one more worker on ``core`` in a thread; on exit every
    worker is stopped and must end within 30 s."""
    from app.entrypoints.worker import Worker  # noqa: PLC0415 - the worker wires every process manager

    stop = threading.Event()
    threads: list[threading.Thread] = []

    def start() -> None:
        thread = threading.Thread(target=Worker(core).run, args=(stop,), daemon=True)
        thread.start()
        threads.append(thread)

    yield start
    stop.set()
    for thread in threads:
        thread.join(timeout=30)
        assert not thread.is_alive(), "the worker did not stop"


def intent(notional: str = "1000", **kwargs: Any) -> TradeIntent:
    """A long entry on BTC/USDT:USDT of ``notional`` (quote currency); ``kwargs`` override
    any other field of the intent."""
    values: dict[str, Any] = {
        "symbol": "BTC/USDT:USDT",
        "side": "long",
        "notional": Decimal(notional),
        "actor": "test",
        "reason": "test",
    }
    return TradeIntent(**(values | kwargs))
