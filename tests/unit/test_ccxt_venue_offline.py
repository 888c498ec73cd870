"""The ccxt venue against canned Binance USD-M and Bybit answers, with no network.

The technique of ccxt's own tests: the exchange object is real and only its HTTP session is
replaced, so ccxt's request building, signing, response parsing and error mapping
(``handle_errors``, HTTP status codes) all run. The canned answers are written in each
venue's response format (``ccxt_fixtures/<exchange id>/``); every request is recorded and
asserted on as it would appear on the wire. A request no route answers fails the test, and
sockets are closed for the whole module.
"""

from __future__ import annotations

import hashlib
import hmac
import http
import json
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import ccxt
import pytest
import requests
from requests.cookies import RequestsCookieJar
from requests.structures import CaseInsensitiveDict

from adapters.ccxt.dialect import Dialect
from adapters.ccxt.errors import CcxtConfigurationError
from adapters.ccxt.mapping import position_from_ccxt
from adapters.ccxt.venue import CcxtVenue
from app.commands.executor import in_mode
from domain.venue import (
    DuplicateClientOrderId,
    Order,
    OrderRejected,
    OrderRequest,
    OutcomeUnknown,
    Position,
    RateLimited,
    VenueAuthenticationFailed,
    VenueError,
    VenueUnavailable,
)

KEY = "tc-offline-key-5f1e9a2b77"
SECRET = "tc-offline-secret-8c3d7e4f11"
FIXTURES = Path(__file__).parent / "ccxt_fixtures"
BTC, ETH = "BTC/USDT:USDT", "ETH/USDT:USDT"


# -- the canned venue ----------------------------------------------------------------------


@dataclass
class Sent:
    """One request as it left ccxt."""

    method: str
    url: str
    headers: dict[str, str]
    raw_body: str

    @property
    def path(self) -> str:
        return urlsplit(self.url).path

    @property
    def host(self) -> str:
        return urlsplit(self.url).netloc

    @property
    def query(self) -> dict[str, str]:
        return dict(parse_qsl(urlsplit(self.url).query))

    @property
    def body(self) -> dict[str, Any]:
        if not self.raw_body:
            return {}
        if self.raw_body.startswith("{"):
            return dict(json.loads(self.raw_body))
        return dict(parse_qsl(self.raw_body))

    @property
    def params(self) -> dict[str, Any]:
        return {**self.query, **self.body}


Reply = Any  # a JSON value, a fixture name, an exception, or a function of the request


@dataclass
class Route:
    method: str
    path: str
    reply: Reply
    status: int
    when: Callable[[Sent], bool] | None


@dataclass
class CannedVenue:
    """Stands in for the ``requests.Session`` of a ccxt exchange."""

    folder: str
    sent: list[Sent] = field(default_factory=list)
    routes: list[Route] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    cookies: RequestsCookieJar = field(default_factory=RequestsCookieJar)
    trust_env: bool = False

    def on(
        self,
        method: str,
        path: str,
        reply: Reply,
        *,
        status: int = 200,
        when: Callable[[Sent], bool] | None = None,
    ) -> None:
        """Answer ``method path`` (latest registration wins) with ``reply``."""
        self.routes.insert(0, Route(method, path, reply, status, when))

    def fixture(self, name: str) -> Any:
        return json.loads((FIXTURES / self.folder / name).read_text())

    def request(self, method: str, url: str, data: bytes | None = None, **kwargs: Any) -> Any:
        sent = Sent(method, url, dict(kwargs.get("headers") or {}), (data or b"").decode())
        self.sent.append(sent)
        for route in self.routes:
            matches = route.method == method and route.path == sent.path
            if matches and (route.when is None or route.when(sent)):
                return self._respond(route, sent)
        raise AssertionError(f"no canned answer for {method} {sent.path}")

    def _respond(self, route: Route, sent: Sent) -> requests.Response:
        reply = route.reply
        if isinstance(reply, BaseException):
            raise reply
        if callable(reply):
            reply = reply(sent)
        if isinstance(reply, str) and reply.endswith(".json"):
            reply = self.fixture(reply)
        reply = _settle_scoped(reply, sent.query.get("settleCoin"))
        response = requests.Response()
        response.status_code = route.status
        response.reason = http.HTTPStatus(route.status).phrase
        response.url = sent.url
        is_text = isinstance(reply, str)
        response._content = (reply if is_text else json.dumps(reply)).encode()
        kind = "text/html" if is_text else "application/json"
        response.headers = CaseInsensitiveDict({"Content-Type": kind})
        return response

    def close(self) -> None:
        pass

    def to(self, method: str, path: str) -> list[Sent]:
        return [s for s in self.sent if s.method == method and s.path == path]

    def one(self, method: str, path: str) -> Sent:
        found = self.to(method, path)
        assert len(found) == 1, f"{method} {path} sent {len(found)} times"
        return found[0]


def _settle_scoped(reply: Any, settle: str | None) -> Any:
    """A Bybit listing asked for one ``settleCoin`` answers that coin's contracts only
    (``BTCUSDT``: USDT; ``BTCPERP`` and ``BTCUSDC``: USDC), whatever the canned list holds."""
    rows = reply.get("result", {}).get("list") if isinstance(reply, dict) else None
    if settle is None or not isinstance(rows, list):
        return reply
    kept = [r for r in rows if _settle_of(str(r.get("symbol", ""))) == settle]
    return {**reply, "result": {**reply["result"], "list": kept}}


def _settle_of(venue_symbol: str) -> str:
    return "USDC" if venue_symbol.endswith(("PERP", "USDC")) else "USDT"


