"""A stateful offline Binance USD-M or Bybit account behind a real ccxt exchange, with latency.

The technique of ``tests/unit/test_ccxt_venue_offline.py``: the ccxt exchange is real and only
its HTTP session is replaced, so ccxt's request building, signing, parsing and error mapping
all run. Here the session is a small simulated account instead of fixed answers: positions
and resting orders (regular and conditional) that cancel-alls remove and reduce-only market
orders close, answered in each venue's wire format (rows built from ``unit/ccxt_fixtures``).

Every request waits ``latency ± jitter`` seconds (uniform, seeded), half before the account
changes and half after, and is recorded with its start and end (``time.monotonic``), so a test
can assert that requests overlapped and a benchmark can count round trips. Requests arriving
together are served together: only the account's own bookkeeping takes a lock.

Contracts settle in USDT or USDC (``BTC/USDC:USDC`` is ``BTCUSDC``); as on the real Bybit, an
account-wide listing or cancel-all there covers the one ``settleCoin`` it names.

``refuse`` lets a test answer chosen requests with the venue's rate-limit error instead (it
returns True), or with an answer of its own (it returns the HTTP status and JSON body).
Used by the offline flatten tests and ``benchmarks/bench_flatten_venue.py``.
"""

from __future__ import annotations

import copy
import http
import itertools
import json
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import ccxt  # type: ignore[import-untyped]
import requests
from requests.cookies import RequestsCookieJar
from requests.structures import CaseInsensitiveDict

FIXTURES = Path(__file__).parent / "unit" / "ccxt_fixtures"
KEY = "tc-sim-key-3a9c1e7b"
SECRET = "tc-sim-secret-6d2f8a4c"


@dataclass(frozen=True)
class Call:
    """One request as it left ccxt, and when the simulated venue took and answered it."""

    method: str
    path: str
    params: dict[str, Any]
    started: float  # time.monotonic() seconds
    ended: float
    refused: bool = False


@dataclass
class Resting:
    order_id: str
    client_id: str
    symbol: str  # the venue's id, BTCUSDT
    side: str  # BUY / SELL
    quantity: Decimal
    price: Decimal | None  # limit price of a regular order
    trigger: Decimal | None  # trigger price of a conditional order

    @property
    def conditional(self) -> bool:
        return self.trigger is not None


@dataclass
class Filled:
    order_id: str
    client_id: str
    symbol: str
    side: str
    quantity: Decimal  # what filled (0 when the position was already gone)
    price: Decimal


@dataclass
class SimulatedAccount:
    """The account's state; every method is called under the session's lock."""

    marks: dict[str, Decimal]  # venue symbol -> mark price
    positions: dict[str, Decimal] = field(default_factory=dict)  # signed quantity
    # Seconds a fill takes to show in the position endpoints (an account service trailing
    # the matching engine): they answer the positions as they were this long ago.
    position_lag: float = 0.0
    # (monotonic time, venue symbol, signed quantity before) of each fill, for the lag.
    changes: list[tuple[float, str, Decimal]] = field(default_factory=list)
    resting: dict[str, Resting] = field(default_factory=dict)  # by order id
    filled: dict[str, Filled] = field(default_factory=dict)  # by client id
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(7_000_000))

    def next_id(self) -> str:
        return str(next(self._ids))

    def fill(self, symbol: str, side: str, quantity: Decimal, client_id: str) -> Filled:
        """A reduce-only market order: it closes at most the position, never flips it."""
        held = self.positions.get(symbol, Decimal(0))
        closing = (held > 0 and side == "SELL") or (held < 0 and side == "BUY")
        done = min(quantity, abs(held)) if closing else Decimal(0)
        left = held - done if held > 0 else held + done
        if done:
            self.changes.append((time.monotonic(), symbol, held))
        if left == 0:
            self.positions.pop(symbol, None)
        else:
            self.positions[symbol] = left
        order = Filled(self.next_id(), client_id, symbol, side, done, self.marks[symbol])
        self.filled[client_id] = order
        return order

    def shown_positions(self) -> dict[str, Decimal]:
        """The positions as the position endpoints show them: as of ``position_lag`` ago."""
        shown = dict(self.positions)
        since = time.monotonic() - self.position_lag
        for at, symbol, before in reversed(self.changes):
            if at <= since:
                break
            shown[symbol] = before  # the earliest change still hidden wins: the older state
        return {symbol: quantity for symbol, quantity in shown.items() if quantity != 0}

    def cancel_all(
        self, symbols: set[str] | None, *, regular: bool, conditional: bool
    ) -> list[Resting]:
        gone = [
            o
            for o in self.resting.values()
            if (symbols is None or o.symbol in symbols)
            and (conditional if o.conditional else regular)
        ]
        for o in gone:
            del self.resting[o.order_id]
        return gone


