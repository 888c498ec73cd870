"""The paper venue: a linear-perpetual futures venue simulated in Postgres tables of its own.

Faithful where the flattener's correctness depends on it: market orders fill at the mark
with slippage and a taker fee, limit and stop orders rest until the mark crosses them,
reduce-only orders can only shrink a position (capped to it, rejected when there is none),
a duplicate client order id is rejected, one-way and hedge position modes behave as on
Binance. Every request runs in one transaction with the account row locked, so several
processes see one consistent account. Seeded faults (``faults.py``) apply to requests made
through the port; the back-office calls used by drills (``admin()``) are never faulted.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, Row, select, update
from sqlalchemy.dialects.postgresql import insert

from adapters.paper import tables as t
from adapters.paper.faults import Draw, Fault, FaultSettings, draw
from domain.errors import InvalidCommand
from domain.venue import (
    Balance,
    DuplicateClientOrderId,
    Order,
    OrderRejected,
    OrderRequest,
    OutcomeUnknown,
    Position,
    RateLimited,
    VenueUnavailable,
)

T = TypeVar("T")
ACCOUNT = "default"
QTY = Decimal("0.00000001")
DEFAULTS: dict[str, Any] = {
    "currency": "USDT",
    "wallet": Decimal(0),
    "position_mode": "one_way",
    "leverage": Decimal(10),
    "taker_fee": Decimal("0.0004"),
    "slippage": Decimal("0.0005"),
}


class PaperVenue:
    """Implements ``domain.venue.ExchangePort`` on the paper tables."""

    name = "paper"

    def __init__(
        self, engine: Engine, clock: Callable[[], datetime], *, faulted: bool = True
    ) -> None:
        self.engine = engine
        self.clock = clock
        self.faulted = faulted

    def admin(self) -> PaperVenue:
        """The same venue without fault injection: the back office drills use."""
        return PaperVenue(self.engine, self.clock, faulted=False)

    # -- the port: reads ---------------------------------------------------------------------

    def fetch_positions(self) -> list[Position]:
        return self._request(self._positions, kind="read")

    def fetch_open_orders(self) -> list[Order]:
        return self._request(
            lambda conn, _: [
                _order(r)
                for r in conn.execute(
                    select(t.orders).where(t.orders.c.status == "open").order_by(t.orders.c.id)
                )
            ],
            kind="read",
        )

    def fetch_balance(self) -> Balance:
        def balance(conn: Connection, _: Draw) -> Balance:
            acct = self._account(conn)
            upnl = sum((p.unrealized_pnl for p in self._positions(conn, None)), Decimal(0))
            return Balance(acct.currency, acct.wallet, upnl)

        return self._request(balance, kind="read")

    def fetch_mark_price(self, symbol: str) -> Decimal:
        return self._request(lambda conn, _: self._mark(conn, symbol), kind="read")

    def fetch_order_by_client_id(self, client_order_id: str, symbol: str) -> Order | None:
        def find(conn: Connection, _: Draw) -> Order | None:
            row = conn.execute(
                select(t.orders).where(
                    t.orders.c.client_order_id == client_order_id, t.orders.c.symbol == symbol
                )
            ).first()
            return _order(row) if row else None

        return self._request(find, kind="read")

    # -- the port: actions -------------------------------------------------------------------

    def create_order(self, request: OrderRequest) -> Order:
        return self._request(
            lambda conn, d: self._create(conn, request, d), kind="order", logged=request
        )

    def cancel_order(self, order: Order) -> None:
        def cancel(conn: Connection, _: Draw) -> None:
            conn.execute(
                update(t.orders)
                .where(t.orders.c.id == int(order.id), t.orders.c.status == "open")
                .values(status="canceled", updated_at=self.clock())
            )

        self._request(cancel, kind="cancel")

    def cancel_all_orders(self, symbol: str) -> int:
        def cancel_all(conn: Connection, _: Draw) -> int:
            result = conn.execute(
                update(t.orders)
                .where(t.orders.c.symbol == symbol, t.orders.c.status == "open")
                .values(status="canceled", updated_at=self.clock())
            )
            return int(result.rowcount)

        return self._request(cancel_all, kind="cancel")

    # -- back office (drills, tests) ---------------------------------------------------------

    def deposit(self, amount: Decimal) -> Balance:
        if amount <= 0:
            raise InvalidCommand(f"deposit amount must be positive, got {amount}")
        with self.engine.begin() as conn:
            acct = self._account(conn)
            conn.execute(
                update(t.account)
                .where(t.account.c.id == ACCOUNT)
                .values(wallet=acct.wallet + amount, updated_at=self.clock())
            )
        return self.admin().fetch_balance()

    def set_price(self, symbol: str, price: Decimal) -> list[Order]:
        """Move the mark; resting limit and stop orders the move crosses execute. Returns them."""
        if price <= 0:
            raise InvalidCommand(f"price must be positive, got {price}")
        _check_symbol(symbol)
        with self.engine.begin() as conn:
            self._account(conn)
            now = self.clock()
            conn.execute(
                insert(t.marks)
                .values(symbol=symbol, price=price, updated_at=now)
                .on_conflict_do_update(
                    index_elements=["symbol"], set_={"price": price, "updated_at": now}
                )
            )
            return self._trigger_resting(conn, symbol, price)

    def set_position_mode(self, mode: str) -> None:
        if mode not in ("one_way", "hedge"):
            raise InvalidCommand(f"position mode must be one_way or hedge, got {mode!r}")
        with self.engine.begin() as conn:
            self._account(conn)
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
    ) -> T:
        """One request: lock the account, draw the fault, run ``op`` (or not), commit, then
        answer as the fault says. The draw (and the access log) is committed even when
        ``op`` is refused. A request lost to a network error never reached the venue, so it
        is not in the access log."""
        refusal: OrderRejected | None = None
        result: T | None = None
        with self.engine.begin() as conn:
            self._account(conn)
            fault = self._draw(conn, new_order=kind == "order")
            if fault.fault in (Fault.NONE, Fault.TIMEOUT_EXECUTED):
                try:
                    with conn.begin_nested():
                        result = op(conn, fault)
                except OrderRejected as e:
                    refusal = e
            if logged is not None and fault.fault is not Fault.NETWORK_ERROR:
                self._log_request(conn, logged, fault.fault, refusal, result)
        return self._answer(fault.fault, kind, refusal, result)

    def _log_request(
        self,
        conn: Connection,
        request: OrderRequest,
        fault: Fault,
        refusal: OrderRejected | None,
        result: object,
    ) -> None:
        if refusal is not None:
            outcome = f"rejected: {refusal}"
        elif isinstance(result, Order):
            outcome = "resting" if result.status == "open" and not result.filled else "filled"
        else:
            outcome = f"fault: {fault.value}"
        conn.execute(
            t.requests.insert().values(
                client_order_id=request.client_order_id,
                symbol=request.symbol,
                side=request.side,
                quantity=request.quantity,
                reduce_only=request.reduce_only,
                outcome=outcome,
                received_at=self.clock(),
            )
        )

    @staticmethod
    def _answer(fault: Fault, kind: str, refusal: OrderRejected | None, result: T | None) -> T:
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

    def _draw(self, conn: Connection, *, new_order: bool) -> Draw:
        if not self.faulted:
            return Draw(Fault.NONE, None)
        row = conn.execute(
            select(t.faults).where(t.faults.c.id == ACCOUNT).with_for_update()
        ).first()
        settings = _fault_settings(row)
        if row is None or not settings.active:
            return Draw(Fault.NONE, None)
        conn.execute(update(t.faults).where(t.faults.c.id == ACCOUNT).values(draws=row.draws + 1))
        return draw(settings, int(row.draws), new_order=new_order)

    def _account(self, conn: Connection) -> Row[Any]:
        """The account row, created on first use, locked for the rest of the transaction."""
        conn.execute(
            insert(t.account)
            .values(id=ACCOUNT, updated_at=self.clock(), **DEFAULTS)
            .on_conflict_do_nothing(index_elements=["id"])
        )
        return conn.execute(
            select(t.account).where(t.account.c.id == ACCOUNT).with_for_update()
        ).one()

    def _mark(self, conn: Connection, symbol: str) -> Decimal:
        price = conn.execute(select(t.marks.c.price).where(t.marks.c.symbol == symbol)).scalar()
        if price is None:
            raise OrderRejected(f"paper venue: no market for {symbol} (set a price first)")
        return Decimal(price)

    def _positions(self, conn: Connection, _: Draw | None) -> list[Position]:
        mode = self._account(conn).position_mode
        rows = conn.execute(
            select(t.positions, t.marks.c.price.label("mark"))
            .join(t.marks, t.marks.c.symbol == t.positions.c.symbol, isouter=True)
            .order_by(t.positions.c.symbol, t.positions.c.side)
        ).all()
        result = []
        for r in rows:
            mark = Decimal(r.mark) if r.mark is not None else None
            direction = 1 if r.side == "long" else -1
            upnl = (mark - r.entry_price) * r.quantity * direction if mark else Decimal(0)
            result.append(Position(r.symbol, r.side, r.quantity, r.entry_price, mark, upnl, mode))
        return result

    def _create(self, conn: Connection, req: OrderRequest, fault: Draw) -> Order:
        acct = self._account(conn)
        _validate(req, acct.position_mode)
        if conn.execute(
            select(t.orders.c.id).where(t.orders.c.client_order_id == req.client_order_id)
        ).first():
            raise DuplicateClientOrderId(
                f"paper venue: duplicate client order id {req.client_order_id}"
            )
        mark = self._mark(conn, req.symbol)
        quantity = req.quantity
        if req.reduce_only:
            held = self._closable(conn, req, acct.position_mode)
            if held <= 0:
                raise OrderRejected("paper venue: reduce-only order would not reduce a position")
            quantity = min(quantity, held)
        now = self.clock()
        order_id = conn.execute(
            t.orders.insert()
            .values(
                client_order_id=req.client_order_id,
                symbol=req.symbol,
                side=req.side,
                type=req.type,
                quantity=quantity,
                filled=0,
                price=req.price,
                stop_price=req.stop_price,
                average_price=None,
                status="open",
                reduce_only=req.reduce_only,
                position_side=req.position_side,
                created_at=now,
                updated_at=now,
            )
            .returning(t.orders.c.id)
        ).scalar_one()
        marketable = req.type == "market" or (
            req.type == "limit"
            and req.price is not None
            and (req.price >= mark if req.side == "buy" else req.price <= mark)
        )
        if marketable:
            to_fill = quantity
            if fault.partial_fraction is not None and req.type == "market":
                to_fill = max((quantity * fault.partial_fraction).quantize(QTY), QTY)
            self._fill(
                conn,
                order_id,
                _taker_price(req.side, mark, acct.slippage),
                to_fill,
                ioc=req.type == "market",
            )
        return _order(conn.execute(select(t.orders).where(t.orders.c.id == order_id)).one())

    def _closable(self, conn: Connection, req: OrderRequest, mode: str) -> Decimal:
        """How much of a position ``req`` (a reduce-only order) can close."""
        if mode == "hedge":
            side = req.position_side
            if (side == "long") != (req.side == "sell"):
                return Decimal(0)
        else:
            side = "long" if req.side == "sell" else "short"
        held = conn.execute(
            select(t.positions.c.quantity).where(
                t.positions.c.symbol == req.symbol, t.positions.c.side == side
            )
        ).scalar()
        return Decimal(held or 0)

    def _fill(
        self, conn: Connection, order_id: int, price: Decimal, quantity: Decimal, *, ioc: bool
    ) -> None:
        """Execute ``quantity`` of an order at ``price``: position, wallet, fill, order row."""
        order = conn.execute(select(t.orders).where(t.orders.c.id == order_id)).one()
        acct = self._account(conn)
        if order.reduce_only:
            quantity = min(quantity, self._closable(conn, _as_request(order), acct.position_mode))
            if quantity <= 0:
                conn.execute(
                    update(t.orders)
                    .where(t.orders.c.id == order_id)
                    .values(status="expired", updated_at=self.clock())
                )
                return
        realized, opened = self._apply_to_positions(
            conn, order, price, quantity, acct.position_mode
        )
        fee = (price * quantity * acct.taker_fee).quantize(QTY)
        if opened > 0:
            self._check_margin(conn, acct)
        conn.execute(
            update(t.account)
            .where(t.account.c.id == ACCOUNT)
            .values(wallet=acct.wallet + realized - fee, updated_at=self.clock())
        )
        conn.execute(
            t.fills.insert().values(
                order_id=order_id,
                symbol=order.symbol,
                side=order.side,
                quantity=quantity,
                price=price,
                fee=fee,
                realized_pnl=realized,
                created_at=self.clock(),
            )
        )
        filled = order.filled + quantity
        average = ((order.average_price or 0) * order.filled + price * quantity) / filled
        done = filled >= order.quantity
        status = "closed" if done else ("expired" if ioc else "open")
        conn.execute(
            update(t.orders)
            .where(t.orders.c.id == order_id)
            .values(
                filled=filled,
                average_price=average.quantize(QTY),
                status=status,
                updated_at=self.clock(),
            )
        )

    def _apply_to_positions(
        self, conn: Connection, order: Row[Any], price: Decimal, quantity: Decimal, mode: str
    ) -> tuple[Decimal, Decimal]:
        """Returns (realized PnL, quantity that opened or grew exposure)."""
        if mode == "hedge":
            side = order.position_side
            closing = (side == "long") == (order.side == "sell")
        else:
            current = conn.execute(
                select(t.positions).where(t.positions.c.symbol == order.symbol)
            ).first()
            side = current.side if current else ("long" if order.side == "buy" else "short")
            closing = current is not None and (side == "long") == (order.side == "sell")
        held = self._position(conn, order.symbol, side)
        if not closing:
            self._set_position(conn, order.symbol, side, held, quantity, price)
            return Decimal(0), quantity
        if held is None or (mode == "hedge" and held.quantity < quantity):
            raise OrderRejected("paper venue: order would close more than the position holds")
        closed = min(quantity, held.quantity)
        direction = 1 if side == "long" else -1
        realized = ((price - held.entry_price) * closed * direction).quantize(QTY)
        remaining = held.quantity - closed
        if remaining > 0:
            conn.execute(
                update(t.positions)
                .where(t.positions.c.symbol == order.symbol, t.positions.c.side == side)
                .values(quantity=remaining, updated_at=self.clock())
            )
        else:
            conn.execute(
                t.positions.delete().where(
                    t.positions.c.symbol == order.symbol, t.positions.c.side == side
                )
            )
        flip = quantity - closed  # one-way: the rest opens the other way
        if flip > 0:
            other = "short" if side == "long" else "long"
            self._set_position(conn, order.symbol, other, None, flip, price)
        return realized, flip

    def _position(self, conn: Connection, symbol: str, side: str) -> Row[Any] | None:
        return conn.execute(
            select(t.positions).where(t.positions.c.symbol == symbol, t.positions.c.side == side)
        ).first()

    def _set_position(
        self,
        conn: Connection,
        symbol: str,
        side: str,
        held: Row[Any] | None,
        quantity: Decimal,
        price: Decimal,
    ) -> None:
        now = self.clock()
        if held is None:
            conn.execute(
                t.positions.insert().values(
                    symbol=symbol, side=side, quantity=quantity, entry_price=price, updated_at=now
                )
            )
            return
        total = held.quantity + quantity
        entry = ((held.entry_price * held.quantity + price * quantity) / total).quantize(QTY)
        conn.execute(
            update(t.positions)
            .where(t.positions.c.symbol == symbol, t.positions.c.side == side)
            .values(quantity=total, entry_price=entry, updated_at=now)
        )

    def _check_margin(self, conn: Connection, acct: Row[Any]) -> None:
        positions = self._positions(conn, None)
        equity = acct.wallet + sum((p.unrealized_pnl for p in positions), Decimal(0))
        used = sum(
            ((p.mark_price or p.entry_price) * p.quantity / acct.leverage for p in positions),
            Decimal(0),
        )
        # `used` already includes the new exposure (positions were just updated).
        if equity - used < 0:
            raise OrderRejected(
                f"paper venue: insufficient margin (equity {equity:.2f}, "
                f"needed {used:.2f} at leverage {acct.leverage})"
            )

    def _trigger_resting(self, conn: Connection, symbol: str, mark: Decimal) -> list[Order]:
        acct = self._account(conn)
        resting = conn.execute(
            select(t.orders)
            .where(t.orders.c.symbol == symbol, t.orders.c.status == "open")
            .order_by(t.orders.c.id)
        ).all()
        executed = []
        for o in resting:
            if o.type == "limit":
                crossed = mark <= o.price if o.side == "buy" else mark >= o.price
                price = o.price
            else:  # stop: becomes a market order when the mark reaches the trigger
                crossed = mark >= o.stop_price if o.side == "buy" else mark <= o.stop_price
                price = _taker_price(o.side, mark, acct.slippage)
            if not crossed:
                continue
            try:
                with conn.begin_nested():
                    self._fill(conn, o.id, price, o.quantity - o.filled, ioc=o.type == "stop")
            except OrderRejected:
                conn.execute(
                    update(t.orders)
                    .where(t.orders.c.id == o.id)
                    .values(status="expired", updated_at=self.clock())
                )
            executed.append(
                _order(conn.execute(select(t.orders).where(t.orders.c.id == o.id)).one())
            )
        return executed


def _check_symbol(symbol: str) -> None:
    base, slash, rest = symbol.partition("/")
    quote, colon, settle = rest.partition(":")
    if not (base and slash and quote and colon and settle):
        raise InvalidCommand(
            f"symbol {symbol!r} is not a unified linear-perpetual symbol such as BTC/USDT:USDT"
        )


def _validate(req: OrderRequest, mode: str) -> None:
    _check_symbol(req.symbol)
    if req.quantity <= 0:
        raise OrderRejected(f"paper venue: quantity must be positive, got {req.quantity}")
    if req.type == "limit" and (req.price is None or req.price <= 0):
        raise OrderRejected("paper venue: a limit order needs a positive price")
    if req.type == "stop" and (req.stop_price is None or req.stop_price <= 0):
        raise OrderRejected("paper venue: a stop order needs a positive stop price")
    if not req.client_order_id or len(req.client_order_id) > 36:
        raise OrderRejected("paper venue: client order id must be 1 to 36 characters")
    if mode == "hedge" and req.position_side is None:
        raise OrderRejected("paper venue: hedge mode needs position_side on every order")


def _taker_price(side: str, mark: Decimal, slippage: Decimal) -> Decimal:
    factor = 1 + slippage if side == "buy" else 1 - slippage
    return (mark * factor).quantize(QTY)


def _as_request(order: Row[Any]) -> OrderRequest:
    return OrderRequest(
        symbol=order.symbol,
        side=order.side,
        quantity=order.quantity,
        client_order_id=order.client_order_id,
        type=order.type,
        reduce_only=order.reduce_only,
        position_side=order.position_side,
    )


def _order(r: Row[Any]) -> Order:
    return Order(
        id=str(r.id),
        client_order_id=r.client_order_id,
        symbol=r.symbol,
        side=r.side,
        type=r.type,
        quantity=r.quantity,
        filled=r.filled,
        price=r.price,
        average_price=r.average_price,
        status=r.status,
        reduce_only=r.reduce_only,
        stop_price=r.stop_price,
        position_side=r.position_side,
        conditional=r.type == "stop",
    )


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