@dataclass
class Rig:
    venue: CcxtVenue
    wire: CannedVenue


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("network access in an offline test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def offline(exchange: Any, wire: CannedVenue) -> Any:
    exchange.session = wire
    exchange.enableRateLimit = False
    return exchange


# -- Binance USD-M -------------------------------------------------------------------------

BINANCE_DONE = {"code": 200, "msg": "The operation of cancel all open order is done."}


def _by_symbol(wire: CannedVenue, name: str) -> Callable[[Sent], Any]:
    def answer(sent: Sent) -> Any:
        rows = wire.fixture(name)
        return [r for r in rows if r["symbol"] == sent.query.get("symbol", r["symbol"])]

    return answer


def _binance_new_order(sent: Sent) -> dict[str, Any]:
    return _binance_order(sent.body)


def _binance_order(p: dict[str, Any]) -> dict[str, Any]:
    """Binance's answer to a new order with the parameters ``p``."""
    return {
        "orderId": 4061232456,
        "symbol": p["symbol"],
        "status": "FILLED" if p["type"] == "MARKET" else "NEW",
        "clientOrderId": p["newClientOrderId"],
        "price": p.get("price", "0.00"),
        "avgPrice": "97990.10000" if p["type"] == "MARKET" else "0.00",
        "origQty": p["quantity"],
        "executedQty": p["quantity"] if p["type"] == "MARKET" else "0",
        "cumQty": p["quantity"],
        "cumQuote": "979.90100",
        "timeInForce": "GTC",
        "type": p["type"],
        "reduceOnly": p.get("reduceOnly") == "true",
        "closePosition": False,
        "side": p["side"],
        "positionSide": p.get("positionSide", "BOTH"),
        "stopPrice": "0.00",
        "workingType": "CONTRACT_PRICE",
        "priceProtect": False,
        "origType": p["type"],
        "priceMatch": "NONE",
        "selfTradePreventionMode": "EXPIRE_MAKER",
        "goodTillDate": 0,
        "updateTime": 1767225601234,
    }


def _binance_new_algo(sent: Sent) -> dict[str, Any]:
    p = sent.body
    return {
        "algoId": 3000009,
        "clientAlgoId": p["clientAlgoId"],
        "algoType": "CONDITIONAL",
        "orderType": p["type"],
        "symbol": p["symbol"],
        "side": p["side"],
        "positionSide": p.get("positionSide", "BOTH"),
        "timeInForce": "GTC",
        "quantity": p["quantity"],
        "algoStatus": "NEW",
        "triggerPrice": p["triggerPrice"],
        "price": "0.00",
        "icebergQuantity": None,
        "selfTradePreventionMode": "EXPIRE_MAKER",
        "workingType": "CONTRACT_PRICE",
        "priceMatch": "NONE",
        "closePosition": False,
        "priceProtect": False,
        "reduceOnly": p.get("reduceOnly") == "true",
        "createTime": 1767225601234,
        "updateTime": 1767225601234,
        "triggerTime": 0,
        "goodTillDate": 0,
    }


def _echo_client_id(wire: CannedVenue, name: str, key: str) -> Callable[[Sent], Any]:
    def answer(sent: Sent) -> Any:
        row = wire.fixture(name)
        row["clientAlgoId" if "clientAlgoId" in row else "clientOrderId"] = sent.query[key]
        return row

    return answer


def _binance_leverage(wire: CannedVenue) -> None:
    """A per-symbol leverage that POST /fapi/v1/leverage sets and /fapi/v1/symbolConfig reads."""
    held: dict[str, int] = {}

    def change(sent: Sent) -> Any:
        held[sent.body["symbol"]] = int(sent.body["leverage"])
        return {
            "leverage": held[sent.body["symbol"]],
            "maxNotionalValue": "80000000",
            "symbol": sent.body["symbol"],
        }

    def config(sent: Sent) -> Any:
        return [
            {
                "symbol": symbol,
                "marginType": "CROSSED",
                "isAutoAddMargin": "false",
                "leverage": held.get(symbol, 20),
                "maxNotionalValue": "80000000",
            }
            for symbol in ([sent.query["symbol"]] if "symbol" in sent.query else held)
        ]

    wire.on("POST", "/fapi/v1/leverage", change)
    wire.on("GET", "/fapi/v1/symbolConfig", config)


def binance_wire() -> CannedVenue:
    wire = CannedVenue("binanceusdm")
    _binance_leverage(wire)
    wire.on("GET", "/fapi/v1/exchangeInfo", "exchangeInfo.json")
    wire.on("GET", "/fapi/v1/leverageBracket", "leverageBracket.json")
    wire.on("GET", "/fapi/v3/positionRisk", "positionRisk.json")
    wire.on("GET", "/fapi/v1/openOrders", _by_symbol(wire, "openOrders.json"))
    wire.on("GET", "/fapi/v1/openAlgoOrders", _by_symbol(wire, "openAlgoOrders.json"))
    wire.on("GET", "/fapi/v3/account", "account.json")
    wire.on("GET", "/fapi/v1/premiumIndex", "premiumIndex.json")
    wire.on("POST", "/fapi/v1/order", _binance_new_order)
    wire.on("POST", "/fapi/v1/algoOrder", _binance_new_algo)
    wire.on("DELETE", "/fapi/v1/allOpenOrders", BINANCE_DONE)
    wire.on("DELETE", "/fapi/v1/algoOpenOrders", BINANCE_DONE)
    wire.on("GET", "/fapi/v1/order", _echo_client_id(wire, "order_query.json", "origClientOrderId"))
    wire.on(
        "GET", "/fapi/v1/algoOrder", _echo_client_id(wire, "algoOrder_query.json", "clientAlgoId")
    )
    wire.on(
        "DELETE",
        "/fapi/v1/algoOrder",
        lambda s: {
            "algoId": int(s.query["algoId"]),
            "clientAlgoId": "x",
            "code": "200",
            "msg": "success",
        },
    )
    return wire


@pytest.fixture
def binance() -> Rig:
    wire = binance_wire()
    exchange = offline(ccxt.binanceusdm({"apiKey": KEY, "secret": SECRET}), wire)
    return Rig(CcxtVenue(exchange), wire)


def assert_binance_signed(sent: Sent) -> None:
    """HMAC-SHA256 of the query (or form body) with the secret, key in the header."""
    payload = sent.raw_body or urlsplit(sent.url).query
    unsigned, _, signature = payload.rpartition("&signature=")
    expected = hmac.new(SECRET.encode(), unsigned.encode(), hashlib.sha256).hexdigest()
    assert signature == expected
    assert sent.headers["X-MBX-APIKEY"] == KEY


def close_request(position: Position, client_order_id: str = "tcx1-close-btc") -> OrderRequest:
    return OrderRequest(
        symbol=position.symbol,
        side=position.closing_side,
        quantity=position.quantity,
        client_order_id=client_order_id,
        reduce_only=True,
        position_side=position.side if position.mode == "hedge" else None,
    )


def test_binance_positions_are_parsed_with_side_quantity_entry_and_one_way_mode(
    binance: Rig,
) -> None:
    positions = {p.symbol: p for p in binance.venue.fetch_positions()}

    assert set(positions) == {BTC, ETH}  # SOLUSDT holds nothing: skipped
    btc, eth = positions[BTC], positions[ETH]
    assert (btc.side, btc.quantity, btc.entry_price) == (
        "long",
        Decimal("0.01"),
        Decimal("97250.5"),
    )
    assert (btc.mark_price, btc.unrealized_pnl, btc.mode) == (
        Decimal("98000"),
        Decimal("7.495"),
        "one_way",
    )
    assert (eth.side, eth.quantity, eth.entry_price) == ("short", Decimal("0.5"), Decimal("3400"))
    assert_binance_signed(binance.wire.one("GET", "/fapi/v3/positionRisk"))


def test_binance_hedge_mode_positions_are_reported_per_side(binance: Rig) -> None:
    binance.wire.on("GET", "/fapi/v3/positionRisk", "positionRisk_hedge.json")

    positions = sorted(binance.venue.fetch_positions(), key=lambda p: p.side)

    assert [(p.symbol, p.side, p.quantity, p.mode) for p in positions] == [
        (BTC, "long", Decimal("0.01"), "hedge"),
        (BTC, "short", Decimal("0.02"), "hedge"),
    ]


def test_binance_reduce_only_market_close_is_sent_in_binance_wire_format(binance: Rig) -> None:
    (btc,) = [p for p in binance.venue.fetch_positions() if p.symbol == BTC]

    order = binance.venue.create_order(close_request(btc))

    sent = binance.wire.one("POST", "/fapi/v1/order")
    assert sent.host == "fapi.binance.com"
    assert {k: sent.body[k] for k in ("symbol", "side", "type", "quantity", "reduceOnly")} == {
        "symbol": "BTCUSDT",
        "side": "SELL",
        "type": "MARKET",
        "quantity": "0.01",
        "reduceOnly": "true",
    }
    assert sent.body["newClientOrderId"] == "tcx1-close-btc"
    assert "positionSide" not in sent.body
    assert_binance_signed(sent)
    assert (order.status, order.filled, order.average_price) == (
        "closed",
        Decimal("0.01"),
        Decimal("97990.1"),
    )
    assert (order.client_order_id, order.reduce_only, order.side) == (
        "tcx1-close-btc",
        True,
        "sell",
    )


def test_binance_hedge_mode_close_names_the_position_side_instead_of_reduce_only(
    binance: Rig,
) -> None:
    binance.wire.on("GET", "/fapi/v3/positionRisk", "positionRisk_hedge.json")
    short = next(p for p in binance.venue.fetch_positions() if p.side == "short")

    order = binance.venue.create_order(close_request(short, "tcx1-close-btc-short"))

    body = binance.wire.one("POST", "/fapi/v1/order").body
    assert (body["side"], body["positionSide"], body["quantity"]) == ("BUY", "SHORT", "0.02")
    assert "reduceOnly" not in body  # Binance refuses reduceOnly in hedge mode
    assert order.position_side == "short"


@pytest.mark.parametrize(("dual", "mode"), [(True, "hedge"), (False, "one_way")])
def test_binance_position_mode_is_the_accounts_dual_side_setting(
    binance: Rig, dual: bool, mode: str
) -> None:
    binance.wire.on("GET", "/fapi/v1/positionSide/dual", {"dualSidePosition": dual})

    assert binance.venue.fetch_position_mode(BTC) == mode
    assert_binance_signed(binance.wire.one("GET", "/fapi/v1/positionSide/dual"))


def test_binance_position_mode_is_read_again_only_after_an_order_is_refused(
    binance: Rig,
) -> None:
    binance.wire.on("GET", "/fapi/v1/positionSide/dual", {"dualSidePosition": False})
    assert binance.venue.fetch_position_mode(BTC) == "one_way"
    binance.wire.on("GET", "/fapi/v1/positionSide/dual", {"dualSidePosition": True})
    assert binance.venue.fetch_position_mode(ETH) == "one_way"  # kept: it weighs 30
    binance.wire.on(
        "POST",
        "/fapi/v1/order",
        {"code": -4061, "msg": "Order's position side does not match user's setting."},
        status=400,
    )
    with pytest.raises(OrderRejected):
        binance.venue.create_order(OrderRequest(BTC, "buy", Decimal("0.01"), "tc-stale-mode"))

    assert binance.venue.fetch_position_mode(BTC) == "hedge"
    assert len(binance.wire.to("GET", "/fapi/v1/positionSide/dual")) == 2


def test_binance_hedge_mode_entry_and_exit_name_their_position_side(binance: Rig) -> None:
    entry = OrderRequest(BTC, "sell", Decimal("0.01"), "tc-entry-short")
    exit_ = OrderRequest(BTC, "sell", Decimal("0.01"), "tc-exit-long", reduce_only=True)

    for request in (entry, exit_):
        binance.venue.create_order(in_mode(request, "hedge"))

    sent = [s.body for s in binance.wire.to("POST", "/fapi/v1/order")]
    assert [(b["side"], b["positionSide"], "reduceOnly" in b) for b in sent] == [
        ("SELL", "SHORT", False),
        ("SELL", "LONG", False),  # the position side alone makes it a close
    ]


def test_binance_open_orders_include_the_algo_service_conditional_orders(binance: Rig) -> None:
    orders = binance.venue.fetch_open_orders()

    regular = sorted((o for o in orders if not o.conditional), key=lambda o: o.id)
    conditional = sorted((o for o in orders if o.conditional), key=lambda o: o.id)
    assert [(o.id, o.symbol, o.side, o.type, o.quantity, o.price) for o in regular] == [
        ("8389765589", ETH, "buy", "limit", Decimal("0.5"), Decimal("3300")),
        ("8389765590", BTC, "sell", "limit", Decimal("0.005"), Decimal("105000")),
    ]
    assert [
        (o.id, o.client_order_id, o.type, o.stop_price, o.reduce_only) for o in conditional
    ] == [
        ("3000001", "sl-btc-1", "stop", Decimal("92000"), True),
        ("3000002", "sl-eth-1", "stop", Decimal("3600"), True),
    ]
    assert "symbol" not in binance.wire.one("GET", "/fapi/v1/openOrders").query  # every symbol
    assert "symbol" not in binance.wire.one("GET", "/fapi/v1/openAlgoOrders").query


def test_binance_cancel_all_cancels_regular_and_algo_orders_of_the_symbol(binance: Rig) -> None:
    canceled = binance.venue.cancel_all_orders(BTC)

    regular = binance.wire.one("DELETE", "/fapi/v1/allOpenOrders")
    algo = binance.wire.one("DELETE", "/fapi/v1/algoOpenOrders")
    assert regular.query["symbol"] == algo.query["symbol"] == "BTCUSDT"
    assert_binance_signed(regular)
    assert_binance_signed(algo)
    # Binance answers with a bare acknowledgement: the count is the orders seen just before.
    assert canceled == 2


def test_binance_conditional_order_is_canceled_at_the_algo_endpoint(binance: Rig) -> None:
    stop = next(o for o in binance.venue.fetch_open_orders() if o.conditional and o.symbol == BTC)

    binance.venue.cancel_order(stop)

    assert binance.wire.one("DELETE", "/fapi/v1/algoOrder").query["algoId"] == "3000001"
    assert binance.wire.to("DELETE", "/fapi/v1/order") == []


def test_binance_cancel_of_an_order_already_gone_is_not_an_error(binance: Rig) -> None:
    order = next(o for o in binance.venue.fetch_open_orders() if not o.conditional)
    binance.wire.on(
        "DELETE", "/fapi/v1/order", {"code": -2011, "msg": "Unknown order sent."}, status=400
    )

    binance.venue.cancel_order(order)

    assert binance.wire.one("DELETE", "/fapi/v1/order").query["orderId"] == order.id


def test_binance_stop_order_goes_to_the_algo_service_with_the_client_id(binance: Rig) -> None:
    order = binance.venue.create_order(
        OrderRequest(
            symbol=BTC,
            side="sell",
            quantity=Decimal("0.010"),
            client_order_id="tc-stop-1",
            type="stop",
            stop_price=Decimal("92000"),
            reduce_only=True,
        )
    )

    body = binance.wire.one("POST", "/fapi/v1/algoOrder").body
    assert (body["type"], body["algoType"], body["triggerPrice"]) == (
        "STOP_MARKET",
        "CONDITIONAL",
        "92000",
    )
    assert (body["clientAlgoId"], body["reduceOnly"]) == ("tc-stop-1", "true")
    assert (order.conditional, order.stop_price, order.client_order_id) == (
        True,
        Decimal("92000"),
        "tc-stop-1",
    )


def test_binance_order_is_found_by_client_id(binance: Rig) -> None:
    order = binance.venue.fetch_order_by_client_id("tcx1-lost", BTC)

    assert order is not None
    assert (order.client_order_id, order.status, order.filled) == (
        "tcx1-lost",
        "closed",
        Decimal("0.01"),
    )
    sent = binance.wire.one("GET", "/fapi/v1/order")
    assert (sent.query["symbol"], sent.query["origClientOrderId"]) == ("BTCUSDT", "tcx1-lost")


def test_binance_conditional_order_is_found_by_client_algo_id(binance: Rig) -> None:
    missing = {"code": -2013, "msg": "Order does not exist."}
    binance.wire.on("GET", "/fapi/v1/order", missing, status=400)

    order = binance.venue.fetch_order_by_client_id("tc-stop-1", BTC)

    assert order is not None
    assert (order.conditional, order.client_order_id, order.stop_price) == (
        True,
        "tc-stop-1",
        Decimal("90000"),
    )
    assert binance.wire.one("GET", "/fapi/v1/algoOrder").query["clientAlgoId"] == "tc-stop-1"


def test_binance_unknown_client_id_is_none(binance: Rig) -> None:
    missing = {"code": -2013, "msg": "Order does not exist."}
    binance.wire.on("GET", "/fapi/v1/order", missing, status=400)
    binance.wire.on("GET", "/fapi/v1/algoOrder", missing, status=400)

    assert binance.venue.fetch_order_by_client_id("never-sent", BTC) is None


def test_binance_balance_is_the_usdt_wallet_and_its_unrealized_pnl(binance: Rig) -> None:
    balance = binance.venue.fetch_balance()

    assert (balance.currency, balance.wallet, balance.unrealized_pnl) == (
        "USDT",
        Decimal("10150.25"),
        Decimal("17.495"),
    )
    assert balance.equity == Decimal("10167.745")


def test_binance_mark_price_comes_from_the_premium_index(binance: Rig) -> None:
    assert binance.venue.fetch_mark_price(BTC) == Decimal("98000.12")
    assert binance.wire.one("GET", "/fapi/v1/premiumIndex").query == {"symbol": "BTCUSDT"}


@pytest.mark.parametrize(
    ("status", "reply", "expected"),
    [
        (400, {"code": -2019, "msg": "Margin is insufficient."}, OrderRejected),
        (400, {"code": -2022, "msg": "ReduceOnly Order is rejected."}, OrderRejected),
        (400, {"code": -4015, "msg": "Client order id is not valid."}, OrderRejected),
        (400, {"code": -4116, "msg": "ClientOrderId is duplicated."}, DuplicateClientOrderId),
        (
            429,
            {"code": -1003, "msg": "Too many requests; current limit is 2400 per minute."},
            RateLimited,
        ),
        (
            418,
            {"code": -1003, "msg": "Way too many requests; IP banned until 1767225900000."},
            RateLimited,
        ),
        (
            401,
            {"code": -2015, "msg": "Invalid API-key, IP, or permissions for action."},
            VenueAuthenticationFailed,
        ),
        (
            408,
            {
                "code": -1007,
                "msg": "Timeout waiting for response from backend server. "
                "Send status unknown; execution status unknown.",
            },
            OutcomeUnknown,
        ),
        (503, "<html><body><h1>503 Service Unavailable</h1></body></html>", OutcomeUnknown),
        (200, requests.exceptions.ReadTimeout("Read timed out. (read timeout=10)"), OutcomeUnknown),
        (200, requests.exceptions.ConnectionError("Connection aborted."), OutcomeUnknown),
    ],
)
def test_binance_order_errors_map_to_what_the_flattener_must_know(
    binance: Rig, status: int, reply: Any, expected: type[VenueError]
) -> None:
    binance.wire.on("POST", "/fapi/v1/order", reply, status=status)
    (btc,) = [p for p in binance.venue.fetch_positions() if p.symbol == BTC]

    with pytest.raises(expected) as raised:
        binance.venue.create_order(close_request(btc))

    if expected is OrderRejected:
        assert not isinstance(raised.value, DuplicateClientOrderId)
    assert len(binance.wire.to("POST", "/fapi/v1/order")) == 1  # ccxt did not retry


@pytest.mark.parametrize(
    ("status", "reply", "expected"),
    [
        (200, requests.exceptions.ReadTimeout("Read timed out."), VenueUnavailable),
        (503, "<html>503 Service Unavailable</html>", VenueUnavailable),
        (429, {"code": -1003, "msg": "Too many requests."}, RateLimited),
        (
            401,
            {"code": -2015, "msg": "Invalid API-key, IP, or permissions for action."},
            VenueAuthenticationFailed,
        ),
    ],
)
def test_binance_read_errors_say_nothing_was_done(
    binance: Rig, status: int, reply: Any, expected: type[VenueError]
) -> None:
    binance.wire.on("GET", "/fapi/v3/positionRisk", reply, status=status)

    with pytest.raises(expected):
        binance.venue.fetch_positions()


def test_binance_timeout_is_resolved_by_asking_for_the_client_id(binance: Rig) -> None:
    (btc,) = [p for p in binance.venue.fetch_positions() if p.symbol == BTC]
    binance.wire.on("POST", "/fapi/v1/order", requests.exceptions.ReadTimeout("Read timed out."))

    with pytest.raises(OutcomeUnknown):
        binance.venue.create_order(close_request(btc, "tcx1-timeout"))
    found = binance.venue.fetch_order_by_client_id("tcx1-timeout", BTC)

    assert found is not None and found.filled == btc.quantity
    assert binance.wire.one("POST", "/fapi/v1/order").body["newClientOrderId"] == "tcx1-timeout"


BATCH_REFUSALS = {
    "tcx1-2": {"code": -2022, "msg": "ReduceOnly Order is rejected."},
    "tcx1-3": {"code": -4116, "msg": "ClientOrderId is duplicated."},
    "tcx1-4": {"code": -1001, "msg": "Internal error; unable to process your request."},
    "tcx1-5": {"code": -9999, "msg": "A code neither ccxt nor tradecore knows."},
}


def _binance_batch(sent: Sent) -> list[dict[str, Any]]:
    """Binance's batch answer: per order, the order or the refusal's code and message."""
    orders = json.loads(sent.body["batchOrders"])
    return [BATCH_REFUSALS.get(o["newClientOrderId"]) or _binance_order(o) for o in orders]


def test_binance_batch_sends_five_orders_a_request_and_maps_each_answer(binance: Rig) -> None:
    positions = {p.symbol: p for p in binance.venue.fetch_positions()}
    binance.wire.on("POST", "/fapi/v1/batchOrders", _binance_batch)
    requests_ = [close_request(positions[(BTC, ETH)[i % 2]], f"tcx1-{i}") for i in range(7)]

    answers = binance.venue.create_orders(requests_)

    kinds = [type(a).__name__ for a in answers]
    assert kinds == [
        "Order",
        "Order",
        "OrderRejected",  # -2022: refused, nothing done
        "DuplicateClientOrderId",  # -4116
        "OutcomeUnknown",  # -1001: the venue cannot say; ask by client id
        "OutcomeUnknown",  # an unknown code: never assumed refused
        "Order",
    ]
    batches = binance.wire.to("POST", "/fapi/v1/batchOrders")
    sent = [[o["newClientOrderId"] for o in json.loads(b.body["batchOrders"])] for b in batches]
    # The batches go at once, so they may reach the wire in either order.
    assert sorted(sent) == [[f"tcx1-{i}" for i in range(5)], ["tcx1-5", "tcx1-6"]]
    assert all(
        o["reduceOnly"] in (True, "true")
        for b in batches
        for o in json.loads(b.body["batchOrders"])
    )
    assert binance.wire.to("POST", "/fapi/v1/order") == []
    assert_binance_signed(batches[0])


def test_binance_batch_that_times_out_leaves_every_order_of_it_unknown(binance: Rig) -> None:
    positions = binance.venue.fetch_positions()
    binance.wire.on(
        "POST", "/fapi/v1/batchOrders", requests.exceptions.ReadTimeout("Read timed out.")
    )

    answers = binance.venue.create_orders(
        [close_request(p, f"tcx1-{i}") for i, p in enumerate(positions)]
    )

    assert len(answers) == 2 and all(isinstance(a, OutcomeUnknown) for a in answers)
    assert len(binance.wire.to("POST", "/fapi/v1/batchOrders")) == 1  # ccxt did not retry


def test_binance_batch_refused_as_a_whole_is_sent_again_one_order_at_a_time(
    binance: Rig,
) -> None:
    positions = binance.venue.fetch_positions()
    refusal = {"code": -1102, "msg": "Mandatory parameter 'batchOrders' was not sent."}
    binance.wire.on("POST", "/fapi/v1/batchOrders", refusal, status=400)

    answers = binance.venue.create_orders(
        [close_request(p, f"tcx1-{i}") for i, p in enumerate(positions)]
    )

    assert all(isinstance(a, Order) and a.filled > 0 for a in answers)
    singles = [s.body["newClientOrderId"] for s in binance.wire.to("POST", "/fapi/v1/order")]
    assert singles == ["tcx1-0", "tcx1-1"]


def test_binance_batch_answer_that_does_not_add_up_is_an_unknown_outcome(binance: Rig) -> None:
    positions = {p.symbol: p for p in binance.venue.fetch_positions()}
    binance.wire.on("POST", "/fapi/v1/batchOrders", lambda sent: _binance_batch(sent)[:2])
    requests_ = [close_request(positions[(BTC, ETH)[i % 2]], f"tcx1-{i}") for i in range(3)]

    answers = binance.venue.create_orders(requests_)

    assert all(isinstance(a, OutcomeUnknown) for a in answers)  # looked up, never assumed


def _bybit_batch(refusals: dict[str, dict[str, Any]]) -> Callable[[Sent], Any]:
    """Bybit's batch answer: the orders in ``result``, each one's code in ``retExtInfo``; a
    refused order keeps no id."""

    def answer(sent: Sent) -> Any:
        orders = sent.body["request"]
        listed, codes = [], []
        for i, o in enumerate(orders):
            refused = refusals.get(o["orderLinkId"])
            listed.append(
                {
                    "category": "linear",
                    "symbol": o["symbol"],
                    "orderId": "" if refused else f"1f2e3d4c-5b6a-4978-8a9b-0c1d2e3f4a{i:02d}",
                    "orderLinkId": "" if refused else o["orderLinkId"],
                    "createAt": "" if refused else "1767225601234",
                }
            )
            codes.append(refused or {"code": 0, "msg": "OK"})
        return {
            **bybit_ok({"list": listed}),
            "retExtInfo": {"list": codes},
        }

    return answer


def test_bybit_batch_sends_ten_orders_a_request_and_maps_each_answer(bybit: Rig) -> None:
    positions = {p.symbol: p for p in bybit.venue.fetch_positions()}
    refusals = {
        "tcx1-1": {"code": 110017, "msg": "Reduce-only rule not satisfied"},
        "tcx1-2": {"code": 110072, "msg": "OrderLinkedID is duplicate"},
    }
    bybit.wire.on("POST", "/v5/order/create-batch", _bybit_batch(refusals))
    requests_ = [close_request(positions[(BTC, ETH)[i % 2]], f"tcx1-{i}") for i in range(12)]
    stop = OrderRequest(
        BTC, "sell", Decimal("0.01"), "tcx1-stop", "stop", stop_price=Decimal(90000)
    )

    *answers, stop_answer = bybit.venue.create_orders([*requests_, stop])

    assert isinstance(answers[1], OrderRejected)
    assert not isinstance(answers[1], DuplicateClientOrderId)
    assert isinstance(answers[2], DuplicateClientOrderId)
    accepted = [a for i, a in enumerate(answers) if i not in (1, 2)]
    assert all(isinstance(a, Order) for a in accepted)
    assert [a.client_order_id for a in accepted if isinstance(a, Order)] == [
        f"tcx1-{i}" for i in range(12) if i not in (1, 2)
    ]
    batches = bybit.wire.to("POST", "/v5/order/create-batch")
    assert sorted(len(b.body["request"]) for b in batches) == [2, 10]  # sent at once
    assert batches[0].body["category"] == "linear"
    assert all(o["reduceOnly"] in (True, "true") for b in batches for o in b.body["request"])
    # A conditional order is never batched: it goes alone, as create_order sends it.
    assert isinstance(stop_answer, Order)
    (alone,) = bybit.wire.to("POST", "/v5/order/create")
    assert alone.body["orderLinkId"] == "tcx1-stop"


# -- Bybit ---------------------------------------------------------------------------------


def bybit_ok(result: Any) -> dict[str, Any]:
    return {"retCode": 0, "retMsg": "OK", "result": result, "retExtInfo": {}, "time": 1767225600000}


def bybit_error(code: int, message: str) -> dict[str, Any]:
    return {
        "retCode": code,
        "retMsg": message,
        "result": {},
        "retExtInfo": {},
        "time": 1767225600000,
    }


def _bybit_orders(wire: CannedVenue) -> Callable[[Sent], Any]:
    def answer(sent: Sent) -> Any:
        q = sent.query
        name = (
            "orders_conditional.json" if q.get("orderFilter") == "StopOrder" else "orders_open.json"
        )
        reply = wire.fixture(name)
        rows = reply["result"]["list"]
        rows[:] = [
            r
            for r in rows
            if r["symbol"] == q.get("symbol", r["symbol"])
            and r["orderLinkId"] == q.get("orderLinkId", r["orderLinkId"])
        ]
        return reply

    return answer


def _bybit_cancel_all(wire: CannedVenue) -> Callable[[Sent], Any]:
    def answer(sent: Sent) -> Any:
        stop = sent.body.get("orderFilter") == "StopOrder"
        rows = wire.fixture("orders_open.json")["result"]["list"]
        canceled = [
            {"orderId": r["orderId"], "orderLinkId": r["orderLinkId"]}
            for r in rows
            if r["symbol"] == sent.body["symbol"] and (r["stopOrderType"] != "") == stop
        ]
        return bybit_ok({"list": canceled, "success": "1"})

    return answer


def _bybit_leverage(wire: CannedVenue) -> None:
    """A per-symbol leverage that /v5/position/set-leverage sets (110043 when unchanged)
    and /v5/position/list reports, as Bybit does."""
    held: dict[str, str] = {}

    def change(sent: Sent) -> Any:
        symbol, asked = sent.body["symbol"], sent.body["buyLeverage"]
        if Decimal(held.get(symbol, "10")) == Decimal(asked):
            return bybit_error(110043, "Set leverage not modified")
        held[symbol] = asked
        return bybit_ok({})

    def positions(sent: Sent) -> Any:
        reply = wire.fixture("positions.json")
        rows = reply["result"]["list"]
        rows[:] = [r for r in rows if r["symbol"] == sent.query.get("symbol", r["symbol"])]
        for row in rows:
            row["leverage"] = held.get(row["symbol"], row["leverage"])
        return reply

    wire.on("POST", "/v5/position/set-leverage", change)
    wire.on("GET", "/v5/position/list", positions)


def bybit_wire() -> CannedVenue:
    wire = CannedVenue("bybit")
    wire.on("GET", "/v5/market/instruments-info", "instruments.json")
    wire.on(
        "GET",
        "/v5/market/instruments-info",
        "instruments_prelaunch.json",
        when=lambda s: s.query.get("status") == "PreLaunch",
    )
    wire.on("GET", "/v5/user/query-api", "query_api.json")
    wire.on("GET", "/v5/account/info", "account_info.json")
    _bybit_leverage(wire)
    wire.on("GET", "/v5/order/realtime", _bybit_orders(wire))
    wire.on(
        "GET",
        "/v5/order/history",
        bybit_ok({"list": [], "nextPageCursor": "", "category": "linear"}),
    )
    wire.on("GET", "/v5/account/wallet-balance", "wallet_balance.json")
    wire.on("GET", "/v5/market/tickers", "tickers.json")
    wire.on(
        "POST",
        "/v5/order/create",
        lambda s: bybit_ok(
            {
                "orderId": "1f2e3d4c-5b6a-4978-8a9b-0c1d2e3f4a5b",
                "orderLinkId": s.body["orderLinkId"],
            }
        ),
    )
    wire.on("POST", "/v5/order/cancel-all", _bybit_cancel_all(wire))
    wire.on(
        "POST",
        "/v5/order/cancel",
        lambda s: bybit_ok({"orderId": s.body["orderId"], "orderLinkId": ""}),
    )
    return wire


@pytest.fixture
def bybit() -> Rig:
    wire = bybit_wire()
    exchange = offline(ccxt.bybit({"apiKey": KEY, "secret": SECRET}), wire)
    return Rig(CcxtVenue(exchange), wire)


def assert_bybit_signed(sent: Sent) -> None:
    """X-BAPI-SIGN: HMAC-SHA256 of timestamp + key + recv window + (body or query)."""
    h = sent.headers
    payload = sent.raw_body or urlsplit(sent.url).query
    text = h["X-BAPI-TIMESTAMP"] + KEY + h["X-BAPI-RECV-WINDOW"] + payload
    assert h["X-BAPI-SIGN"] == hmac.new(SECRET.encode(), text.encode(), hashlib.sha256).hexdigest()
    assert h["X-BAPI-API-KEY"] == KEY


def test_bybit_positions_are_parsed_with_side_quantity_entry_and_one_way_mode(bybit: Rig) -> None:
    positions = {p.symbol: p for p in bybit.venue.fetch_positions()}

    assert set(positions) == {BTC, ETH}
    btc, eth = positions[BTC], positions[ETH]
    assert (btc.side, btc.quantity, btc.entry_price, btc.mode) == (
        "long",
        Decimal("0.01"),
        Decimal("97250.5"),
        "one_way",
    )
    assert (btc.mark_price, btc.unrealized_pnl) == (Decimal("98000"), Decimal("7.495"))
    assert (eth.side, eth.quantity, eth.entry_price) == ("short", Decimal("0.5"), Decimal("3400"))
    sent = bybit.wire.to("GET", "/v5/position/list")  # one listing a settle coin
    assert sorted((s.query["category"], s.query["settleCoin"]) for s in sent) == [
        ("linear", "USDC"),
        ("linear", "USDT"),
    ]
    for request in sent:
        assert_bybit_signed(request)


def test_bybit_hedge_mode_positions_are_reported_per_position_index(bybit: Rig) -> None:
    bybit.wire.on("GET", "/v5/position/list", "positions_hedge.json")

    positions = sorted(bybit.venue.fetch_positions(), key=lambda p: p.side)

    assert [(p.symbol, p.side, p.quantity, p.mode) for p in positions] == [
        (BTC, "long", Decimal("0.01"), "hedge"),
        (BTC, "short", Decimal("0.02"), "hedge"),
    ]


def test_bybit_reduce_only_market_close_is_sent_in_bybit_wire_format(bybit: Rig) -> None:
    (btc,) = [p for p in bybit.venue.fetch_positions() if p.symbol == BTC]

    order = bybit.venue.create_order(close_request(btc))

    sent = bybit.wire.one("POST", "/v5/order/create")
    assert sent.host == "api.bybit.com"
    assert sent.body == {
        "category": "linear",
        "symbol": "BTCUSDT",
        "side": "Sell",
        "orderType": "Market",
        "qty": "0.01",
        "reduceOnly": True,
        "orderLinkId": "tcx1-close-btc",
    }
    assert_bybit_signed(sent)
    # Bybit acknowledges with the ids only: the rest is the request, the state still open.
    assert (order.id, order.client_order_id, order.status) == (
        "1f2e3d4c-5b6a-4978-8a9b-0c1d2e3f4a5b",
        "tcx1-close-btc",
        "open",
    )
    assert (order.side, order.quantity, order.reduce_only) == ("sell", Decimal("0.01"), True)


def test_bybit_hedge_mode_close_names_the_position_index_and_stays_reduce_only(bybit: Rig) -> None:
    bybit.wire.on("GET", "/v5/position/list", "positions_hedge.json")
    long = next(p for p in bybit.venue.fetch_positions() if p.side == "long")

    bybit.venue.create_order(close_request(long, "tcx1-close-btc-long"))

    body = bybit.wire.one("POST", "/v5/order/create").body
    assert (body["side"], body["positionIdx"], body["reduceOnly"], body["qty"]) == (
        "Sell",
        1,
        True,
        "0.01",
    )


@pytest.mark.parametrize(
    ("fixture", "mode"), [("positions_hedge.json", "hedge"), ("positions.json", "one_way")]
)
def test_bybit_position_mode_is_read_from_the_symbols_position_slots(
    bybit: Rig, fixture: str, mode: str
) -> None:
    bybit.wire.on("GET", "/v5/position/list", fixture)

    assert bybit.venue.fetch_position_mode(BTC) == mode
    sent = bybit.wire.one("GET", "/v5/position/list")
    assert (sent.query["category"], sent.query["symbol"]) == ("linear", "BTCUSDT")


def test_bybit_hedge_mode_entry_and_exit_name_their_position_index(bybit: Rig) -> None:
    entry = OrderRequest(BTC, "sell", Decimal("0.01"), "tc-entry-short")
    exit_ = OrderRequest(BTC, "sell", Decimal("0.01"), "tc-exit-long", reduce_only=True)

    for request in (entry, exit_):
        bybit.venue.create_order(in_mode(request, "hedge"))

    sent = [s.body for s in bybit.wire.to("POST", "/v5/order/create")]
    assert [(b["side"], b["positionIdx"], b.get("reduceOnly", False)) for b in sent] == [
        ("Sell", 2, False),
        ("Sell", 1, True),
    ]


def test_bybit_open_orders_include_conditional_orders_once(bybit: Rig) -> None:
    orders = bybit.venue.fetch_open_orders()

    assert sorted((o.client_order_id, o.conditional, o.type, o.stop_price) for o in orders) == [
        ("sl-btc-1", True, "stop", Decimal("92000")),
        ("tp-eth-1", False, "limit", None),
    ]
    listings = bybit.wire.to("GET", "/v5/order/realtime")  # each kind, each settle coin
    assert sorted((s.query.get("orderFilter", ""), s.query["settleCoin"]) for s in listings) == [
        ("", "USDC"),
        ("", "USDT"),
        ("StopOrder", "USDC"),
        ("StopOrder", "USDT"),
    ]
    assert all("symbol" not in s.query for s in listings)


def test_bybit_open_orders_follow_the_page_cursor(bybit: Rig) -> None:
    template = bybit.wire.fixture("orders_open.json")["result"]["list"][0]
    page = [{**template, "orderId": f"id-{i}", "orderLinkId": f"link-{i}"} for i in range(50)]
    bybit.wire.on(
        "GET",
        "/v5/order/realtime",
        bybit_ok({"list": page, "nextPageCursor": "page%3D2", "category": "linear"}),
        when=lambda s: "orderFilter" not in s.query and "cursor" not in s.query,
    )
    bybit.wire.on(
        "GET",
        "/v5/order/realtime",
        bybit_ok(
            {"list": [{**template, "orderId": "id-50"}], "nextPageCursor": "", "category": "linear"}
        ),
        when=lambda s: s.query.get("cursor") == "page%3D2",
    )

    orders = bybit.venue.fetch_open_orders()

    assert len([o for o in orders if not o.conditional]) == 51
    assert [s.query["limit"] for s in bybit.wire.to("GET", "/v5/order/realtime")][:2] == [
        "50",
        "50",
    ]


def test_bybit_cancel_all_cancels_regular_and_conditional_orders_of_the_symbol(bybit: Rig) -> None:
    canceled = bybit.venue.cancel_all_orders(BTC)

    bodies = [s.body for s in bybit.wire.to("POST", "/v5/order/cancel-all")]
    assert bodies == [
        {"category": "linear", "symbol": "BTCUSDT"},
        {"category": "linear", "symbol": "BTCUSDT", "orderFilter": "StopOrder"},
    ]
    assert canceled == 1  # Bybit lists what it canceled: the one conditional BTC order
    for sent in bybit.wire.to("POST", "/v5/order/cancel-all"):
        assert_bybit_signed(sent)


def test_bybit_conditional_order_is_canceled_by_id(bybit: Rig) -> None:
    stop = next(o for o in bybit.venue.fetch_open_orders() if o.conditional)

    bybit.venue.cancel_order(stop)

    assert bybit.wire.one("POST", "/v5/order/cancel").body == {
        "category": "linear",
        "symbol": "BTCUSDT",
        "orderId": "7e3d2b1a-0c4f-4e5a-8b6c-2d9e0f1a3b44",
    }


def test_bybit_cancel_of_an_order_already_gone_is_not_an_error(bybit: Rig) -> None:
    stop = next(o for o in bybit.venue.fetch_open_orders() if o.conditional)
    bybit.wire.on("POST", "/v5/order/cancel", bybit_error(110001, "Order does not exist."))

    bybit.venue.cancel_order(stop)  # no raise: gone is what a cancel wants

    # The cancel was really sent for this order, once (not retried): the quiet return above
    # is the venue's "does not exist" taken as done, not a cancel that never left.
    assert bybit.wire.one("POST", "/v5/order/cancel").body["orderId"] == stop.id


def test_bybit_stop_order_carries_trigger_price_and_direction(bybit: Rig) -> None:
    bybit.venue.create_order(
        OrderRequest(
            symbol=BTC,
            side="sell",
            quantity=Decimal("0.01"),
            client_order_id="tc-stop-1",
            type="stop",
            stop_price=Decimal("92000"),
            reduce_only=True,
        )
    )

    body = bybit.wire.one("POST", "/v5/order/create").body
    assert (body["orderType"], body["triggerPrice"], body["triggerDirection"]) == (
        "Market",
        "92000",
        2,
    )
    assert (body["orderLinkId"], body["reduceOnly"]) == ("tc-stop-1", True)


def test_bybit_order_is_found_by_client_id_in_the_history(bybit: Rig) -> None:
    bybit.wire.on("GET", "/v5/order/history", "order_filled.json")

    order = bybit.venue.fetch_order_by_client_id("CLIENT_ID", BTC)

    assert order is not None
    assert (order.status, order.filled, order.average_price) == (
        "closed",
        Decimal("0.01"),
        Decimal("97990.1"),
    )
    open_query = bybit.wire.one("GET", "/v5/order/realtime").query
    history_query = bybit.wire.one("GET", "/v5/order/history").query
    assert open_query["orderLinkId"] == history_query["orderLinkId"] == "CLIENT_ID"
    assert history_query["symbol"] == "BTCUSDT"


def test_bybit_unknown_client_id_is_none(bybit: Rig) -> None:
    assert bybit.venue.fetch_order_by_client_id("never-sent", BTC) is None


def test_bybit_balance_is_the_usdt_wallet_and_its_unrealized_pnl(bybit: Rig) -> None:
    balance = bybit.venue.fetch_balance()

    assert (balance.wallet, balance.unrealized_pnl, balance.equity) == (
        Decimal("10150.25"),
        Decimal("17.495"),
        Decimal("10167.745"),
    )
    assert bybit.wire.one("GET", "/v5/account/wallet-balance").query["accountType"] == "UNIFIED"


def test_bybit_mark_price_comes_from_the_ticker(bybit: Rig) -> None:
    assert bybit.venue.fetch_mark_price(BTC) == Decimal("98000.12")


@pytest.mark.parametrize(
    ("status", "reply", "expected"),
    [
        (200, bybit_error(110007, "ab not enough for new order"), OrderRejected),
        (200, bybit_error(110017, "Reduce-only rule not satisfied"), OrderRejected),
        (200, bybit_error(110072, "OrderLinkedID is duplicate"), DuplicateClientOrderId),
        (200, bybit_error(10006, "Too many visits!"), RateLimited),
        (403, "access too frequent", RateLimited),
        (200, bybit_error(10003, "API key is invalid."), VenueAuthenticationFailed),
        (200, bybit_error(10016, "Server error."), OutcomeUnknown),
        (200, requests.exceptions.ReadTimeout("Read timed out."), OutcomeUnknown),
    ],
)
def test_bybit_order_errors_map_to_what_the_flattener_must_know(
    bybit: Rig, status: int, reply: Any, expected: type[VenueError]
) -> None:
    bybit.wire.on("POST", "/v5/order/create", reply, status=status)
    (btc,) = [p for p in bybit.venue.fetch_positions() if p.symbol == BTC]

    with pytest.raises(expected) as raised:
        bybit.venue.create_order(close_request(btc))

    if expected is OrderRejected:
        assert not isinstance(raised.value, DuplicateClientOrderId)
    assert len(bybit.wire.to("POST", "/v5/order/create")) == 1


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (bybit_error(10006, "Too many visits!"), RateLimited),
        (bybit_error(10003, "API key is invalid."), VenueAuthenticationFailed),
        (requests.exceptions.ConnectionError("Connection aborted."), VenueUnavailable),
    ],
)
def test_bybit_read_errors_say_nothing_was_done(
    bybit: Rig, reply: Any, expected: type[VenueError]
) -> None:
    bybit.wire.on("GET", "/v5/position/list", reply)

    with pytest.raises(expected):
        bybit.venue.fetch_positions()


