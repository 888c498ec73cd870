"""The paper venue: a linear-perpetual futures venue simulated in Postgres tables of its own.

Faithful where the flattener's correctness depends on it: market orders fill at the mark
with slippage and a taker fee, limit and stop orders rest until the mark crosses them,
reduce-only orders can only shrink a position (capped to it, rejected when there is none),
a duplicate client order id is rejected, one-way and hedge position modes behave as on
Binance. Every request runs in one transaction with the account row locked, so several
processes see one consistent account; a read answered by one statement (a balance, the
positions, the ledger, a mark) needs no lock: one statement sees one consistent state.
Seeded faults (``faults.py``) apply to requests made through the port; the back-office
calls used by drills (``admin()``) are never faulted.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from decimal import Decimal
from functools import partial
from itertools import pairwise
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Connection, Engine, Row, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import OperationalError

from adapters.answer_deadline import LAST_WORD_SECONDS, answer_deadline
from adapters.database import lost_store
from adapters.locks import bound_lock_wait, lock_wait_ended
from adapters.paper import tables as t
from adapters.paper.faults import Draw, Fault, FaultSettings, draw
from adapters.paper.matching import ACCOUNT, Matching, check_symbol, order_from_row
from domain.errors import InvalidCommand
from domain.venue import (
    AccountFill,
    Balance,
    CashTransfer,
    Order,
    OrderRejected,
    OrderRequest,
    OutcomeUnknown,
    Position,
    PositionMode,
    RateLimited,
    VenueError,
    VenueUnavailable,
    outcome_of,
)

if TYPE_CHECKING:
    from domain.market_data import Candles

T = TypeVar("T")
# A request: what it does in the transaction, and the order to log in the access log if any.
Op = tuple[Callable[[Connection, Draw], T], OrderRequest | None]
# What became of it: the fault drawn, a refusal, the result.
Outcome = tuple[Fault, OrderRejected | None, T | None]


class PaperVenue:
    """Implements ``domain.venue.ExchangePort`` on the paper tables."""

    name = "paper"
    position_lag = 0.0  # one database: an answered order is in the next read
    concurrent_requests = False  # one transaction at a time, under the account lock
    # Seconds a request waits for the account (a lock another transaction holds) before it
    # is answered VenueUnavailable with nothing done, as a venue's request times out: ccxt's
    # default request timeout (Exchange.timeout, 10,000 ms).
    request_timeout = 10.0
    transfer_interval = 0.0  # its ledger is a table: read it before every reading

    def __init__(
        self, engine: Engine, clock: Callable[[], datetime], *, faulted: bool = True
    ) -> None:
        self.engine = engine
        self.clock = clock
        self.faulted = faulted
        self.book = Matching(clock)
        # Set once this client has seen the account exist (it is never deleted): until then
        # every request takes the locked path, which creates it with its opening marks.
        self._opened = False

    def check_delay(self) -> float:
        """No wait: an answered order is in the next read (one database)."""
        return self.position_lag

    def admin(self) -> PaperVenue:
        """The same venue without fault injection: the back office drills use."""
        return PaperVenue(self.engine, self.clock, faulted=False)

    # -- the port: reads ---------------------------------------------------------------------

    def fetch_positions(self) -> list[Position]:
        return self._request(lambda conn, _: self.book.holdings(conn, lock=False)[1], kind="read")

    def fetch_open_orders(self) -> list[Order]:
        return self._request(
            lambda conn, _: [
                order_from_row(r)
                for r in conn.execute(
                    select(t.orders).where(t.orders.c.status == "open").order_by(t.orders.c.id)
                )
            ],
            kind="read",
        )

    def fetch_balance(self) -> Balance:
        def balance(conn: Connection, _: Draw) -> Balance:
            acct, positions = self.book.holdings(conn, lock=False)
            upnl = sum((p.unrealized_pnl for p in positions), Decimal(0))
            # Dated by the paper venue's own clock (the database server's), as an exchange
            # dates its figures by its clock, not by the client's; in a replay the venue is
            # the replayed market, whose time is the market clock's.
            at = self.clock() if getattr(self.clock, "simulated", False) else acct.venue_now
            return Balance(acct.currency, acct.wallet, upnl, at=at)

        return self._request(balance, kind="read")

    def fetch_transfers(self, since: datetime | None) -> list[CashTransfer]:
        def ledger(conn: Connection, _: Draw) -> list[CashTransfer]:
            query = select(t.transfers).order_by(t.transfers.c.id)
            if since is not None:
                query = query.where(t.transfers.c.at >= since)
            return [
                CashTransfer(
                    venue_id=f"paper-{r.id}",
                    kind=r.kind,
                    amount=Decimal(r.amount),
                    currency=r.currency,
                    at=r.at,
                )
                for r in conn.execute(query)
            ]

        return self._request(ledger, kind="read")

    def fetch_position_mode(self, symbol: str) -> PositionMode:
        def mode(conn: Connection, _: Draw) -> PositionMode:
            held: PositionMode = self.book.holdings(conn, lock=False)[0].position_mode
            return held  # account-wide here; the port asks per symbol (Bybit's is)

        return self._request(mode, kind="read")

    def fetch_mark_price(self, symbol: str) -> Decimal:
        return self._request(lambda conn, _: self.book.mark(conn, symbol), kind="read")

    def fetch_closes(self, symbol: str, limit: int) -> list[Decimal]:
        def closes(conn: Connection, _: Draw) -> list[Decimal]:
            h = t.mark_history
            rows = conn.execute(
                select(h.c.price).where(h.c.symbol == symbol).order_by(h.c.id.desc()).limit(limit)
            ).scalars()
            return [Decimal(p) for p in reversed(list(rows))]

        return self._request(closes, kind="read")

    def fetch_candles(self, symbol: str, limit: int) -> Candles:
        # Imported here: numpy is loaded only by the commands that read candles.
        from domain.market_data import candles_from_rows  # noqa: PLC0415

        def candles(conn: Connection, _: Draw) -> Candles:
            h = t.mark_history
            found = conn.execute(
                select(h.c.price, h.c.at)
                .where(h.c.symbol == symbol)
                .order_by(h.c.id.desc())
                .limit(limit + 1)
            ).all()
            marks = [(float(r.price), r.at) for r in reversed(found)]
            # One candle per mark move: from the previous mark to this one, no volume.
            return candles_from_rows(
                [
                    (at, before, max(before, price), min(before, price), price, 0.0)
                    for (before, _), (price, at) in pairwise(marks)
                ]
            )

        return self._request(candles, kind="read")

    def fetch_order_by_client_id(self, client_order_id: str, symbol: str) -> Order | None:
        def find(conn: Connection, _: Draw) -> Order | None:
            order_id = conn.execute(
                select(t.orders.c.id).where(
                    t.orders.c.client_order_id == client_order_id, t.orders.c.symbol == symbol
                )
            ).scalar()
            return self.book.order(conn, order_id) if order_id is not None else None

        # Three statements: the order and its fees as of one fill, so under the lock.
        return self._request(find, kind="read", locked=True)

    def fetch_fills(self, requests: Sequence[OrderRequest]) -> dict[str, Order]:
        """Each order looked up by its client order id (this venue answers every order with
        its fill, so callers rarely need it)."""
        found = {
            r.client_order_id: self.fetch_order_by_client_id(r.client_order_id, r.symbol)
            for r in requests
        }
        return {cid: order for cid, order in found.items() if order is not None}

    def fetch_account_fills(self, symbol: str, since: datetime) -> list[AccountFill]:
        """Every fill on ``symbol`` at or after ``since``, oldest first, with its order's
        client order id (``FillHistory``)."""

        def listing(conn: Connection, _: Draw) -> list[AccountFill]:
            rows = conn.execute(
                select(t.fills, t.orders.c.client_order_id, t.orders.c.position_side)
                .join(t.orders, t.orders.c.id == t.fills.c.order_id)
                .where(t.fills.c.symbol == symbol, t.fills.c.created_at >= since)
                .order_by(t.fills.c.id)
            ).all()
            return [
                AccountFill(
                    symbol=r.symbol,
                    side=r.side,
                    quantity=Decimal(r.quantity),
                    price=Decimal(r.price),
                    fee=Decimal(r.fee),
                    client_order_id=r.client_order_id,
                    at=r.created_at,
                    position_side=r.position_side,
                )
                for r in rows
            ]

        return self._request(listing, kind="read")

    # -- the port: actions -------------------------------------------------------------------

    def create_order(self, request: OrderRequest) -> Order:
        return self._request(self._creating(request), kind="order", logged=request)

    def create_orders(self, requests: Sequence[OrderRequest]) -> list[Order | VenueError]:
        """The batch in one transaction (a batch endpoint is one request). Each order draws
        its own fault, as each element of a venue's batch answer has its own outcome."""
        return self._batch(
            [(self._creating(request), request) for request in requests],
            kind="order",
        )

    def _creating(self, request: OrderRequest) -> Callable[[Connection, Draw], Order]:
        return lambda conn, fault: self.book.create(conn, request, fault)

    def cancel_order(self, order: Order) -> None:
        def cancel(conn: Connection, _: Draw) -> None:
            conn.execute(
                update(t.orders)
                .where(t.orders.c.id == int(order.id), t.orders.c.status == "open")
                .values(status="canceled", updated_at=self.clock())
            )

        self._request(cancel, kind="cancel")

    def cancel_all_orders(self, symbol: str) -> int:
        return self._request(partial(self._cancel_all, symbol=symbol), kind="cancel")

    def cancel_all_orders_on(self, symbols: Sequence[str]) -> dict[str, int | VenueError]:
        outcomes = self._batch(
            [(partial(self._cancel_all, symbol=symbol), None) for symbol in symbols],
            kind="cancel",
        )
        return dict(zip(symbols, outcomes, strict=True))

    def _cancel_all(self, conn: Connection, _: Draw, *, symbol: str) -> int:
        result = conn.execute(
            update(t.orders)
            .where(t.orders.c.symbol == symbol, t.orders.c.status == "open")
            .values(status="canceled", updated_at=self.clock())
        )
        return int(result.rowcount)

    def set_leverage(self, symbol: str, leverage: Decimal) -> None:
        """Set the symbol's leverage (1x to 125x), used for the margin of its positions from
        now on. Raises OrderRejected out of range, without a market, or when an open position
        would lack margin at it. Not faulted: a seeded drill's fault sequence counts the
        requests of the flatten and the orders, not this setting."""
        self._setting(lambda conn: self.book.set_leverage(conn, symbol, leverage))

    def fetch_leverage(self, symbol: str) -> Decimal:
        """The symbol's leverage (the account's default, 10x, until one is set)."""
        return self._setting(lambda conn: self.book.leverage(conn, symbol))

    def _setting(self, op: Callable[[Connection], T]) -> T:
        with self.engine.begin() as conn:
            self.book.account(conn)  # locked: an order in flight sees the old or the new
            return op(conn)

    # -- back office (drills, tests) ---------------------------------------------------------

    def deposit(self, amount: Decimal) -> Balance:
        """Book a deposit of ``amount`` (> 0) in the ledger and add it to the wallet, in one
        transaction. Raises InvalidCommand for an amount that is not positive."""
        return self._transfer("deposit", amount)

    def withdraw(self, amount: Decimal) -> Balance:
        """Book a withdrawal of ``amount`` (> 0) in the ledger and take it from the wallet,
        in one transaction. Raises InvalidCommand for an amount that is not positive or is
        more than the free balance (the wallet's equity not held as margin): the venue
        refuses it and nothing is booked."""
        return self._transfer("withdrawal", amount)

    def _transfer(self, kind: str, amount: Decimal) -> Balance:
        if not amount.is_finite() or amount <= 0:
            raise InvalidCommand(f"{kind} amount must be positive, got {amount}")
        with self.engine.begin() as conn:
            acct = self.book.account(conn)  # locked: a concurrent order cannot use the cash
            if kind == "withdrawal":
                free = self.book.free(conn)
                if amount > free:
                    raise InvalidCommand(
                        f"withdrawal of {amount} exceeds the free balance {free:.2f} "
                        f"{acct.currency} (wallet {acct.wallet:.2f}, less margin in use)"
                    )
            now = self.clock()
            conn.execute(
                t.transfers.insert().values(
                    kind=kind, amount=amount, currency=acct.currency, at=now
                )
            )
            wallet = acct.wallet + (amount if kind == "deposit" else -amount)
            conn.execute(
                update(t.account)
                .where(t.account.c.id == ACCOUNT)
                .values(wallet=wallet, updated_at=now)
            )
            # The wallet moved: the worker's breaker reads at once, as on a mark move.
            conn.execute(
                text("SELECT pg_notify(:channel, :payload)"),
                {"channel": t.MARKS_CHANNEL, "payload": f"transfer:{kind}"},
            )
        return self.admin().fetch_balance()

    def set_price(self, symbol: str, price: Decimal) -> list[Order]:
        """Move the mark; resting limit and stop orders the move crosses execute. Returns them."""
        return self.set_prices({symbol: price})

    def set_prices(self, prices: Mapping[str, Decimal]) -> list[Order]:
        """Move several marks in one transaction (a market-wide move: a reader never sees
        half of it). Resting orders the moves cross execute; returns them."""
        for symbol, price in prices.items():
            if price <= 0:
                raise InvalidCommand(f"price must be positive, got {price} for {symbol}")
            check_symbol(symbol)
        executed: list[Order] = []
        with self.engine.begin() as conn:
            acct = self.book.account(conn)
            now = self.clock()
            for symbol, price in prices.items():
                moved = conn.execute(
                    _MOVE, {"symbol": symbol, "price": price, "at": now, "channel": t.MARKS_CHANNEL}
                ).one()
                if moved.resting:
                    executed += self.book.trigger_resting(conn, symbol, price, acct)
        return executed

    def set_position_mode(self, mode: str) -> None:
        if mode not in ("one_way", "hedge"):
            raise InvalidCommand(f"position mode must be one_way or hedge, got {mode!r}")
        with self.engine.begin() as conn:
            self.book.account(conn)
            if conn.execute(select(t.positions.c.symbol)).first():
                raise InvalidCommand("close every position before changing the position mode")
            conn.execute(
                update(t.account).where(t.account.c.id == ACCOUNT).values(position_mode=mode)
            )

    def set_faults(self, settings: FaultSettings | None) -> FaultSettings:
        """Set (or with None, clear) fault injection; restarts the deterministic sequence."""
        settings = settings or FaultSettings()
        values = {
            "error_rate": settings.error_rate,
            "timeout_rate": settings.timeout_rate,
            "partial_fill_rate": settings.partial_fill_rate,
            "rate_limit_rate": settings.rate_limit_rate,
            "reject_rate": settings.reject_rate,
            "seed": settings.seed,
            "draws": 0,
            "updated_at": self.clock(),
        }
        with self.engine.begin() as conn:
            conn.execute(
                insert(t.faults)
                .values(id=ACCOUNT, **values)
                .on_conflict_do_update(index_elements=["id"], set_=values)
            )
        return settings

    def faults(self) -> FaultSettings:
        with self.engine.connect() as conn:
            row = conn.execute(select(t.faults).where(t.faults.c.id == ACCOUNT)).first()
        return _fault_settings(row)

    # -- internals ---------------------------------------------------------------------------

    def _request(
        self,
        op: Callable[[Connection, Draw], T],
        *,
        kind: str,
        logged: OrderRequest | None = None,
        locked: bool | None = None,
    ) -> T:
        """One request, answered as its fault says. ``locked``: under the account lock
        (default: all but reads, whose ops are one statement unless they say so)."""
        (outcome,) = self._execute(
            [(op, logged)], kind=kind, locked=kind != "read" if locked is None else locked
        )
        return _answer(kind, *outcome)

    def _batch(self, ops: Sequence[Op[T]], *, kind: str) -> list[T | VenueError]:
        """Several requests in one transaction, each with its own fault and answer (each the
        same VenueUnavailable when the account stayed held past ``request_timeout``)."""
        if not ops:
            return []
        try:
            outcomes = self._execute(ops, kind=kind)
        except (VenueUnavailable, OutcomeUnknown) as e:
            return [e] * len(ops)
        return [outcome_of(partial(_answer, kind, *o)) for o in outcomes]

    def _execute(self, ops: Sequence[Op[T]], *, kind: str, locked: bool = True) -> list[Outcome[T]]:
        """Run requests in one transaction: lock the account, draw each one's fault, run its
        ``op`` (or not) in a savepoint, log the orders, commit. The draws (and the access
        log) are committed even when an ``op`` is refused. A request lost to a network error
        never reached the venue, so it is not in the access log.

        Not ``locked`` (a read answered by one statement): no transaction at all, so no
        round trips to begin and commit one; the draws' one UPDATE is atomic by itself and
        the read's one statement is one consistent snapshot; no savepoint (nothing written
        to roll back)."""
        locked = locked or not self._opened
        try:
            # A request waits for its tables' answers about as long as its timeout, as a
            # venue's request does (a store that stopped answering is a venue that did);
            # the last word's margin lets a lock wait end by its own bound first.
            with answer_deadline(self.request_timeout + LAST_WORD_SECONDS):
                return self._in_transaction(ops, kind=kind, locked=locked)
        except OperationalError as e:
            if lock_wait_ended(e):
                # The whole transaction rolled back: nothing of these requests was done.
                raise VenueUnavailable(
                    f"paper venue: the account is held by another transaction; nothing done "
                    f"within the {self.request_timeout:g} s request timeout"
                ) from None
            lost = lost_store(e)
            if lost is None:
                raise
            if kind == "read":
                raise VenueUnavailable(f"paper venue: {lost}") from None
            # Its commit may have gone through before the answer was lost: ask, never assume.
            raise OutcomeUnknown(f"paper venue: {lost}; the request may have executed") from None

    def _in_transaction(self, ops: Sequence[Op[T]], *, kind: str, locked: bool) -> list[Outcome[T]]:
        outcomes: list[Outcome[T]] = []
        access_log: list[dict[str, Any]] = []
        with self._connection(locked) as conn:
            if locked:
                bound_lock_wait(conn, self.request_timeout)
                self.book.account(conn)
            draws = self._draws(conn, len(ops), new_order=kind == "order")
            for (op, logged), fault in zip(ops, draws, strict=True):
                refusal: OrderRejected | None = None
                result: T | None = None
                if fault.fault in (Fault.NONE, Fault.TIMEOUT_EXECUTED):
                    try:
                        if not locked:
                            result = op(conn, fault)
                        else:
                            with conn.begin_nested():
                                result = op(conn, fault)
                    except OrderRejected as e:
                        refusal = e
                if logged is not None and fault.fault is not Fault.NETWORK_ERROR:
                    access_log.append(self._access(logged, fault.fault, refusal, result))
                outcomes.append((fault.fault, refusal, result))
            if access_log:
                conn.execute(t.requests.insert(), access_log)
        self._opened = True
        return outcomes

    def _connection(self, transaction: bool) -> AbstractContextManager[Connection]:
        if transaction:
            return self.engine.begin()
        return self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")

    def _access(
        self,
        request: OrderRequest,
        fault: Fault,
        refusal: OrderRejected | None,
        result: object,
    ) -> dict[str, Any]:
        """The access log's row for one order request."""
        if refusal is not None:
            outcome = f"rejected: {refusal}"
        elif isinstance(result, Order):
            outcome = "resting" if result.status == "open" and not result.filled else "filled"
        else:
            outcome = f"fault: {fault.value}"
        return {
            "client_order_id": request.client_order_id,
            "symbol": request.symbol,
            "side": request.side,
            "quantity": request.quantity,
            "reduce_only": request.reduce_only,
            "outcome": outcome,
            "received_at": self.clock(),
        }

    def _draws(self, conn: Connection, count: int, *, new_order: bool) -> list[Draw]:
        """The next ``count`` draws of the fault sequence: one read of the settings and,
        when faults are on, one write that takes the draws (the row locked by it, so two
        processes never take the same draws)."""
        calm = [Draw(Fault.NONE, None)] * count
        if not self.faulted:
            return calm
        row = conn.execute(select(t.faults).where(t.faults.c.id == ACCOUNT)).first()
        if row is None or not _fault_settings(row).active:
            return calm  # no fault set: nothing locked, nothing written
        taken = conn.execute(
            update(t.faults)
            .where(t.faults.c.id == ACCOUNT)
            .values(draws=t.faults.c.draws + count)
            .returning(*t.faults.c)
        ).one()
        # The settings as of the update (they may have changed since the first read).
        settings = _fault_settings(taken)
        if not settings.active:
            return calm
        first = int(taken.draws) - count
        return [draw(settings, first + i, new_order=new_order) for i in range(count)]