Answer = tuple[int, Any]  # HTTP status, JSON body


class SimulatedSession:
    """Stands in for the ``requests.Session`` of a ccxt exchange (see the module doc)."""

    headers: dict[str, str]
    trust_env = False
    exchange: Any = None  # the ccxt client this session serves (set by simulated_exchange)

    def __init__(
        self,
        dialect: str,
        account: SimulatedAccount,
        *,
        latency: float = 0.0,
        jitter: float = 0.0,
        seed: int = 17,
    ) -> None:
        self.dialect = dialect
        self.account = account
        self.latency = latency
        self.jitter = jitter
        self.headers = {}
        self.cookies = RequestsCookieJar()
        self.calls: list[Call] = []
        self.refuse: Callable[[str, str, dict[str, Any]], bool | Answer] = lambda *_: False
        # The venue's recorded candles, any symbol: (open time ms, open, high, low, close,
        # volume), oldest first. The kline endpoints page through them.
        self.candles: list[tuple[int, float, float, float, float, float]] = []
        self._random = random.Random(seed)
        self._lock = threading.Lock()

    # -- the session -------------------------------------------------------------------------

    def request(self, method: str, url: str, data: bytes | None = None, **kwargs: Any) -> Any:
        parts = urlsplit(url)
        params: dict[str, Any] = dict(parse_qsl(parts.query))
        body = (data or b"").decode()
        if body.startswith("{"):
            params.update(json.loads(body))
        elif body:
            params.update(parse_qsl(body))
        started = time.monotonic()
        with self._lock:
            delay = self.latency + self._random.uniform(-self.jitter, self.jitter)
            refused = self.refuse(method, parts.path, params)
        # The network's latency, half on the way there and half back (the simulated
        # exchange's behaviour under test), not a synchronisation.
        time.sleep(max(delay, 0.0) / 2)
        with self._lock:
            if isinstance(refused, tuple):
                status, answer = refused
            elif refused:
                status, answer = self._rate_limited()
            else:
                status, answer = self._answer(method, parts.path, params)
        time.sleep(max(delay, 0.0) / 2)  # the way back (latency, as above)
        with self._lock:
            self.calls.append(
                Call(method, parts.path, params, started, time.monotonic(), bool(refused))
            )
        return _response(url, status, answer)

    def close(self) -> None:
        pass

    def to(self, method: str, path: str) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.method == method and c.path == path]

    def _answer(self, method: str, path: str, params: dict[str, Any]) -> Answer:
        route = getattr(self, f"_{self.dialect}_{method.lower()}_{_name(path)}", None)
        if route is None:
            raise AssertionError(f"the simulated {self.dialect} has no {method} {path}")
        result: Answer = route(params)
        return result

    def _rate_limited(self) -> Answer:
        if self.dialect == "binance":
            return 429, {"code": -1003, "msg": "Too many requests; current limit is 2400."}
        return 200, _bybit({}, code=10006, message="Too many visits!")

    # -- Binance USD-M -----------------------------------------------------------------------

    def _binance_get_fapi_v1_exchangeinfo(self, _: dict[str, Any]) -> Answer:
        info = _fixture("binanceusdm", "exchangeInfo.json")
        template = info["symbols"][0]
        info["symbols"] = [_binance_market(template, s) for s in self.account.marks]
        return 200, info

    def _binance_get_fapi_v1_leveragebracket(self, _: dict[str, Any]) -> Answer:
        return 200, _fixture("binanceusdm", "leverageBracket.json")

    def _binance_get_fapi_v3_positionrisk(self, _: dict[str, Any]) -> Answer:
        template = _fixture("binanceusdm", "positionRisk.json")[0]
        return 200, [
            {
                **template,
                "symbol": symbol,
                "positionAmt": str(quantity),
                "notional": str(quantity * self.account.marks[symbol]),
                "entryPrice": str(self.account.marks[symbol]),
                "markPrice": str(self.account.marks[symbol]),
                "unRealizedProfit": "0",
            }
            for symbol, quantity in self.account.shown_positions().items()
        ]

    def _binance_open(self, params: dict[str, Any], *, conditional: bool) -> list[Resting]:
        return [
            o
            for o in self.account.resting.values()
            if o.conditional == conditional and o.symbol == params.get("symbol", o.symbol)
        ]

    def _binance_get_fapi_v1_openorders(self, params: dict[str, Any]) -> Answer:
        template = _fixture("binanceusdm", "openOrders.json")[0]
        return 200, [
            {
                **template,
                "orderId": int(o.order_id),
                "clientOrderId": o.client_id,
                "symbol": o.symbol,
                "side": o.side,
                "origQty": str(o.quantity),
                "price": str(o.price),
            }
            for o in self._binance_open(params, conditional=False)
        ]

    def _binance_get_fapi_v1_openalgoorders(self, params: dict[str, Any]) -> Answer:
        template = _fixture("binanceusdm", "openAlgoOrders.json")[0]
        return 200, [
            {
                **template,
                "algoId": int(o.order_id),
                "clientAlgoId": o.client_id,
                "symbol": o.symbol,
                "side": o.side,
                "quantity": str(o.quantity),
                "triggerPrice": str(o.trigger),
            }
            for o in self._binance_open(params, conditional=True)
        ]

    def _binance_delete_fapi_v1_allopenorders(self, params: dict[str, Any]) -> Answer:
        self.account.cancel_all({params["symbol"]}, regular=True, conditional=False)
        return 200, {"code": 200, "msg": "The operation of cancel all open order is done."}

    def _binance_delete_fapi_v1_algoopenorders(self, params: dict[str, Any]) -> Answer:
        self.account.cancel_all({params["symbol"]}, regular=False, conditional=True)
        return 200, {"code": 200, "msg": "The operation of cancel all open order is done."}

    def _binance_fill(self, p: dict[str, Any]) -> dict[str, Any]:
        if p.get("type") != "MARKET" or p.get("reduceOnly") not in ("true", True):
            return {"code": -1116, "msg": "Invalid orderType."}  # the sim only closes
        done = self.account.fill(
            p["symbol"], p["side"], Decimal(p["quantity"]), p["newClientOrderId"]
        )
        return _binance_filled(done, p["quantity"])

    def _binance_get_fapi_v1_order(self, params: dict[str, Any]) -> Answer:
        """Query one regular order by its client order id (ccxt's fetch_order)."""
        cid = params["origClientOrderId"]
        done = self.account.filled.get(cid)
        if done is not None:
            return 200, _binance_filled(done, str(done.quantity))
        resting = [o for o in self.account.resting.values() if o.client_id == cid]
        if resting and not resting[0].conditional:
            (_, rows) = self._binance_get_fapi_v1_openorders({"symbol": resting[0].symbol})
            return 200, next(r for r in rows if r["clientOrderId"] == cid)
        return 400, {"code": -2013, "msg": "Order does not exist."}

    def _binance_get_fapi_v1_algoorder(self, params: dict[str, Any]) -> Answer:
        """Query one conditional (algo) order by its client id."""
        cid = params["clientAlgoId"]
        resting = [o for o in self.account.resting.values() if o.client_id == cid]
        if resting and resting[0].conditional:
            (_, rows) = self._binance_get_fapi_v1_openalgoorders({"symbol": resting[0].symbol})
            return 200, next(r for r in rows if r["clientAlgoId"] == cid)
        return 400, {"code": -2013, "msg": "Order does not exist."}

    def _binance_post_fapi_v1_batchorders(self, params: dict[str, Any]) -> Answer:
        return 200, [self._binance_fill(o) for o in json.loads(params["batchOrders"])]

    def _binance_post_fapi_v1_order(self, params: dict[str, Any]) -> Answer:
        answer = self._binance_fill(params)
        return (400 if "code" in answer else 200), answer

    # -- Bybit v5 ----------------------------------------------------------------------------

    def _bybit_get_v5_market_instruments_info(self, params: dict[str, Any]) -> Answer:
        if params.get("status") == "PreLaunch":
            return 200, _fixture("bybit", "instruments_prelaunch.json")
        reply = _fixture("bybit", "instruments.json")
        template = reply["result"]["list"][0]
        reply["result"]["list"] = [_bybit_market(template, s) for s in self.account.marks]
        return 200, reply

    def _candles_from(self, start: object, limit: object) -> list[tuple[int, ...]]:
        since = int(str(start)) if start is not None else 0
        return [c for c in self.candles if c[0] >= since][: int(str(limit or 500))]

    def _binance_get_fapi_v1_klines(self, params: dict[str, Any]) -> Answer:
        page = self._candles_from(params.get("startTime"), params.get("limit"))
        return 200, [
            [t, str(o), str(h), str(lo), str(c), str(v), t + 59_999, "0", 1, "0", "0", "0"]
            for t, o, h, lo, c, v in page
        ]

    def _bybit_get_v5_market_kline(self, params: dict[str, Any]) -> Answer:
        page = self._candles_from(params.get("start"), params.get("limit"))
        rows = [
            [str(t), str(o), str(h), str(lo), str(c), str(v), "0"] for t, o, h, lo, c, v in page
        ]
        rows.reverse()  # Bybit answers newest first
        return 200, _bybit({"category": "linear", "symbol": params.get("symbol"), "list": rows})

    def _bybit_get_v5_user_query_api(self, _: dict[str, Any]) -> Answer:
        return 200, _fixture("bybit", "query_api.json")

    def _bybit_get_v5_account_info(self, _: dict[str, Any]) -> Answer:
        return 200, _fixture("bybit", "account_info.json")

    def _bybit_scope(self, params: dict[str, Any]) -> Callable[[str], bool]:
        """Which venue symbols a request covers: its symbol, else its settle coin's."""
        if "symbol" in params:
            return lambda symbol: symbol == params["symbol"]
        if params.get("settleCoin") not in SETTLES:
            raise AssertionError(f"a Bybit listing needs a symbol or a settleCoin: {params}")
        return lambda symbol: settle_of(symbol) == params["settleCoin"]

    def _bybit_get_v5_position_list(self, params: dict[str, Any]) -> Answer:
        covers = self._bybit_scope(params)
        template = _fixture("bybit", "positions.json")["result"]["list"][0]
        rows = [
            {
                **template,
                "symbol": symbol,
                "side": "Buy" if quantity > 0 else "Sell",
                "size": str(abs(quantity)),
                "avgPrice": str(self.account.marks[symbol]),
                "markPrice": str(self.account.marks[symbol]),
                "unrealisedPnl": "0",
            }
            for symbol, quantity in self.account.shown_positions().items()
            if covers(symbol)
        ]
        return 200, _bybit({"list": rows, "nextPageCursor": "", "category": "linear"})

    def _bybit_order_row(self, template: dict[str, Any], o: Resting | Filled) -> dict[str, Any]:
        row = {
            **template,
            "orderId": o.order_id,
            "orderLinkId": o.client_id,
            "symbol": o.symbol,
            "side": o.side.capitalize(),
            "qty": str(o.quantity),
        }
        if isinstance(o, Filled):
            row.update(avgPrice=str(o.price), cumExecQty=str(o.quantity), leavesQty="0")
        elif o.conditional:
            row.update(triggerPrice=str(o.trigger), price="0")
        else:
            row.update(price=str(o.price))
        return row

    def _bybit_get_v5_order_realtime(self, params: dict[str, Any]) -> Answer:
        stop = params.get("orderFilter") == "StopOrder"
        covers = self._bybit_scope(params)
        regular = _fixture("bybit", "orders_open.json")["result"]["list"][0]
        conditional = _fixture("bybit", "orders_conditional.json")["result"]["list"][0]
        rows = [
            self._bybit_order_row(conditional if o.conditional else regular, o)
            for o in self.account.resting.values()
            if (o.conditional or not stop)
            and covers(o.symbol)
            and o.client_id == params.get("orderLinkId", o.client_id)
        ]
        return 200, _bybit({"list": rows, "nextPageCursor": "", "category": "linear"})

    def _bybit_get_v5_order_history(self, params: dict[str, Any]) -> Answer:
        template = _fixture("bybit", "order_filled.json")["result"]["list"][0]
        if "orderLinkId" in params:
            found = self.account.filled.get(params["orderLinkId"])
            rows = [self._bybit_order_row(template, found)] if found else []
        else:  # the latest orders of the settle coin first
            covers = self._bybit_scope(params)
            filled = [o for o in self.account.filled.values() if covers(o.symbol)]
            latest = filled[::-1][: int(params.get("limit", 20))]
            rows = [self._bybit_order_row(template, o) for o in latest]
        return 200, _bybit({"list": rows, "nextPageCursor": "", "category": "linear"})

    def _bybit_post_v5_order_cancel_all(self, params: dict[str, Any]) -> Answer:
        stop = params.get("orderFilter") == "StopOrder"
        if "symbol" not in params and params.get("settleCoin") not in SETTLES:
            return 200, _bybit({}, code=10001, message="symbol or settleCoin is required")
        covers = self._bybit_scope(params)
        symbols = {o.symbol for o in self.account.resting.values() if covers(o.symbol)}
        # Without orderFilter a linear cancel-all takes every kind of order.
        gone = self.account.cancel_all(symbols, regular=not stop, conditional=True)
        rows = [{"orderId": o.order_id, "orderLinkId": o.client_id} for o in gone]
        return 200, _bybit({"list": rows, "success": "1"})

    def _bybit_post_v5_order_create_batch(self, params: dict[str, Any]) -> Answer:
        listed, codes = [], []
        for o in params["request"]:
            done = self.account.fill(
                o["symbol"], o["side"].upper(), Decimal(o["qty"]), o["orderLinkId"]
            )
            listed.append(
                {
                    "category": "linear",
                    "symbol": done.symbol,
                    "orderId": done.order_id,
                    "orderLinkId": done.client_id,
                    "createAt": "1767225601234",
                }
            )
            codes.append({"code": 0, "msg": "OK"})
        return 200, {**_bybit({"list": listed}), "retExtInfo": {"list": codes}}

    def _bybit_post_v5_order_create(self, params: dict[str, Any]) -> Answer:
        done = self.account.fill(
            params["symbol"], params["side"].upper(), Decimal(params["qty"]), params["orderLinkId"]
        )
        return 200, _bybit({"orderId": done.order_id, "orderLinkId": done.client_id})


