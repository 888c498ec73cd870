"""``tradecore demo``: the whole safety chain on the real January 2022 sell-off, in seconds.

The market is the shipped excerpt of real one-minute candles of a BTC perpetual
(``adapters/data``, 2022-01-20 and 21). On a fresh store the demo trains and promotes a
LightGBM signal model on the excerpt before ``TRAIN_UNTIL`` only, deposits on the paper
venue, holds a long of ``HOLD`` times the deposit from ``TRAIN_UNTIL`` on, and replays the
candles after it at full speed through the whole chain (``app.entrypoints.replay``: the worker's
rounds, reconciliation adopting the position, the model consumers following the promoted
version, the breaker reading the account at each of the candle's four marks). The real
fall of that evening takes the account past the soft threshold, then past the hard one: the
breaker activates the emergency stop at that mark and the account is flattened. The replay
stops a few candles after flat, and the incident report comes from the log.

The synthetic sample (``adapters/data/sample_ohlcv.csv``) stays for unit tests; it is not
market data.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from adapters.data import EXCERPT_SOURCE, excerpt_path
from app.bootstrap import Core
from app.config import Settings
from app.entrypoints.replay import Plan, ReplayRequest, plan, replay_settings, run_replay
from app.queries.audit import Audit
from domain.market_data import parse_ohlcv

TRAIN_UNTIL = datetime(2022, 1, 20, 21, tzinfo=UTC)
HOLD = Decimal(3)
AFTER_FLAT = 5  # candles replayed after the account is flat
# The signal engine off: the demo's exposure is the held long alone, so where the breaker
# fires can be checked against the candles.
REQUEST = ReplayRequest(train_until=TRAIN_UNTIL, hold=HOLD, signals=False)


def demo_plan() -> Plan:
    """The excerpt, split at ``TRAIN_UNTIL``."""
    path = excerpt_path()
    return plan(parse_ohlcv(path.read_text(encoding="utf-8"), source=path.name), REQUEST)


def demo_settings(settings: Settings, the_plan: Plan) -> Settings:
    """The replay's settings for the demo's request."""
    return replay_settings(settings, REQUEST, the_plan.step)


def run_demo(core: Core, the_plan: Plan, progress: Any) -> dict[str, Any]:
    """Run the demo on ``core`` (built on a MarketClock at ``the_plan.start`` with
    :func:`demo_settings`). Raises StoreNotFresh (exit 3) on a store with history."""
    result = run_replay(core, the_plan, REQUEST, progress, stop_after_flat=AFTER_FLAT)
    report = Audit(core).incident(None) if result["activations"] else None
    positions = core.venue().fetch_positions()
    return {
        "demo": {
            "scenario": "real candles: the BTC perpetual sell-off of 2022-01-20",
            "source": EXCERPT_SOURCE,
            "trained_until": TRAIN_UNTIL,
            "hold": HOLD,
            "seconds": result["replay"]["wall_seconds"],
            "venue_positions_after": len(positions),
        },
        "replay": result,
        "incident": report,
    }
