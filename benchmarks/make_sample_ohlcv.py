"""Generate the shipped OHLCV sample: SYNTHETIC one-minute candles, seeded, not market data.

    python -m benchmarks.make_sample_ohlcv > adapters/data/sample_ohlcv.csv

A BTC-like series around 60,000: regimes of calm and agitation, a little momentum (so a model
has something to find), volume that rises with volatility. Same seed, same file.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta

import numpy as np

SEED = 20261124
ROWS = 3000


def main() -> int:
    rng = np.random.default_rng(SEED)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    price, previous = 60_000.0, 0.0
    sigma = 0.001
    print("timestamp,open,high,low,close,volume")
    for i in range(ROWS):
        if i % 250 == 0:
            sigma = float(rng.choice([0.0006, 0.001, 0.002, 0.004]))
        step = 0.15 * previous + rng.normal(0, sigma)
        previous = step
        open_, close = price, price * float(np.exp(step))
        wick = abs(rng.normal(0, sigma / 2))
        high = max(open_, close) * (1 + wick)
        low = min(open_, close) * (1 - abs(rng.normal(0, sigma / 2)))
        volume = abs(rng.normal(50, 10)) * (1 + 300 * abs(step))
        when = (start + timedelta(minutes=i)).isoformat().replace("+00:00", "Z")
        print(f"{when},{open_:.2f},{high:.2f},{low:.2f},{close:.2f},{volume:.4f}")
        price = close
    return 0


if __name__ == "__main__":
    sys.exit(main())