# -- building an account and its exchange ------------------------------------------------------


SETTLES = ("USDT", "USDC")


def venue_symbol(symbol: str) -> str:
    """``BTC/USDT:USDT`` -> ``BTCUSDT``, ``BTC/USDC:USDC`` -> ``BTCUSDC`` (both venues spell
    linear perpetuals so)."""
    return symbol.split(":", maxsplit=1)[0].replace("/", "")


def settle_of(venue_symbol: str) -> str:
    return next((s for s in SETTLES if venue_symbol.endswith(s)), "USDT")


def simulated_exchange(
    exchange_id: str,
    marks: dict[str, Decimal],
    *,
    latency: float = 0.0,
    jitter: float = 0.0,
    seed: int = 17,
    rate_limit: bool = True,
    position_lag: float = 0.0,
) -> tuple[Any, SimulatedSession]:
    """A real ``ccxt.binanceusdm`` or ``ccxt.bybit`` on a simulated account of ``marks``
    (unified symbol -> mark price), and its session. ``rate_limit`` keeps ccxt's
    ``enableRateLimit`` on, so a ``CcxtVenue`` puts the exchange under its own limiter;
    ``position_lag``: seconds before a fill shows in the position endpoints."""
    dialect = {"binanceusdm": "binance", "bybit": "bybit"}[exchange_id]
    account = SimulatedAccount(
        {venue_symbol(s): m for s, m in marks.items()}, position_lag=position_lag
    )
    session = SimulatedSession(dialect, account, latency=latency, jitter=jitter, seed=seed)
    exchange = getattr(ccxt, exchange_id)({"apiKey": KEY, "secret": SECRET})
    exchange.session = session
    session.exchange = exchange  # the client it serves, for callers that time it directly
    exchange.enableRateLimit = rate_limit
    return exchange, session


