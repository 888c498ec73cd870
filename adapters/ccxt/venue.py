"""Any ccxt futures exchange as an ``ExchangePort``: ``ccxt:binanceusdm``, ``ccxt:bybit``, ...

The portable path: ccxt's unified calls (``fetch_positions``, ``fetch_open_orders``,
``create_order`` with ``reduceOnly``, ``cancel_all_orders`` per symbol), checked against
``exchange.has`` when the venue is built. What the unified API leaves to each venue is
gathered in one small ``Dialect`` per exchange:

- Conditional orders. Binance USD-M keeps them in its Algo service (``/fapi/v1/openAlgoOrders``,
  ``/fapi/v1/algoOpenOrders``, ``/fapi/v1/algoOrder``), reached through ccxt with
  ``{"trigger": True}``; its ids are another number space. Bybit lists every kind of open order
  at ``/v5/order/realtime`` and filters conditional ones with ``orderFilter=StopOrder`` (ccxt's
  ``trigger``), so both listings are read and merged by order id. Cancel-all is sent for both
  kinds on both venues.
- Hedge mode. The position side goes in the venue's own parameter. Binance
  (``positionSide=LONG|SHORT``) refuses ``reduceOnly`` in hedge mode, so it is left out and
  the position side alone makes the order a close; Bybit (``positionIdx=1|2``) accepts
  ``reduceOnly`` there and keeps it.
- Client order ids. ccxt's unified ``clientOrderId`` becomes Binance's ``newClientOrderId``
  (``clientAlgoId`` for conditional orders) and Bybit's ``orderLinkId``. A duplicate id is an
  ``InvalidOrder`` in ccxt for both venues, so the dialect names the venue codes (Binance
  -4116, Bybit 110072) that mean ``DuplicateClientOrderId``.
- Balances. ccxt's unified ``total`` is the margin balance on Binance and the wallet elsewhere;
  the wallet and unrealized PnL are read from the venue's own fields instead.

Other exchange ids get the base ``Dialect``: ccxt's unified parameters, untested against
those venues, and no balance until someone maps its fields.

Round trips, not requests: every request is a network round trip, so the independent
requests of one call go out together from a small thread pool (both order listings; the
cancel-alls of every symbol; every close batch), each element's outcome kept apart as before,
and the venue says ``concurrent_requests`` so the flattener overlaps its own independent
calls. Their pace is set by one limiter of ccxt's costs over the venue's published window
(``adapters/ccxt/limits.py``) instead of ccxt's, which spaces requests one after another.
A cancel-all's count comes from its answer (Bybit lists what it canceled) or, where the
answer is a bare acknowledgement (Binance), from the latest listing; no listing is made for
it. Bybit only acknowledges market orders: ``fetch_fills`` reads their fills from one listing
of recent orders, apart from sending them, so a caller can read them together with its next
read (the flattener's check) instead of one round trip before it.

Keys come from ``TRADECORE_<ID>_API_KEY`` / ``_API_SECRET`` / ``_API_PASSWORD``; they never
appear in ``repr``, in an error message or in a log line (ccxt's own DEBUG log of request
headers goes through a redacting logger).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from decimal import Decimal
from functools import partial
from typing import Any, TypeVar

import ccxt  # type: ignore[import-untyped]

from adapters.ccxt.binance import BinanceUsdm
from adapters.ccxt.bybit import Bybit
from adapters.ccxt.dialect import Dialect, Raw
from adapters.ccxt.errors import (
    CcxtConfigurationError,
    RedactingLogger,
    batch_element_error,
    order_error,
    read_error,
    venue_error_code,
)
from adapters.ccxt.limits import (
    RoundTrips,
    SlidingWindowLimiter,
    install_limiter,
    time_requests,
)
from adapters.ccxt.mapping import (
    contract_size,
    match_batch_answer,
    order_from_ccxt,
    plain,
    position_from_ccxt,
    positive,
    refused,
)
from domain.market_data import Candles, candles_from_rows
from domain.venue import (
    Balance,
    CashTransfer,
    Order,
    OrderRejected,
    OrderRequest,
    OutcomeUnknown,
    Position,
    PositionMode,
    VenueError,
    outcome_of,
)

log = logging.getLogger(__name__)

T = TypeVar("T")


# What the flattener cannot do without; checked against `exchange.has` at construction.
REQUIRED_CAPABILITIES = (
    "fetchPositions",
    "fetchOpenOrders",
    "createOrder",
    "createReduceOnlyOrder",
    "cancelOrder",
    "cancelAllOrders",
    "fetchOrder",
)


DIALECTS: dict[str, Callable[[], Dialect]] = {"binanceusdm": BinanceUsdm, "bybit": Bybit}


def dialect_for(exchange_id: str) -> Dialect:
    return DIALECTS.get(exchange_id, Dialect)()


# -- the venue -----------------------------------------------------------------------------


class CcxtVenue:
    """Implements ``domain.venue.ExchangePort`` over a synchronous ccxt exchange."""

    # The position endpoints of Binance and Bybit are fed by their account services, which
    # can trail a fill by a few milliseconds (counted from the fill at the venue).
    position_lag = 0.02
    # Each request is a network round trip: independent ones go out together.
    concurrent_requests = True
    # Requests in flight at once, at most; the rate limiter decides how fast they start.
    max_in_flight = 64
    # Threads of the pool started when it is made, before any step needs them: a flatten's
    # sweep on Binance is 20-30 requests, and a thread started in the middle of a step makes
    # its request leave late (a millisecond or more each on a busy machine: the last of 24
    # went out up to 40 ms late, measured with tests/ccxt_sim.py).
    warm_threads = 32
    # A ledger read weighs 30 on Binance (of 2,400 a minute): read it every 30 s, and at
    # once when a jump in equity is held for confirmation (the breaker's re-read).
    transfer_interval = 30.0

    def __init__(
        self,
        exchange: Any,
        *,
        sandbox: bool = False,
        settle_currency: str = "USDT",
        dialect: Dialect | None = None,
    ) -> None:
        """Wrap an already built ccxt exchange (tests inject one).

        Raises CcxtConfigurationError when the exchange lacks a capability the flattener
        needs or has no credentials.
        """
        self.name = f"ccxt:{exchange.id}"
        self.sandbox = sandbox
        self.settle_currency = settle_currency
        missing = [cap for cap in REQUIRED_CAPABILITIES if not exchange.has.get(cap)]
        if missing:
            raise CcxtConfigurationError(f"{self.name} lacks {', '.join(missing)}")
        if not exchange.check_required_credentials(False):
            raise CcxtConfigurationError(f"{self.name}: API credentials are missing")
        self._exchange = exchange
        self._dialect = dialect or dialect_for(exchange.id)
        self._secrets = tuple(
            value
            for value in (
                getattr(exchange, field, None)
                for field in ("apiKey", "secret", "password", "uid", "privateKey", "token")
            )
            if isinstance(value, str) and value
        )
        exchange.options = exchange.deep_extend(exchange.options, dict(self._dialect.options))
        # ccxt prints request headers (the API key) in verbose mode and logs them at DEBUG.
        exchange.verbose = False
        exchange.logger = RedactingLogger(
            logging.getLogger(f"tradecore.ccxt.{exchange.id}"), self._secrets
        )
        # Timed inside the limiter: a request's network round trip, not its wait for budget.
        self.round_trips: RoundTrips = time_requests(exchange)
        # Requests go out from several threads at once: ccxt's own limiter spaces them one
        # after another, so it gives way to one of the same rules that allows the venue's
        # bursts. An exchange built without rate limiting (the offline tests) keeps none.
        self.limiter: SlidingWindowLimiter | None = (
            install_limiter(exchange, self._dialect.rate_rule) if exchange.enableRateLimit else None
        )
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        # The latest listing of every open order: order id -> (symbol, conditional). A
        # cancel-all answered without a list of what it canceled is counted from it.
        self._listed: dict[str, tuple[str, bool]] | None = None
        self._account_mode: PositionMode | None = None  # see fetch_position_mode

    @classmethod
    def from_id(
        cls,
        exchange_id: str,
        *,
        sandbox: bool = False,
        environ: Mapping[str, str] = os.environ,
        settle_currency: str = "USDT",
    ) -> CcxtVenue:
        """Build ``ccxt.<exchange_id>`` for its swap markets with keys from the environment:
        ``TRADECORE_<ID>_API_KEY``, ``_API_SECRET`` and, when the exchange needs one,
        ``_API_PASSWORD``. ``sandbox`` selects the venue's demo-trading environment when ccxt
        offers one (Binance futures has no testnet left in ccxt), else its testnet.

        Raises CcxtConfigurationError naming what is wrong (variable names, never values).
        """
        if exchange_id not in ccxt.exchanges:
            raise CcxtConfigurationError(f"unknown ccxt exchange id {exchange_id!r}")
        prefix = f"TRADECORE_{exchange_id.upper()}_API_"
        config: dict[str, Any] = {"enableRateLimit": True, "options": {"defaultType": "swap"}}
        for field, suffix in (("apiKey", "KEY"), ("secret", "SECRET"), ("password", "PASSWORD")):
            if environ.get(prefix + suffix):
                config[field] = environ[prefix + suffix]
        exchange = getattr(ccxt, exchange_id)(config)
        if not (exchange.has.get("swap") or exchange.has.get("future")):
            raise CcxtConfigurationError(f"ccxt:{exchange_id} trades no futures")
        needed = {"apiKey": "KEY", "secret": "SECRET", "password": "PASSWORD"}
        missing = [
            prefix + suffix
            for field, suffix in needed.items()
            if exchange.requiredCredentials.get(field) and field not in config
        ]
        if missing:
            raise CcxtConfigurationError(f"ccxt:{exchange_id}: set {', '.join(missing)}")
        if sandbox:
            _enable_sandbox(exchange)
        return cls(exchange, sandbox=sandbox, settle_currency=settle_currency)

    def __repr__(self) -> str:
        return f"CcxtVenue(name={self.name!r}, sandbox={self.sandbox})"

    def check_delay(self) -> float:
        """Seconds to wait after an answered order before a read that must show it: the
        position lag, less half the shortest recent round trip. The lag runs from the fill at
        the venue, and a read sent now reaches the venue no sooner than one network leg later
        (at 50 ms round trips, 25 ms: more than the 20 ms lag, so no wait at all). Half, not
        the whole: the answer's own leg back to us is left as margin for the venue's
        processing time and for routes that are not symmetric."""
        return max(self.position_lag - self.round_trips.shortest() / 2, 0.0)

    def equity_unsupported(self) -> str | None:
        """Why this venue cannot report equity (wallet and unrealized PnL), or None when it
        can. Asks the venue nothing: it is a property of the mapping."""
        if type(self._dialect).balance is Dialect.balance:
            return (
                f"{self.name} cannot report equity: its wallet and unrealized PnL fields are "
                f"not mapped (mapped: {', '.join(f'ccxt:{d}' for d in sorted(DIALECTS))})"
            )
        return None

    # -- the port: reads ---------------------------------------------------------------------

    def fetch_positions(self) -> list[Position]:
        """Every settle coin's positions (listed at once where each needs a request)."""
        rows = self._by_settle(partial(self._dialect.list_positions, self._exchange))
        positions = [position_from_ccxt(raw, self._size(raw["symbol"])) for raw in rows]
        return [p for p in positions if p is not None]

    def fetch_open_orders(self) -> list[Order]:
        regular, conditional = self._open_orders(None)
        self._listed = {o.id: (o.symbol, False) for o in regular}
        self._listed.update({o.id: (o.symbol, True) for o in conditional})
        separate = self._dialect.separate_conditional_ids
        merged: dict[tuple[bool, str], Order] = {}
        for listed_conditional, orders in ((False, regular), (True, conditional)):
            for order in orders:
                # Where both listings show the same order (Bybit), the conditional view wins.
                merged[(listed_conditional and separate, order.id)] = order
        return list(merged.values())

    def fetch_balance(self) -> Balance:
        return self._read(lambda: self._dialect.balance(self._exchange, self.settle_currency))

    def fetch_transfers(self, since: datetime | None) -> list[CashTransfer]:
        """The venue's default recent window (Binance 7 days, Bybit 24 hours) whatever
        ``since`` is: passing it would run into each venue's own window limits, and the
        breaker reads the ledger far more often than that, skipping ids it knows."""
        return self._read(lambda: self._dialect.transfers(self._exchange, self.settle_currency))

    def fetch_mark_price(self, symbol: str) -> Decimal:
        self._market(symbol)
        if self._exchange.has.get("fetchMarkPrice"):
            ticker = self._read(lambda: self._exchange.fetch_mark_price(symbol))
        else:
            ticker = self._read(lambda: self._exchange.fetch_ticker(symbol))
        mark = positive(ticker.get("markPrice"))
        if mark is None:
            raise VenueError(f"{self.name}: no mark price for {symbol}")
        return mark

    def fetch_closes(self, symbol: str, limit: int) -> list[Decimal]:
        self._market(symbol)
        candles = self._read(lambda: self._exchange.fetch_ohlcv(symbol, "1m", limit=limit))
        closes = [positive(c[4]) for c in candles if len(c) > 4]
        return [c for c in closes if c is not None]

    def fetch_candles(self, symbol: str, limit: int) -> Candles:
        self._market(symbol)
        raw = self._read(lambda: self._exchange.fetch_ohlcv(symbol, "1m", limit=limit))
        rows = [
            (
                datetime.fromtimestamp(c[0] / 1000, UTC),
                float(c[1]),
                float(c[2]),
                float(c[3]),
                float(c[4]),
                float(c[5] or 0),
            )
            for c in raw
            if len(c) > 5 and all(v is not None for v in c[:5])
        ]
        return candles_from_rows(rows)

    def fetch_order_by_client_id(self, client_order_id: str, symbol: str) -> Order | None:
        self._market(symbol)
        found = self._read(
            lambda: self._dialect.find_by_client_id(self._exchange, client_order_id, symbol)
        )
        if found is None:
            return None
        raw, conditional = found
        return self._order(raw, conditional=conditional)

    def fetch_position_mode(self, symbol: str) -> PositionMode:
        """Where the mode is account-wide (Binance), the last answer is kept until an order
        is refused: an order sent under a stale mode is refused by the venue, not misread."""
        self._market(symbol)
        kept = self._account_mode
        if kept is not None and self._dialect.account_wide_mode:
            return kept
        mode = self._read(lambda: self._dialect.position_mode(self._exchange, symbol))
        if self._dialect.account_wide_mode:
            self._account_mode = mode
        return mode

    def fetch_leverage(self, symbol: str) -> Decimal:
        market = self._market(symbol)
        found = self._read(lambda: self._dialect.leverage(self._exchange, market))
        if found is None:
            raise VenueError(f"{self.name}: no leverage reported for {symbol}")
        return found

    # -- the port: actions -------------------------------------------------------------------

    def set_leverage(self, symbol: str, leverage: Decimal) -> None:
        """ccxt's unified ``set_leverage`` (both sides alike). A venue's "not modified"
        answer (Bybit 110043) is success. Raises OrderRejected (refused, or a leverage the
        venue cannot take), OutcomeUnknown, RateLimited, VenueUnavailable,
        VenueAuthenticationFailed."""
        self._market(symbol, unknown=OrderRejected)
        value = self._dialect.leverage_arg(leverage)
        try:
            self._exchange.set_leverage(value, symbol)
        except ccxt.BaseError as exc:
            if venue_error_code(exc) in self._dialect.leverage_unchanged_codes:
                return
            raise self._order_error(exc) from None

    def create_order(self, request: OrderRequest) -> Order:
        """Send an order; ccxt's unified type is "market" or "limit", a stop carries
        ``triggerPrice``. Raises OrderRejected, DuplicateClientOrderId, OutcomeUnknown,
        RateLimited, VenueUnavailable, VenueAuthenticationFailed."""
        args = self._unified_order(request)
        try:
            raw = self._exchange.create_order(**args)
        except ccxt.BaseError as exc:
            self._account_mode = None  # perhaps refused for the mode: read it again
            raise self._order_error(exc) from None
        return self._answered(raw, request)

    def create_orders(self, requests: Sequence[OrderRequest]) -> list[Order | VenueError]:
        """Plain orders go through the venue's batch endpoint where the dialect names one
        (``batch_size`` orders a request); stop orders, and every order elsewhere, one
        request each."""
        size = self._dialect.batch_size
        batchable = [i for i, r in enumerate(requests) if r.stop_price is None] if size else []
        groups = [batchable[start : start + size] for start in range(0, len(batchable), size or 1)]
        groups = [g for g in groups if len(g) > 1]
        grouped = {i for g in groups for i in g}
        groups += [[i] for i in range(len(requests)) if i not in grouped]
        # Every batch and every single order at once: their outcomes are independent.
        self._ensure_markets()
        sent = self._together(
            [
                partial(self._create_batch, [requests[i] for i in group])
                if len(group) > 1
                else partial(self._create_one, requests[group[0]])
                for group in groups
            ]
        )
        answers: dict[int, Order | VenueError] = {}
        for group, outcome in zip(groups, sent, strict=True):
            if isinstance(outcome, VenueError):  # a single order's own error
                answers[group[0]] = outcome
            else:
                answers.update(zip(group, outcome, strict=True))
        return [answers[i] for i in range(len(requests))]

    def fetch_fills(self, requests: Sequence[OrderRequest]) -> dict[str, Order]:
        """Where the dialect lists recent orders (Bybit), one listing a settle coin instead of
        one look-up an order; elsewhere, or for a single order, the look-ups at once. An order
        not found, or whose look-up failed, is left out. Raises VenueError when a listing
        fails."""
        wanted = {r.client_order_id: r for r in requests}
        found: dict[str, Order] = {}
        self._ensure_markets()
        settles = sorted({str(self._market(r.symbol).get("settleId")) for r in requests})
        answers = (
            self._together(
                [
                    partial(self._read, partial(self._dialect.recent_orders, self._exchange, s))
                    for s in settles
                ]
            )
            if len(requests) > 1  # one look-up costs the same as a listing
            else []
        )
        listings: list[list[Raw] | None] = []
        for answer in answers:  # one listing a settle coin, at once
            if isinstance(answer, VenueError):
                raise answer
            listings.append(answer)
        if listings and all(rows is not None for rows in listings):
            for raw in (raw for rows in listings for raw in rows or []):
                request = wanted.get(str(raw.get("clientOrderId")))
                if request is not None:
                    order = outcome_of(partial(self._order, raw, sent=request))
                    if isinstance(order, Order):
                        found[request.client_order_id] = order
            return found
        looked_up = self._together(
            [partial(self.fetch_order_by_client_id, r.client_order_id, r.symbol) for r in requests]
        )
        return {
            r.client_order_id: o
            for r, o in zip(requests, looked_up, strict=True)
            if isinstance(o, Order)
        }

    def _create_one(self, request: OrderRequest) -> list[Order | VenueError]:
        return [outcome_of(partial(self.create_order, request))]

    def cancel_order(self, order: Order) -> None:
        self._market(order.symbol)
        try:
            self._exchange.cancel_order(order.id, order.symbol, self._dialect.cancel_params(order))
        except ccxt.OrderNotFound:
            return
        except ccxt.BaseError as exc:
            if venue_error_code(exc) in self._dialect.gone_codes:
                return
            raise order_error(exc, self.name, self._secrets) from None

    def cancel_all_orders(self, symbol: str) -> int:
        """Cancel-all for regular and for conditional orders on ``symbol``. The count is the
        venue's list of canceled orders where it gives one (Bybit), else the open orders seen
        just before (Binance answers with a bare acknowledgement)."""
        self._market(symbol)
        try:
            regular, conditional = self._open_orders(symbol)
            seen: tuple[int, int] | None = (len(regular), len(conditional))
        except VenueError as exc:
            log.warning(
                "%s: listing before cancel-all failed (%s); canceling anyway", self.name, exc
            )
            seen = None
        canceled = self._cancel_all(symbol, {}, seen[0] if seen else None)
        canceled += self._cancel_all(
            symbol, dict(self._dialect.conditional_params), seen[1] if seen else None
        )
        return canceled

    def cancel_all_orders_on(self, symbols: Sequence[str]) -> dict[str, int | VenueError]:
        """Cancel-all for every symbol and both kinds of order, all requests at once, and no
        listing first: the count of a symbol is the venue's list of what it canceled (Bybit)
        or, where the answer is a bare acknowledgement (Binance), the symbol's orders in this
        venue's latest ``fetch_open_orders`` (the flattener's read just before), else 0.

        Where the dialect has a settle-wide cancel-all (Bybit) and the latest listing shows
        no open order outside ``symbols``, one request a settle coin cancels them all
        instead, at once."""
        if not symbols:
            return {}
        self._ensure_markets()
        listed = self._listed
        settles = {self._exchange.markets.get(s, {}).get("settleId") for s in symbols}
        if (
            self._dialect.settle_wide_cancel
            and listed is not None
            and len(symbols) > len(settles)
            and None not in settles
            and {symbol for symbol, _ in listed.values()} <= set(symbols)
        ):
            return self._cancel_settle_wide(symbols, sorted(map(str, settles)), listed)
        kinds: list[tuple[bool, dict[str, Any]]] = [
            (False, {}),
            (True, dict(self._dialect.conditional_params)),
        ]
        # Where the latest listing shows orders on a symbol, only the kinds it shows there are
        # canceled (half the requests on Binance, where each kind has an endpoint of its own);
        # an order placed since is in the flattener's next read and goes in its next attempt.
        shown = set(listed.values()) if listed is not None else set()
        shown_symbols = {symbol for symbol, _ in shown}
        tasks = [
            (s, conditional, params)
            for s in symbols
            for conditional, params in kinds
            if s not in shown_symbols or (s, conditional) in shown
        ]

        def cancel(symbol: str, conditional: bool, params: dict[str, Any]) -> int:
            self._market(symbol)
            seen = (
                sum(1 for s, c in listed.values() if s == symbol and c == conditional)
                if listed is not None
                else None
            )
            return self._cancel_all(symbol, params, seen)

        answers = self._together([partial(cancel, *task) for task in tasks])
        outcome: dict[str, int | VenueError] = dict.fromkeys(symbols, 0)
        for (symbol, _, _), answer in zip(tasks, answers, strict=True):
            so_far = outcome[symbol]
            if isinstance(so_far, VenueError):
                continue  # the symbol's first error is its outcome
            outcome[symbol] = answer if isinstance(answer, VenueError) else so_far + answer
        self._listed = None  # counted once: the next cancel needs a listing of its own
        return outcome

    def _cancel_settle_wide(
        self, symbols: Sequence[str], settles: Sequence[str], listed: Mapping[str, tuple[str, bool]]
    ) -> dict[str, int | VenueError]:
        def cancel(settle: str) -> list[Raw]:
            try:
                return list(self._exchange.cancel_all_orders(None, {"settleCoin": settle}) or [])
            except ccxt.BaseError as exc:
                if venue_error_code(exc) in self._dialect.gone_codes:
                    return []
                raise order_error(exc, self.name, self._secrets) from None

        counts: dict[str, int | VenueError] = dict.fromkeys(symbols, 0)
        answers = self._together([partial(cancel, settle) for settle in settles])
        for settle, answer in zip(settles, answers, strict=True):
            if isinstance(answer, VenueError):
                for name in symbols:
                    if self._exchange.markets.get(name, {}).get("settleId") == settle:
                        counts[name] = answer
                continue
            for raw in answer:
                symbol = raw.get("symbol") or listed.get(str(raw.get("id")), (None, False))[0]
                so_far = counts.get(str(symbol))
                if isinstance(so_far, int):
                    counts[str(symbol)] = so_far + 1
        self._listed = None
        return counts

    # -- internals ---------------------------------------------------------------------------

    def _together(self, calls: Sequence[Callable[[], T]]) -> list[T | VenueError]:
        """Run ``calls`` at once (each in a thread of this venue's pool, the rate limiter
        pacing their requests); each one's result or VenueError, in order. Any other
        exception is a bug and is raised once every call has ended."""
        if len(calls) <= 1:
            return [outcome_of(call) for call in calls]
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(
                    self.max_in_flight, thread_name_prefix=f"tradecore-{self._exchange.id}"
                )
                _start_threads(self._pool, min(self.warm_threads, self.max_in_flight))
            pool = self._pool
        futures = [pool.submit(outcome_of, call) for call in calls]
        return [future.result() for future in futures]

    def _unified_order(self, request: OrderRequest) -> dict[str, Any]:
        """ccxt's ``create_order`` arguments for ``request``; OrderRejected if it cannot be
        sent as it is."""
        size = contract_size(self._market(request.symbol, unknown=OrderRejected))
        if request.type == "limit" and request.price is None:
            raise OrderRejected(f"{request.client_order_id}: a limit order needs a price")
        if request.type == "stop" and request.stop_price is None:
            raise OrderRejected(f"{request.client_order_id}: a stop order needs a stop price")
        # A stop with a limit price is a stop-limit; any other stop triggers a market order.
        kind = "limit" if request.type != "market" and request.price is not None else "market"
        return {
            "symbol": request.symbol,
            "type": kind,
            "side": request.side,
            "amount": plain(request.quantity / size),
            "price": plain(request.price)
            if kind == "limit" and request.price is not None
            else None,
            "params": self._dialect.order_params(request),
        }

    def _create_batch(self, requests: Sequence[OrderRequest]) -> list[Order | VenueError]:
        """One batch request. A failure of the request is every order's outcome; otherwise
        each element of the answer is its order's."""
        answers: dict[int, Order | VenueError] = {}
        sending: list[tuple[int, dict[str, Any]]] = []
        for i, request in enumerate(requests):
            try:
                sending.append((i, self._unified_order(request)))
            except OrderRejected as e:
                answers[i] = e
        if not sending:
            return [answers[i] for i in range(len(requests))]
        sent = [requests[i] for i, _ in sending]
        try:
            raws = list(self._exchange.create_orders([args for _, args in sending]))
        except ccxt.BaseError as exc:
            error = self._order_error(exc)
            if type(error) is OrderRejected:
                # The batch as such was refused (an account without the endpoint, a batch
                # it will not take): nothing was done, so each order goes alone instead.
                log.warning("%s: batch refused (%s); sending one order at a time", self.name, error)
                answers.update(
                    (i, outcome_of(partial(self.create_order, q)))
                    for (i, _), q in zip(sending, sent, strict=True)
                )
            else:
                answers.update((i, error) for i, _ in sending)
            return [answers[i] for i in range(len(requests))]
        matched = match_batch_answer(raws, [q.client_order_id for q in sent])
        tables = self._dialect.error_tables(self._exchange)
        for (i, _), request, raw in zip(sending, sent, matched, strict=True):
            if raw is None:
                answers[i] = OutcomeUnknown(
                    f"{self.name}: order {request.client_order_id}: the batch answer does not "
                    "say what became of it"
                )
            elif refused(raw):
                refusal = batch_element_error(self._exchange, tables, raw["info"])
                answers[i] = self._order_error(refusal)
            else:
                answers[i] = outcome_of(partial(self._answered, raw, request))
        return [answers[i] for i in range(len(requests))]

    def _answered(self, raw: Raw, request: OrderRequest) -> Order:
        try:
            return self._order(raw, conditional=request.stop_price is not None, sent=request)
        except VenueError as exc:
            raise OutcomeUnknown(
                f"{self.name}: order {request.client_order_id} sent, answer unreadable: {exc}"
            ) from None

    def _order_error(self, exc: BaseException) -> VenueError:
        return order_error(exc, self.name, self._secrets, self._dialect.duplicate_codes)

    def _cancel_all(self, symbol: str, params: dict[str, Any], seen: int | None) -> int:
        try:
            answer = self._exchange.cancel_all_orders(symbol, params)
        except ccxt.OrderNotFound:
            return 0
        except ccxt.BaseError as exc:
            if venue_error_code(exc) in self._dialect.gone_codes:
                return 0
            raise order_error(exc, self.name, self._secrets) from None
        answer = list(answer or [])
        if all(o.get("id") for o in answer):
            return len(answer)
        return seen or 0

    def _open_orders(self, symbol: str | None) -> tuple[list[Order], list[Order]]:
        """(regular, conditional) open orders of ``symbol`` (None: every symbol of every
        settle coin), every listing at once."""
        dialect, exchange = self._dialect, self._exchange
        self._ensure_markets()
        scopes = _settle_scopes(dialect) if symbol is None else [{}]
        answers = self._together(
            [
                partial(self._listing, partial(dialect.list_orders, exchange, symbol, kind | scope))
                for kind in ({}, dict(dialect.conditional_params))
                for scope in scopes
            ]
        )
        listings: list[list[Raw]] = []
        for answer in answers:
            if isinstance(answer, VenueError):
                raise answer
            listings.append(answer)
        regular = [raw for listing in listings[: len(scopes)] for raw in listing]
        conditional = [raw for listing in listings[len(scopes) :] for raw in listing]
        return (
            [self._order(raw) for raw in regular],
            [self._order(raw, conditional=True) for raw in conditional],
        )

    def _order(
        self, raw: Raw, *, conditional: bool = False, sent: OrderRequest | None = None
    ) -> Order:
        symbol = raw.get("symbol") or (sent.symbol if sent else None)
        return order_from_ccxt(
            raw,
            self._size(str(symbol)),
            conditional=conditional,
            position_side=self._dialect.position_side(raw.get("info") or {}),
            sent=sent,
        )

    def _read(self, call: Callable[[], T]) -> T:
        self._ensure_markets()
        try:
            return call()
        except ccxt.BaseError as exc:
            raise read_error(exc, self.name, self._secrets) from None

    def _by_settle(self, fetch: Callable[[Mapping[str, Any]], list[Raw]]) -> list[Raw]:
        """``fetch(params)`` for each settle coin the dialect lists apart, at once; the rows
        of them all. Raises the first VenueError met (a partial listing is no listing)."""
        answers = self._together(
            [
                partial(self._listing, partial(fetch, scope))
                for scope in _settle_scopes(self._dialect)
            ]
        )
        rows: list[Raw] = []
        for answer in answers:
            if isinstance(answer, VenueError):
                raise answer
            rows += answer
        return rows

    def _listing(self, fetch: Callable[[], list[Raw]]) -> list[Raw]:
        """Rows naming markets listed since the markets were loaded make them reload once."""
        rows = self._read(fetch)
        if any(row.get("symbol") not in self._exchange.markets for row in rows):
            self._load_markets()
            rows = self._read(fetch)
        return rows

    def _ensure_markets(self) -> None:
        if not self._exchange.markets:
            self._load_markets()

    def _load_markets(self) -> None:
        # fetch_markets + set_markets rather than load_markets: load_markets also fetches
        # currencies, a wallet endpoint a trade-only key may not reach (Bybit).
        try:
            self._exchange.set_markets(self._exchange.fetch_markets())
        except ccxt.BaseError as exc:
            raise read_error(exc, self.name, self._secrets) from None

    def _market(self, symbol: str, *, unknown: type[VenueError] = VenueError) -> Mapping[str, Any]:
        self._ensure_markets()
        market: Mapping[str, Any] | None = self._exchange.markets.get(symbol)
        if market is None:
            raise unknown(f"{self.name}: no market {symbol!r}")
        return market

    def _size(self, symbol: str) -> Decimal:
        return contract_size(self._market(symbol))