def test_a_position_in_a_market_listed_since_start_reloads_the_markets(binance: Rig) -> None:
    full = binance.wire.fixture("exchangeInfo.json")
    loads: list[int] = []

    def exchange_info(sent: Sent) -> Any:
        loads.append(1)
        if len(loads) == 1:  # ETHUSDT not listed yet when the venue started
            return {**full, "symbols": [s for s in full["symbols"] if s["symbol"] != "ETHUSDT"]}
        return full

    binance.wire.on("GET", "/fapi/v1/exchangeInfo", exchange_info)

    positions = binance.venue.fetch_positions()

    assert {p.symbol for p in positions} == {BTC, ETH}
    assert len(loads) == 2


def test_cancel_all_is_sent_even_when_the_listing_before_it_fails(bybit: Rig) -> None:
    bybit.wire.on("GET", "/v5/order/realtime", bybit_error(10006, "Too many visits!"))

    canceled = bybit.venue.cancel_all_orders(BTC)

    assert len(bybit.wire.to("POST", "/v5/order/cancel-all")) == 2
    assert canceled == 1  # Bybit's own list of what it canceled


def test_the_portable_dialect_uses_ccxt_hedged_and_refuses_a_side_it_would_get_wrong() -> None:
    close_long = OrderRequest(
        symbol=BTC,
        side="sell",
        quantity=Decimal(1),
        client_order_id="c1",
        reduce_only=True,
        position_side="long",
    )
    assert Dialect().order_params(close_long) == {
        "clientOrderId": "c1",
        "reduceOnly": True,
        "hedged": True,
    }
    with pytest.raises(OrderRejected):
        Dialect().order_params(replace(close_long, position_side="short"))


