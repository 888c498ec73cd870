"""What ccxt's unified API leaves to each venue, and the portable behaviour for the rest.

``Dialect`` is the base: ccxt's unified parameters, for any exchange id without a dialect of
its own (untested against those venues, and no balance until someone maps its fields). The
venues tradecore knows subclass it: ``binance.BinanceUsdm`` and ``bybit.Bybit``.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import ccxt  # type: ignore[import-untyped]

from adapters.ccxt.limits import RateRule
from adapters.ccxt.mapping import (
    plain,
    positive,
)
from domain.venue import (
    Balance,
    CashTransfer,
    Order,
    OrderRejected,
    OrderRequest,
    PositionMode,
    PositionSide,
    VenueError,
)

Raw = dict[str, Any]


class Dialect:
    """What ccxt's unified API leaves to each venue. This base is the portable behaviour."""

    options: Mapping[str, Any] = {}  # merged into exchange.options
    conditional_params: Mapping[str, Any] = {"trigger": True}
    separate_conditional_ids = False  # conditional orders have ids of their own number space
    duplicate_codes: frozenset[str] = frozenset()  # venue codes for a duplicate client id
    gone_codes: frozenset[str] = frozenset()  # venue codes for "no such open order"
    batch_size = 0  # orders per request of the venue's batch endpoint; 0: none used
    rate_rule = RateRule()  # ccxt's rate over one second, every endpoint together
    # One cancel-all for every symbol of a settle currency, where the venue has it.
    settle_wide_cancel = False
    # The settle coins an account-wide listing must name one at a time (each listing then
    # covers one); empty: one listing without a settle coin covers every contract.
    settle_coins: tuple[str, ...] = ()
    # The position mode is one account-wide setting the venue will not change while anything
    # is open: a read of it may be kept until an order is refused.
    account_wide_mode = False

    # Venue codes meaning "the leverage already is that": the setting holds, not an error.
    leverage_unchanged_codes: frozenset[str] = frozenset()

    def leverage_arg(self, leverage: Decimal) -> int | float:
        """``leverage`` as ccxt's ``set_leverage`` sends it. Raises OrderRejected for a
        leverage this venue cannot take (then nothing is sent)."""
        return int(leverage) if leverage == leverage.to_integral_value() else float(leverage)

    def leverage(self, exchange: Any, market: Mapping[str, Any]) -> Decimal | None:
        """The symbol's leverage as the venue reports it, via ccxt's unified
        ``fetch_leverage`` (its long side: one-way and hedge are set alike here)."""
        found = exchange.fetch_leverage(market["symbol"])
        return positive((found or {}).get("longLeverage"))

    def error_tables(self, exchange: Any) -> list[Mapping[str, Any]]:
        """ccxt's code -> exception tables that apply to this venue's order endpoints."""
        return [exchange.exceptions.get("exact") or {}]

    def list_orders(
        self, exchange: Any, symbol: str | None, params: Mapping[str, Any]
    ) -> list[Raw]:
        return list(exchange.fetch_open_orders(symbol, None, None, dict(params)))

    def list_positions(self, exchange: Any, params: Mapping[str, Any]) -> list[Raw]:
        return list(exchange.fetch_positions(None, dict(params)))

    def order_params(self, request: OrderRequest) -> dict[str, Any]:
        params: dict[str, Any] = {"clientOrderId": request.client_order_id}
        if request.reduce_only:
            params["reduceOnly"] = True
        if request.stop_price is not None:
            params["triggerPrice"] = plain(request.stop_price)
        if request.position_side is not None:
            params = self.hedge_params(request, params)
        return params

    def hedge_params(self, request: OrderRequest, params: dict[str, Any]) -> dict[str, Any]:
        # ccxt's unified `hedged` derives the position side from side and reduceOnly; refuse a
        # request whose position side it would get wrong rather than send the wrong one.
        closing = "long" if request.side == "sell" else "short"
        derived = closing if request.reduce_only else ("long" if request.side == "buy" else "short")
        if derived != request.position_side:
            raise OrderRejected(
                f"{request.client_order_id}: cannot express a {request.side} on the "
                f"{request.position_side} side with ccxt's unified hedge parameter"
            )
        return {**params, "hedged": True}

    def cancel_params(self, order: Order) -> dict[str, Any]:
        return dict(self.conditional_params) if order.conditional else {}

    def position_side(self, info: Mapping[str, Any]) -> PositionSide | None:
        return None

    def position_mode(self, exchange: Any, symbol: str) -> PositionMode:
        """ccxt's unified ``fetch_position_mode`` where the venue has it (Binance: one
        account-wide setting), else what the symbol's listed positions say."""
        if exchange.has.get("fetchPositionMode"):
            hedged = exchange.fetch_position_mode(symbol).get("hedged")
        else:
            hedged = any(r.get("hedged") for r in exchange.fetch_positions([symbol]))
        return "hedge" if hedged else "one_way"

    def client_id_lookups(self, client_order_id: str) -> list[tuple[dict[str, Any], bool]]:
        """The ``fetch_order`` params to try, in order, each with "is it conditional"."""
        return [
            ({"clientOrderId": client_order_id}, False),
            ({"clientOrderId": client_order_id, **self.conditional_params}, True),
        ]

    def find_by_client_id(
        self, exchange: Any, client_order_id: str, symbol: str
    ) -> tuple[Raw, bool] | None:
        for params, conditional in self.client_id_lookups(client_order_id):
            try:
                return exchange.fetch_order("", symbol, params), conditional
            except ccxt.OrderNotFound:
                continue
        return None

    def recent_orders(self, exchange: Any, settle: str) -> list[Raw] | None:
        """One listing of the account's latest orders, filled ones included, to read the
        fills of orders the venue only acknowledged; None where the venue has none."""
        return None

    def transfers(self, exchange: Any, currency: str) -> list[CashTransfer]:
        """The transfers of the futures wallet in the venue's default recent window; a venue
        whose ledger is not mapped reports none (its transfers then read as gains and
        losses, which the breaker errs towards: a trip, never a blind spot)."""
        return []

    def balance(self, exchange: Any, currency: str) -> Balance:
        raise VenueError(
            f"ccxt:{exchange.id}: the wallet and unrealized PnL fields of this venue are not "
            "mapped (ccxt's unified 'total' means different things on different venues)"
        )
