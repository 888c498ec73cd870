"""Public candle history of a ccxt venue (no API keys): one page of OHLCV at a time.

ccxt's ``fetch_ohlcv`` answers at most the venue's page limit of candles from ``since``; the
caller pages forward (``app/commands/candle_history_fetch.py``). ccxt's own rate limiter spaces the
requests (``enableRateLimit``): pages are fetched one after another, so its sequential
limiter is the right one here. Errors come out as the port's VenueError kinds
(``RateLimited``, ``VenueUnavailable``: transient; anything else: not).
"""

from __future__ import annotations

from typing import Any

import ccxt  # type: ignore[import-untyped]

from adapters.ccxt.errors import CcxtConfigurationError, read_error
from adapters.ccxt.venue import dialect_for
from domain.venue import VenueError

# (epoch ms, open, high, low, close, volume), as ccxt returns them.
Row = tuple[int, float, float, float, float, float]


class CcxtHistory:
    """Pages of ``symbol``'s candles from a ccxt exchange built without credentials."""

    def __init__(self, exchange: Any) -> None:
        # The venue's own settings as the trading venue uses them (e.g. Bybit's linear
        # markets only).
        exchange.options = exchange.deep_extend(
            exchange.options, dict(dialect_for(exchange.id).options)
        )
        self._exchange = exchange
        self.name = f"ccxt:{exchange.id}"

    @classmethod
    def from_id(cls, exchange_id: str) -> CcxtHistory:
        """``ccxt.<exchange_id>`` for its swap markets, rate-limited. Raises
        CcxtConfigurationError for an unknown id or an exchange without OHLCV history."""
        if exchange_id not in ccxt.exchanges:
            raise CcxtConfigurationError(f"unknown ccxt exchange id {exchange_id!r}")
        exchange = getattr(ccxt, exchange_id)(
            {"enableRateLimit": True, "options": {"defaultType": "swap"}}
        )
        if not exchange.has.get("fetchOHLCV"):
            raise CcxtConfigurationError(f"ccxt:{exchange_id} has no candle history")
        return cls(exchange)

    def timeframe_ms(self, timeframe: str) -> int:
        """The length of one candle of ``timeframe`` in milliseconds. Raises VenueError when
        the venue does not offer that timeframe."""
        offered = self._exchange.timeframes or {}
        if offered and timeframe not in offered:
            raise VenueError(
                f"{self.name} has no timeframe {timeframe!r} (it has {', '.join(offered)})"
            )
        return int(self._exchange.parse_timeframe(timeframe)) * 1000

    def page(self, symbol: str, timeframe: str, since_ms: int, limit: int) -> list[Row]:
        """Up to ``limit`` candles opening at or after ``since_ms``, oldest first. Raises
        VenueError (RateLimited / VenueUnavailable when worth retrying)."""
        try:
            if not self._exchange.markets:
                # Markets only: load_markets also asks for currencies, which some venues
                # serve only to a signed request.
                self._exchange.set_markets(self._exchange.fetch_markets())
            if symbol not in self._exchange.markets:
                raise VenueError(f"{self.name} lists no market {symbol}")
            raw = self._exchange.fetch_ohlcv(symbol, timeframe, since=since_ms, limit=limit)
        except ccxt.BaseError as e:
            raise read_error(e, self.name, ()) from None
        return [
            (int(c[0]), float(c[1]), float(c[2]), float(c[3]), float(c[4]), float(c[5] or 0))
            for c in raw
            if len(c) > 5 and all(v is not None for v in c[:5])
        ]