# -- construction and secrets --------------------------------------------------------------


def env(exchange_id: str, **extra: str) -> dict[str, str]:
    prefix = f"TRADECORE_{exchange_id.upper()}_API_"
    return {
        prefix + "KEY": KEY,
        prefix + "SECRET": SECRET,
        **{prefix + k: v for k, v in extra.items()},
    }


def test_from_id_takes_the_keys_from_the_environment_for_swap_markets() -> None:
    venue = CcxtVenue.from_id("bybit", environ=env("bybit"))
    wire = bybit_wire()
    offline(venue._exchange, wire)

    venue.fetch_positions()

    assert venue.name == "ccxt:bybit"
    assert venue._exchange.options["defaultType"] == "swap"
    for sent in wire.to("GET", "/v5/position/list"):
        assert_bybit_signed(sent)


@pytest.mark.parametrize(
    ("exchange_id", "wire", "hosts"),
    [
        ("binanceusdm", binance_wire, {"demo-fapi.binance.com"}),
        ("bybit", bybit_wire, {"api-demo.bybit.com"}),
    ],
)
def test_from_id_sandbox_trades_on_the_demo_environment(
    exchange_id: str, wire: Callable[[], CannedVenue], hosts: set[str]
) -> None:
    venue = CcxtVenue.from_id(exchange_id, sandbox=True, environ=env(exchange_id))
    canned = wire()
    offline(venue._exchange, canned)

    venue.fetch_positions()
    venue.fetch_open_orders()

    assert venue.sandbox
    assert {s.host for s in canned.sent} == hosts


