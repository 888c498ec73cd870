"""The paper venue's matching engine and ledger: orders, fills, positions, margin.

Every method works inside the caller's transaction (the venue holds the account row lock),
so a request is applied whole or not at all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Row, func, select, text, update
from sqlalchemy.dialects.postgresql import insert

from adapters.paper import tables as t
from adapters.paper.faults import Draw
from domain.errors import InvalidCommand
from domain.validation import shown, symbol_value
from domain.venue import DuplicateClientOrderId, Order, OrderRejected, OrderRequest, Position

ACCOUNT = "default"
OPENING_MARKS = {
    "BTC/USDT:USDT": Decimal(60000),
    "ETH/USDT:USDT": Decimal(3000),
    "SOL/USDT:USDT": Decimal(150),
}
QTY = Decimal("0.00000001")
# The range of leverage the venue accepts per symbol, as Binance USD-M's widest (1x-125x).
MIN_LEVERAGE, MAX_LEVERAGE = Decimal(1), Decimal(125)
DEFAULTS: dict[str, Any] = {
    "currency": "USDT",
    "wallet": Decimal(0),
    "position_mode": "one_way",
    "leverage": Decimal(10),
    "taker_fee": Decimal("0.0004"),
    "slippage": Decimal("0.0005"),
}


class Matching:
    def __init__(self, clock: Callable[[], datetime]) -> None:
        self.clock = clock

    def account(self, conn: Connection) -> Row[Any]:
        """The account row, created on first use, locked for the rest of the transaction."""
        # The common case in one statement: every request and fill asks for the account.
        found = conn.execute(
            select(t.account).where(t.account.c.id == ACCOUNT).with_for_update()
        ).first()
        if found is not None:
            return found
        created = conn.execute(
            insert(t.account)
            .values(id=ACCOUNT, updated_at=self.clock(), **DEFAULTS)
            .on_conflict_do_nothing(index_elements=["id"])
            .returning(t.account.c.id)
        ).first()
        if created is not None:
            # A new venue lists a few markets at synthetic opening marks, so an order can be
            # priced before any drill moves the market (`tradecore paper price`).
            conn.execute(
                insert(t.marks)
                .values(
                    [
                        {"symbol": symbol, "price": price, "updated_at": self.clock()}
                        for symbol, price in OPENING_MARKS.items()
                    ]
                )
                .on_conflict_do_nothing(index_elements=["symbol"])
            )
            conn.execute(
                t.mark_history.insert().values(
                    [
                        {"symbol": symbol, "price": price, "at": self.clock()}
                        for symbol, price in OPENING_MARKS.items()
                    ]
                )
            )
        return conn.execute(
            select(t.account).where(t.account.c.id == ACCOUNT).with_for_update()
        ).one()

    def mark(self, conn: Connection, symbol: str) -> Decimal:
        price = conn.execute(select(t.marks.c.price).where(t.marks.c.symbol == symbol)).scalar()
        if price is None:
            raise no_market(symbol)
        return Decimal(price)

    def positions(self, conn: Connection, _: Draw | None) -> list[Position]:
        return self.holdings(conn)[1]

    def holdings(self, conn: Connection, *, lock: bool = True) -> tuple[Row[Any], list[Position]]:
        """The account row (with ``venue_now``, the database server's time as it answered)
        and its positions at the current marks, in one statement (so one consistent
        snapshot even without the lock). ``lock``: the account row is locked for
        the rest of the transaction (a read alone does not need it: one statement is
        consistent by itself). The account is created on first use."""
        query = (
            select(
                t.account,
                t.positions.c.symbol.label("p_symbol"),
                t.positions.c.side.label("p_side"),
                t.positions.c.quantity.label("p_quantity"),
                t.positions.c.entry_price.label("p_entry_price"),
                t.marks.c.price.label("p_mark"),
                func.coalesce(t.leverage.c.leverage, t.account.c.leverage).label("p_leverage"),
                # The server's time as it answers: what the venue dates a balance by.
                func.clock_timestamp().label("venue_now"),
            )
            .select_from(t.account)
            .join(t.positions, text("true"), isouter=True)
            .join(t.marks, t.marks.c.symbol == t.positions.c.symbol, isouter=True)
            .join(t.leverage, t.leverage.c.symbol == t.positions.c.symbol, isouter=True)
            .where(t.account.c.id == ACCOUNT)
            .order_by(t.positions.c.symbol, t.positions.c.side)
        )
        if lock:
            query = query.with_for_update(of=t.account)
        rows = conn.execute(query).all()
        if not rows:
            self.account(conn)  # the first use: create it, then read it as above
            rows = conn.execute(query).all()
        acct = rows[0]
        result = []
        for r in rows:
            if r.p_symbol is None:
                continue  # the account's row alone: no position
            mark = Decimal(r.p_mark) if r.p_mark is not None else None
            direction = 1 if r.p_side == "long" else -1
            upnl = (mark - r.p_entry_price) * r.p_quantity * direction if mark else Decimal(0)
            result.append(
                Position(
                    r.p_symbol,
                    r.p_side,
                    r.p_quantity,
                    r.p_entry_price,
                    mark,
                    upnl,
                    acct.position_mode,
                    Decimal(r.p_leverage),
                )
            )
        return acct, result

    def leverage(self, conn: Connection, symbol: str) -> Decimal:
        """The symbol's leverage: as set, else the account's default."""
        acct = self.account(conn)
        found = conn.execute(
            select(t.leverage.c.leverage).where(t.leverage.c.symbol == symbol)
        ).scalar()
        return Decimal(found if found is not None else acct.leverage)

    def set_leverage(self, conn: Connection, symbol: str, leverage: Decimal) -> None:
        """Set the symbol's leverage. Raises OrderRejected for a leverage out of range, a
        symbol without a market, or an open position the new margin would not cover (then
        nothing changes: the caller's savepoint is rolled back)."""
        if not (leverage.is_finite() and MIN_LEVERAGE <= leverage <= MAX_LEVERAGE):
            raise OrderRejected(
                f"paper venue: leverage must be from {MIN_LEVERAGE} to {MAX_LEVERAGE}, "
                f"got {leverage}"
            )
        self.mark(conn, symbol)  # no market, no leverage
        now = self.clock()
        conn.execute(
            insert(t.leverage)
            .values(symbol=symbol, leverage=leverage, updated_at=now)
            .on_conflict_do_update(
                index_elements=["symbol"], set_={"leverage": leverage, "updated_at": now}
            )
        )
        self.check_margin(conn)

    def create(self, conn: Connection, req: OrderRequest, fault: Draw) -> Order:
        acct = self.account(conn)
        validate(req, acct.position_mode)
        # What the checks need, in one round trip: a close sends twenty of these at once.
        side = reduced_side(req, acct.position_mode)
        known = conn.execute(
            select(
                select(t.orders.c.id)
                .where(t.orders.c.client_order_id == req.client_order_id)
                .scalar_subquery()
                .label("duplicate"),
                select(t.marks.c.price)
                .where(t.marks.c.symbol == req.symbol)
                .scalar_subquery()
                .label("mark"),
                select(t.positions.c.quantity)
                .where(t.positions.c.symbol == req.symbol, t.positions.c.side == side)
                .scalar_subquery()
                .label("held"),
            )
        ).one()
        if known.duplicate is not None:
            raise DuplicateClientOrderId(
                f"paper venue: duplicate client order id {req.client_order_id}"
            )
        if known.mark is None:
            raise no_market(req.symbol)
        mark = Decimal(known.mark)
        quantity = req.quantity
        if req.reduce_only:
            held = Decimal(known.held or 0) if side is not None else Decimal(0)
            if held <= 0:
                raise OrderRejected("paper venue: reduce-only order would not reduce a position")
            quantity = min(quantity, held)
        now = self.clock()
        order = conn.execute(
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
            .returning(*t.orders.c)
        ).one()
        marketable = req.type == "market" or (
            req.type == "limit"
            and req.price is not None
            and (req.price >= mark if req.side == "buy" else req.price <= mark)
        )
        if marketable:
            to_fill = quantity
            if fault.partial_fraction is not None and req.type == "market":
                to_fill = max((quantity * fault.partial_fraction).quantize(QTY), QTY)
            filled = self.fill(
                conn,
                order,
                taker_price(req.side, mark, acct.slippage),
                to_fill,
                ioc=req.type == "market",
                acct=acct,
                closable=quantity if req.reduce_only else None,
            )
            if filled is not None:  # a new order has this one fill, and its fee
                row, fee = filled
                return replace(order_from_row(row), fee=fee)
        return self.order(conn, order.id)

    def order(self, conn: Connection, order_id: int) -> Order:
        """One order as the port shows it, with the fees of its fills so far."""
        row = conn.execute(select(t.orders).where(t.orders.c.id == order_id)).one()
        fee = conn.execute(
            select(func.coalesce(func.sum(t.fills.c.fee), 0)).where(t.fills.c.order_id == order_id)
        ).scalar_one()
        return replace(order_from_row(row), fee=Decimal(fee))

    def closable(self, conn: Connection, req: OrderRequest, mode: str) -> Decimal:
        """How much of a position ``req`` (a reduce-only order) can close."""
        side = reduced_side(req, mode)
        if side is None:
            return Decimal(0)
        held = conn.execute(
            select(t.positions.c.quantity).where(
                t.positions.c.symbol == req.symbol, t.positions.c.side == side
            )
        ).scalar()
        return Decimal(held or 0)

    def fill(
        self,
        conn: Connection,
        order: Row[Any],
        price: Decimal,
        quantity: Decimal,
        *,
        ioc: bool,
        acct: Row[Any],
        closable: Decimal | None = None,
    ) -> tuple[Row[Any], Decimal] | None:
        """Execute ``quantity`` of ``order`` (its row) at ``price``: position, wallet, fill,
        order row. Returns the order row as it now is and this fill's fee; None when a
        reduce-only order found nothing left to reduce and expired.

        ``acct`` may predate earlier fills in the transaction: its wallet is not used.
        ``closable`` is what a reduce-only order may still close, when the caller just read it.
        """
        if order.reduce_only:
            if closable is None:
                closable = self.closable(conn, as_request(order), acct.position_mode)
            quantity = min(quantity, closable)
            if quantity <= 0:
                conn.execute(
                    update(t.orders)
                    .where(t.orders.c.id == order.id)
                    .values(status="expired", updated_at=self.clock())
                )
                return None
        realized, opened = self.apply_to_positions(conn, order, price, quantity, acct.position_mode)
        fee = (price * quantity * acct.taker_fee).quantize(QTY)
        if opened > 0:
            self.check_margin(conn)
        conn.execute(
            update(t.account)
            .where(t.account.c.id == ACCOUNT)
            .values(wallet=t.account.c.wallet + (realized - fee), updated_at=self.clock())
        )
        conn.execute(
            t.fills.insert().values(
                order_id=order.id,
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
        row = conn.execute(
            update(t.orders)
            .where(t.orders.c.id == order.id)
            .values(
                filled=filled,
                average_price=average.quantize(QTY),
                status=status,
                updated_at=self.clock(),
            )
            .returning(*t.orders.c)
        ).one()
        return row, fee

    def apply_to_positions(
        self, conn: Connection, order: Row[Any], price: Decimal, quantity: Decimal, mode: str
    ) -> tuple[Decimal, Decimal]:
        """Returns (realized PnL, quantity that opened or grew exposure)."""
        if mode == "hedge":
            side = order.position_side
            closing = (side == "long") == (order.side == "sell")
            held = self.position(conn, order.symbol, side)
        else:  # one position at most per symbol
            held = conn.execute(
                select(t.positions).where(t.positions.c.symbol == order.symbol)
            ).first()
            side = held.side if held else ("long" if order.side == "buy" else "short")
            closing = held is not None and (side == "long") == (order.side == "sell")
        if not closing:
            self.set_position(conn, order.symbol, side, held, quantity, price)
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
            self.set_position(conn, order.symbol, other, None, flip, price)
        return realized, flip

    def position(self, conn: Connection, symbol: str, side: str) -> Row[Any] | None:
        return conn.execute(
            select(t.positions).where(t.positions.c.symbol == symbol, t.positions.c.side == side)
        ).first()

    def set_position(
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

    def margin(self, conn: Connection) -> tuple[Decimal, Decimal]:
        """(equity, initial margin in use) of the account, at the current marks: each
        position's notional at its symbol's leverage."""
        acct, positions = self.holdings(conn)
        equity = acct.wallet + sum((p.unrealized_pnl for p in positions), Decimal(0))
        used = sum(
            (p.notional / (p.leverage or acct.leverage) for p in positions),
            Decimal(0),
        )
        return equity, used

    def free(self, conn: Connection) -> Decimal:
        """What can leave the wallet: the equity not held as margin, and never more than the
        wallet itself (unrealized profit cannot be withdrawn)."""
        equity, used = self.margin(conn)
        wallet = Decimal(self.account(conn).wallet)  # one more read: rare (a withdrawal)
        return max(min(wallet, equity - used), Decimal(0))

    def check_margin(self, conn: Connection) -> None:
        equity, used = self.margin(conn)
        # `used` already includes the new exposure (positions were just updated).
        if equity - used < 0:
            raise OrderRejected(
                f"paper venue: insufficient margin (equity {equity:.2f}, "
                f"needed {used:.2f} at the symbols' leverage)"
            )

    def trigger_resting(
        self, conn: Connection, symbol: str, mark: Decimal, acct: Row[Any]
    ) -> list[Order]:
        """Execute the resting orders on ``symbol`` the move to ``mark`` crosses (``acct``:
        the account row, locked by the caller). Returns them."""
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
                price = taker_price(o.side, mark, acct.slippage)
            if not crossed:
                continue
            try:
                with conn.begin_nested():
                    self.fill(
                        conn, o, price, o.quantity - o.filled, ioc=o.type == "stop", acct=acct
                    )
            except OrderRejected:
                conn.execute(
                    update(t.orders)
                    .where(t.orders.c.id == o.id)
                    .values(status="expired", updated_at=self.clock())
                )
            executed.append(
                order_from_row(conn.execute(select(t.orders).where(t.orders.c.id == o.id)).one())
            )
        return executed


def check_symbol(symbol: str) -> None:
    if ":" not in symbol_value(symbol):
        raise InvalidCommand(
            f"symbol {shown(symbol)} is not a unified linear-perpetual symbol such as BTC/USDT:USDT"
        )


def validate(req: OrderRequest, mode: str) -> None:
    check_symbol(req.symbol)
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


def no_market(symbol: str) -> OrderRejected:
    return OrderRejected(f"paper venue: no market for {symbol} (set a price first)")


def reduced_side(req: OrderRequest, mode: str) -> str | None:
    """The side of the position ``req`` would reduce; None if it can reduce none (hedge mode,
    an order whose position side does not match its direction)."""
    if mode == "hedge":
        if (req.position_side == "long") != (req.side == "sell"):
            return None
        return req.position_side
    return "long" if req.side == "sell" else "short"


def taker_price(side: str, mark: Decimal, slippage: Decimal) -> Decimal:
    factor = 1 + slippage if side == "buy" else 1 - slippage
    return (mark * factor).quantize(QTY)


def as_request(order: Row[Any]) -> OrderRequest:
    return OrderRequest(
        symbol=order.symbol,
        side=order.side,
        quantity=order.quantity,
        client_order_id=order.client_order_id,
        type=order.type,
        reduce_only=order.reduce_only,
        position_side=order.position_side,
    )


def order_from_row(r: Row[Any]) -> Order:
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