# A mark move in one round trip: the mark, its history row, the NOTIFY (delivered on commit,
# with the move: a listener never reads the old mark) and whether any order rests on the
# symbol (only then are resting orders fetched and checked against the new mark).
_MOVE = text(
    f"WITH moved AS (INSERT INTO {t.PAPER_SCHEMA}.marks (symbol, price, updated_at) "
    "VALUES (:symbol, :price, :at) ON CONFLICT (symbol) DO UPDATE "
    "SET price = excluded.price, updated_at = excluded.updated_at RETURNING symbol), "
    f"logged AS (INSERT INTO {t.PAPER_SCHEMA}.mark_history (symbol, price, at) "
    "VALUES (:symbol, :price, :at) RETURNING id) "
    "SELECT pg_notify(:channel, moved.symbol) AS notified, EXISTS ("
    f"SELECT 1 FROM {t.PAPER_SCHEMA}.orders "
    "WHERE orders.symbol = :symbol AND orders.status = 'open') AS resting "
    "FROM moved, logged"
)


def _answer(kind: str, fault: Fault, refusal: OrderRejected | None, result: T | None) -> T:
    if fault is Fault.NETWORK_ERROR:
        raise VenueUnavailable("paper venue: simulated network error")
    if fault is Fault.RATE_LIMITED:
        raise RateLimited("paper venue: simulated rate limit (HTTP 429)")
    if fault is Fault.REJECTED:
        raise OrderRejected("paper venue: simulated rejection by the matching engine")
    if fault in (Fault.TIMEOUT_EXECUTED, Fault.TIMEOUT_NOT_EXECUTED):
        if kind == "read":
            raise VenueUnavailable("paper venue: simulated timeout")
        raise OutcomeUnknown("paper venue: simulated timeout; the request may have executed")
    if refusal is not None:
        raise refusal
    return result  # type: ignore[return-value]


def _fault_settings(row: Row[Any] | None) -> FaultSettings:
    if row is None:
        return FaultSettings()
    return FaultSettings(
        error_rate=row.error_rate,
        timeout_rate=row.timeout_rate,
        partial_fill_rate=row.partial_fill_rate,
        rate_limit_rate=row.rate_limit_rate,
        reject_rate=row.reject_rate,
        seed=int(row.seed),
    )