def test_from_id_names_the_missing_variable_never_a_value() -> None:
    environ = {"TRADECORE_BYBIT_API_KEY": KEY}

    with pytest.raises(CcxtConfigurationError, match="TRADECORE_BYBIT_API_SECRET") as raised:
        CcxtVenue.from_id("bybit", environ=environ)

    assert KEY not in str(raised.value)


def test_from_id_asks_for_the_password_an_exchange_needs() -> None:
    with pytest.raises(CcxtConfigurationError, match="TRADECORE_OKX_API_PASSWORD"):
        CcxtVenue.from_id("okx", environ=env("okx"))


def test_an_exchange_without_cancel_all_is_refused_at_construction() -> None:
    with pytest.raises(CcxtConfigurationError, match="cancelAllOrders"):
        CcxtVenue.from_id("okx", environ=env("okx", PASSWORD="pass-phrase-1"))


def test_an_unknown_exchange_id_is_refused() -> None:
    with pytest.raises(CcxtConfigurationError, match="no-such-venue"):
        CcxtVenue.from_id("no-such-venue", environ={})


def test_keys_never_appear_in_repr_errors_or_logs(
    binance: Rig, bybit: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    binance.wire.on(
        "GET", "/fapi/v3/positionRisk", {"code": -2015, "msg": f"Invalid API-key {KEY}"}, status=401
    )
    bybit.wire.on("GET", "/v5/position/list", bybit_error(10003, f"API key {KEY} is invalid."))
    errors: list[VenueError] = []
    for rig in (binance, bybit):
        with pytest.raises(VenueAuthenticationFailed) as raised:
            rig.venue.fetch_positions()
        errors.append(raised.value)

    shown = [repr(binance.venue), repr(bybit.venue), *map(str, errors), caplog.text]
    assert "X-MBX-APIKEY" in caplog.text and "X-BAPI-API-KEY" in caplog.text  # ccxt did log headers
    for text in shown:
        assert KEY not in text and SECRET not in text
    assert repr(binance.venue) == "CcxtVenue(name='ccxt:binanceusdm', sandbox=False)"


def test_every_request_was_answered_by_the_canned_venue(binance: Rig, bybit: Rig) -> None:
    for rig in (binance, bybit):
        rig.venue.fetch_positions()
        rig.venue.fetch_open_orders()
        rig.venue.fetch_balance()
        rig.venue.cancel_all_orders(BTC)

    hosts = {s.host for rig in (binance, bybit) for s in rig.wire.sent}
    assert hosts == {"fapi.binance.com", "api.bybit.com"}
    assert len(binance.wire.sent) + len(bybit.wire.sent) > 10


def test_contracts_count_in_base_currency_through_the_contract_size() -> None:
    # OKX-style contracts of 0.01 BTC: three of them are 0.03 BTC in the port's units.
    raw = {"symbol": BTC, "contracts": 3.0, "contractSize": 0.01, "side": "short"}

    position = position_from_ccxt(raw, Decimal(1))

    assert position is not None and position.quantity == Decimal("0.03")


# -- can the venue report equity? ------------------------------------------------------------


def test_mapped_venues_report_equity_and_an_unmapped_one_says_what_is_missing(
    binance: Rig, bybit: Rig
) -> None:
    assert binance.venue.equity_unsupported() is None
    assert bybit.venue.equity_unsupported() is None
    gate = CcxtVenue(ccxt.gate({"apiKey": KEY, "secret": SECRET}))
    missing = gate.equity_unsupported()
    assert missing is not None and "ccxt:gate cannot report equity" in missing
    assert "wallet and unrealized PnL" in missing and "ccxt:bybit" in missing


# -- leverage ------------------------------------------------------------------------------


def test_binance_leverage_is_set_and_read_back_per_symbol(binance: Rig) -> None:
    binance.venue.set_leverage(BTC, Decimal(3))

    assert binance.venue.fetch_leverage(BTC) == Decimal(3)
    sent = binance.wire.one("POST", "/fapi/v1/leverage")
    assert (sent.body["symbol"], sent.body["leverage"]) == ("BTCUSDT", "3")
    assert_binance_signed(sent)
    assert binance.wire.one("GET", "/fapi/v1/symbolConfig").query["symbol"] == "BTCUSDT"


def test_binance_refuses_a_fractional_leverage_without_sending_it(binance: Rig) -> None:
    with pytest.raises(OrderRejected, match="whole-number"):
        binance.venue.set_leverage(BTC, Decimal("1.5"))

    assert binance.wire.to("POST", "/fapi/v1/leverage") == []


def test_binance_leverage_refused_by_the_venue_is_order_rejected(binance: Rig) -> None:
    binance.wire.on(
        "POST", "/fapi/v1/leverage", {"code": -4028, "msg": "Leverage 3 is not valid"}, status=400
    )

    with pytest.raises(OrderRejected, match="-4028"):
        binance.venue.set_leverage(BTC, Decimal(3))


def test_bybit_leverage_is_set_on_both_sides_and_read_from_the_position_list(bybit: Rig) -> None:
    bybit.venue.set_leverage(BTC, Decimal("1.5"))

    assert bybit.venue.fetch_leverage(BTC) == Decimal("1.5")  # ccxt's parse would say 1
    sent = bybit.wire.one("POST", "/v5/position/set-leverage")
    assert sent.body == {
        "symbol": "BTCUSDT",
        "buyLeverage": "1.5",
        "sellLeverage": "1.5",
        "category": "linear",
    }
    assert_bybit_signed(sent)


def test_bybit_leverage_not_modified_is_success(bybit: Rig) -> None:
    bybit.venue.set_leverage(BTC, Decimal(10))  # the fixture's leverage already: 110043

    assert bybit.venue.fetch_leverage(BTC) == Decimal(10)
    assert len(bybit.wire.to("POST", "/v5/position/set-leverage")) == 1


def test_positions_report_the_venue_leverage_where_ccxt_parses_it(bybit: Rig) -> None:
    positions = {p.symbol: p for p in bybit.venue.fetch_positions()}

    assert positions[BTC].leverage == Decimal(10)