def _settle_scopes(dialect: Dialect) -> list[dict[str, Any]]:
    """The params of each account-wide listing: one per settle coin, or one without."""
    return [{"settleCoin": coin} for coin in dialect.settle_coins] or [{}]


def _start_threads(pool: ThreadPoolExecutor, count: int) -> None:
    """Make ``pool`` start ``count`` threads, from a thread of its own (a thread's start
    waits for it to run: the caller does not wait for them). The pool starts a thread a call
    while none is idle, so ``count`` calls that each wait for all the others (at most 5 s)
    leave ``count`` idle threads behind."""
    if count < 2:
        return
    gathered = threading.Barrier(count)

    def gather() -> None:
        with contextlib.suppress(threading.BrokenBarrierError):
            gathered.wait(timeout=5.0)

    def submit() -> None:
        with contextlib.suppress(RuntimeError):  # the pool shut down meanwhile
            for _ in range(count):
                pool.submit(gather)

    threading.Thread(target=submit, name="tradecore-pool-start", daemon=True).start()


def _enable_sandbox(exchange: Any) -> None:
    demo = type(exchange).enable_demo_trading is not ccxt.Exchange.enable_demo_trading
    if demo and ("demo" in exchange.urls or "demotrading" in exchange.urls):
        exchange.enable_demo_trading(True)
    elif "test" in exchange.urls:
        exchange.set_sandbox_mode(True)
    else:
        raise CcxtConfigurationError(f"ccxt:{exchange.id} offers no sandbox or demo mode")