def open_position(session: SimulatedSession, symbol: str, quantity: Decimal) -> None:
    """A position of ``quantity`` (negative: short) on the unified ``symbol``."""
    with session._lock:
        session.account.positions[venue_symbol(symbol)] = quantity


def rest_order(
    session: SimulatedSession,
    symbol: str,
    side: str,
    quantity: Decimal,
    client_id: str,
    *,
    price: Decimal | None = None,
    trigger: Decimal | None = None,
) -> None:
    """A resting limit order (``price``) or conditional stop (``trigger``)."""
    with session._lock:
        account = session.account
        order_id = account.next_id()
        account.resting[order_id] = Resting(
            order_id, client_id, venue_symbol(symbol), side.upper(), quantity, price, trigger
        )


def peak_in_flight(calls: list[Call]) -> int:
    """The most calls of ``calls`` in flight at one same instant."""
    edges = sorted([(c.started, 1) for c in calls] + [(c.ended, -1) for c in calls])
    peak = level = 0
    for _, step in edges:  # an end sorts before a start at the same instant
        level += step
        peak = max(peak, level)
    return peak


def overlapping(calls: list[Call]) -> bool:
    """True when every call of ``calls`` was in flight at one same instant."""
    return bool(calls) and max(c.started for c in calls) < min(c.ended for c in calls)


