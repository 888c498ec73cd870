"""Binance USD-M futures: conditional orders in the Algo service, hedge mode by
``positionSide``, the wallet and transfers from the venue's own fields."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from adapters.ccxt.dialect import Dialect
from adapters.ccxt.limits import RateRule
from adapters.ccxt.mapping import (
    balance_from_rows,
    positive,
    transfer_from_ledger,
)
from domain.venue import (
    Balance,
    CashTransfer,
    OrderRejected,
    OrderRequest,
    PositionSide,
    TransferKind,
)

# Hedge-mode position sides; Binance's BOTH and Bybit's 0 mean one-way mode.
_BINANCE_POSITION_SIDES: dict[str, PositionSide] = {"LONG": "long", "SHORT": "short"}
# The ledger entry types that move cash between the futures wallet and the owner's other
# wallets (deposits and withdrawals reach a futures wallet only through these), with the
# kind for money in and for money out.
_BINANCE_TRANSFERS: dict[str, tuple[TransferKind, TransferKind]] = {
    "TRANSFER": ("transfer_in", "transfer_out"),
}


class BinanceUsdm(Dialect):
    """Binance USD-M futures: conditional orders live in the Algo service."""

    def leverage_arg(self, leverage: Decimal) -> int | float:
        if leverage != leverage.to_integral_value():
            raise OrderRejected(f"binance takes whole-number leverage only, not {leverage}")
        return int(leverage)

    def leverage(self, exchange: Any, market: Mapping[str, Any]) -> Decimal | None:
        # /fapi/v1/symbolConfig for the one symbol: ccxt's fetch_leverage also loads the
        # leverage brackets of every market first (a second, heavier request).
        rows = exchange.fapiPrivateGetSymbolConfig({"symbol": market["id"]})
        return next((positive(r.get("leverage")) for r in rows or [] if r.get("leverage")), None)

    options = {"warnOnFetchOpenOrdersWithoutSymbol": False}
    separate_conditional_ids = True
    duplicate_codes = frozenset({"-4116"})  # DUPLICATED_CLIENT_ORDER_ID
    gone_codes = frozenset({"-2011", "-2013"})  # unknown order sent / order does not exist
    batch_size = 5  # POST /fapi/v1/batchOrders takes at most 5 orders (no conditional ones)
    rate_rule = RateRule(window=60.0)  # request weight per IP and minute
    # GET /fapi/v1/positionSide/dual weighs 30 (an order 4); a change of mode needs a flat
    # account, and an order sent under a stale mode is refused (-4061), never misread.
    account_wide_mode = True

    def error_tables(self, exchange: Any) -> list[Mapping[str, Any]]:
        linear = exchange.exceptions.get("linear") or {}
        return [linear.get("exact") or {}, *super().error_tables(exchange)]

    def hedge_params(self, request: OrderRequest, params: dict[str, Any]) -> dict[str, Any]:
        # Binance answers -1106 to reduceOnly in hedge mode: the position side closes alone.
        params = {k: v for k, v in params.items() if k != "reduceOnly"}
        params["positionSide"] = "LONG" if request.position_side == "long" else "SHORT"
        return params

    def position_side(self, info: Mapping[str, Any]) -> PositionSide | None:
        return _BINANCE_POSITION_SIDES.get(str(info.get("positionSide")))

    def client_id_lookups(self, client_order_id: str) -> list[tuple[dict[str, Any], bool]]:
        return [
            ({"origClientOrderId": client_order_id}, False),
            ({"clientAlgoId": client_order_id, "trigger": True}, True),
        ]

    def transfers(self, exchange: Any, currency: str) -> list[CashTransfer]:
        # The income history of the futures wallet, transfers only (the server filters: a
        # trading account's history is mostly fees and PnL). Without startTime Binance
        # answers the last 7 days, oldest first, up to `limit`.
        rows = exchange.fetch_ledger(None, None, 1000, {"incomeType": "TRANSFER"})
        found = (transfer_from_ledger(row, currency, _BINANCE_TRANSFERS) for row in rows)
        return [t for t in found if t is not None]

    def balance(self, exchange: Any, currency: str) -> Balance:
        info = exchange.fetch_balance().get("info") or {}
        return balance_from_rows(
            info.get("assets") or [],
            currency,
            currency_key="asset",
            wallet_key="walletBalance",
            unrealized_key="unrealizedProfit",
        )
