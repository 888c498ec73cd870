"""Bybit v5, linear category: every kind of open order at one endpoint, settle coins
listed one at a time, cursor pagination, hedge mode by ``positionIdx``."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from adapters.ccxt.dialect import Dialect, Raw
from adapters.ccxt.limits import RateRule
from adapters.ccxt.mapping import (
    balance_from_rows,
    positive,
    transfer_from_ledger,
)
from domain.venue import (
    Balance,
    CashTransfer,
    Order,
    OrderRequest,
    PositionMode,
    PositionSide,
    TransferKind,
)

log = logging.getLogger(__name__)

MAX_PAGES = 20
# Hedge-mode position sides; Binance's BOTH and Bybit's 0 mean one-way mode.
_BYBIT_POSITION_SIDES: dict[str, PositionSide] = {"1": "long", "2": "short"}
# The ledger entry types that move cash between the futures wallet and the owner's other
# wallets (deposits and withdrawals reach a futures wallet only through these), with the
# kind for money in and for money out.
_BYBIT_TRANSFERS: dict[str, tuple[TransferKind, TransferKind]] = {
    "TRANSFER_IN": ("transfer_in", "transfer_out"),
    "TRANSFER_OUT": ("transfer_in", "transfer_out"),
}


class Bybit(Dialect):
    """Bybit v5, linear category."""

    # Linear markets only: one request instead of spot, inverse and three option chains.
    options = {"fetchMarkets": {"types": ["linear"]}}
    duplicate_codes = frozenset({"110072"})  # OrderLinkedID is duplicate
    # order does not exist / already finished or canceled / already canceled
    gone_codes = frozenset({"110001", "110008", "110010", "170213"})
    page_size = 50
    batch_size = 10  # POST /v5/order/create-batch: 10 orders a request (the lowest limit)
    rate_rule = RateRule(window=1.0, per_endpoint=True)  # per endpoint, UID and second
    # /v5/order/cancel-all takes a settleCoin instead of a symbol, and for linear contracts
    # without orderFilter it cancels every kind of order (conditional ones too). ccxt's cost
    # for it is a whole second's budget, so one request instead of one per symbol.
    settle_wide_cancel = True
    # Without a symbol, /v5/position/list and /v5/order/realtime answer for one settleCoin
    # (ccxt sends USDT unless told): USDC perpetuals are listed apart.
    settle_coins = ("USDT", "USDC")

    leverage_unchanged_codes = frozenset({"110043"})  # Set leverage not modified

    def leverage(self, exchange: Any, market: Mapping[str, Any]) -> Decimal | None:
        # /v5/position/list's own string: ccxt's parse_leverage cuts 1.5 to 1.
        answer = exchange.privateGetV5PositionList({"category": "linear", "symbol": market["id"]})
        rows = ((answer or {}).get("result") or {}).get("list") or []
        return next((positive(r.get("leverage")) for r in rows if r.get("leverage")), None)

    def list_orders(
        self, exchange: Any, symbol: str | None, params: Mapping[str, Any]
    ) -> list[Raw]:
        # Bybit pages open orders 50 at a time. ccxt's own `paginate` retries every error
        # silently and refuses cursor pages without `since`, so the cursor is followed here.
        return _cursor_pages(
            lambda cursor: exchange.fetch_open_orders(
                symbol, None, self.page_size, {**params, **cursor}
            ),
            self.page_size,
        )

    def list_positions(self, exchange: Any, params: Mapping[str, Any]) -> list[Raw]:
        return _cursor_pages(
            lambda cursor: exchange.fetch_positions(None, {"limit": 200, **params, **cursor}),
            200,
        )

    def order_params(self, request: OrderRequest) -> dict[str, Any]:
        params = super().order_params(request)
        if request.stop_price is not None:
            # Bybit needs the crossing direction: a sell stop fires on a fall, a buy on a rise.
            params["triggerDirection"] = "descending" if request.side == "sell" else "ascending"
        return params

    def hedge_params(self, request: OrderRequest, params: dict[str, Any]) -> dict[str, Any]:
        return {**params, "positionIdx": 1 if request.position_side == "long" else 2}

    def cancel_params(self, order: Order) -> dict[str, Any]:
        return {}  # conditional orders are canceled by id at /v5/order/cancel like any other

    def position_side(self, info: Mapping[str, Any]) -> PositionSide | None:
        return _BYBIT_POSITION_SIDES.get(str(info.get("positionIdx")))

    def position_mode(self, exchange: Any, symbol: str) -> PositionMode:
        # Per symbol, with no endpoint of its own: a query for one symbol lists its position
        # slots even when empty, index 0 in one-way mode, 1 and 2 in hedge mode.
        rows = exchange.fetch_positions([symbol])
        hedged = any(self.position_side(r.get("info") or {}) for r in rows)
        return "hedge" if hedged else "one_way"

    def find_by_client_id(
        self, exchange: Any, client_order_id: str, symbol: str
    ) -> tuple[Raw, bool] | None:
        # Open orders (every kind) first, then the history of closed and canceled ones.
        query = {"orderLinkId": client_order_id}
        for fetch in (exchange.fetch_open_orders, exchange.fetch_canceled_and_closed_orders):
            found = fetch(symbol, None, None, dict(query))
            if found:
                return found[0], False
        return None

    def recent_orders(self, exchange: Any, settle: str) -> list[Raw] | None:
        # /v5/order/history without a symbol: the latest 50 orders of the settle coin.
        return list(
            exchange.fetch_canceled_and_closed_orders(
                None, None, self.page_size, {"settleCoin": settle}
            )
        )

    def transfers(self, exchange: Any, currency: str) -> list[CashTransfer]:
        # The unified account's transaction log, one transfer type a request (the server
        # filters by one type); without startTime Bybit answers the last 24 hours.
        rows: list[Raw] = []
        for kind in _BYBIT_TRANSFERS:
            params = {"type": kind, "currency": currency}
            rows += _cursor_pages(
                lambda cursor, p=params: exchange.fetch_ledger(  # type: ignore[misc]
                    None, None, self.page_size, {**p, **cursor}
                ),
                self.page_size,
            )
        found = (transfer_from_ledger(row, currency, _BYBIT_TRANSFERS) for row in rows)
        return sorted((t for t in found if t is not None), key=lambda t: t.at)

    def balance(self, exchange: Any, currency: str) -> Balance:
        info = exchange.fetch_balance().get("info") or {}
        accounts = (info.get("result") or {}).get("list") or []
        coins = [coin for account in accounts for coin in account.get("coin") or []]
        return balance_from_rows(
            coins,
            currency,
            currency_key="coin",
            wallet_key="walletBalance",
            unrealized_key="unrealisedPnl",
        )


def _cursor_pages(fetch: Callable[[dict[str, str]], list[Raw]], page_size: int) -> list[Raw]:
    """Follow Bybit's ``nextPageCursor`` (ccxt copies it into the first row's ``info``)."""
    rows: list[Raw] = []
    cursor: dict[str, str] = {}
    for _ in range(MAX_PAGES):
        page = list(fetch(cursor))
        rows.extend(page)
        following = next(
            (
                r["info"]["nextPageCursor"]
                for r in page
                if "nextPageCursor" in (r.get("info") or {})
            ),
            None,
        )
        if len(page) < page_size or not following or following == cursor.get("cursor"):
            return rows
        cursor = {"cursor": following}
    log.warning("stopped after %d pages of %d; the rest is not listed", MAX_PAGES, page_size)
    return rows