# -- wire formats ---------------------------------------------------------------------------


def _name(path: str) -> str:
    return path.strip("/").replace("/", "_").replace("-", "_").lower()


def _fixture(folder: str, name: str) -> Any:
    return json.loads((FIXTURES / folder / name).read_text())


def _binance_market(template: dict[str, Any], symbol: str) -> dict[str, Any]:
    market = copy.deepcopy(template)
    settle = settle_of(symbol)
    market.update(
        symbol=symbol,
        pair=symbol,
        baseAsset=symbol.removesuffix(settle),
        quoteAsset=settle,
        marginAsset=settle,
    )
    return market


def _bybit_market(template: dict[str, Any], symbol: str) -> dict[str, Any]:
    market = copy.deepcopy(template)
    settle = settle_of(symbol)
    market.update(
        symbol=symbol, baseCoin=symbol.removesuffix(settle), quoteCoin=settle, settleCoin=settle
    )
    return market


def _bybit(result: Any, *, code: int = 0, message: str = "OK") -> dict[str, Any]:
    return {
        "retCode": code,
        "retMsg": message,
        "result": result,
        "retExtInfo": {},
        "time": 1767225600000,
    }


def _response(url: str, status: int, answer: Any) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response.reason = http.HTTPStatus(status).phrase
    response.url = url
    response._content = json.dumps(answer).encode()
    response.headers = CaseInsensitiveDict({"Content-Type": "application/json"})
    return response


def _binance_filled(done: Filled, orig_qty: str) -> dict[str, Any]:
    """A filled reduce-only market order as Binance shows it (order answer and query)."""
    return {
        "orderId": int(done.order_id),
        "symbol": done.symbol,
        "status": "FILLED",
        "clientOrderId": done.client_id,
        "price": "0.00",
        "avgPrice": str(done.price),
        "origQty": orig_qty,
        "executedQty": str(done.quantity),
        "cumQty": str(done.quantity),
        "cumQuote": str(done.quantity * done.price),
        "timeInForce": "GTC",
        "type": "MARKET",
        "reduceOnly": True,
        "closePosition": False,
        "side": done.side,
        "positionSide": "BOTH",
        "stopPrice": "0.00",
        "workingType": "CONTRACT_PRICE",
        "priceProtect": False,
        "origType": "MARKET",
        "updateTime": 1767225601234,
    }
