"""The ccxt venues: any ccxt futures exchange as the exchange port.

- ``venue``: ``CcxtVenue``, the port implementation shared by every dialect (reads, orders,
  cancels, leverage, the flatten's concurrent requests).
- ``dialect``, ``binance``, ``bybit``: what ccxt's unified API leaves to each venue, one
  module a dialect (the base ``Dialect`` is the portable behaviour for other exchange ids).
- ``mapping``: pure translation of ccxt's structures into the port's values.
- ``errors``: ccxt exceptions mapped to the port's errors, with secrets redacted.
- ``limits``: the venue's published request budget and the round-trip timer.
- ``history``: candle history through ``fetch_ohlcv`` (``tradecore data fetch``).

Adapters point inward: these modules import ``domain`` and ccxt, never ``app``.
"""
