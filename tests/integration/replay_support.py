"""Shared by the replay tests: a core on a market clock, and the independent arithmetic.

The arithmetic here is written from the candle file with the csv module and Decimal, not
from tradecore's parser or breaker, so a test comparing the two can fail on either side.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from adapters.clock import MarketClock
from app.bootstrap import Core, bootstrap
from app.config import Settings
from app.entrypoints.replay import ReplayRequest, plan, replay_settings, run_replay
from domain.market_data import parse_ohlcv

HARD = Decimal("-0.10")


@contextmanager
def replay_core(
    settings: Settings, request: ReplayRequest, path: Path
) -> Iterator[tuple[Core, Any]]:
    the_plan = plan(parse_ohlcv(path.read_text(), source=path.name), request)
    with bootstrap(
        replay_settings(settings, request, the_plan.step),
        clock=MarketClock(the_plan.start),
        pool_size=8,
    ) as core:
        core.commands.ensure_initialised()
        yield core, the_plan


def replayed(
    settings: Settings, request: ReplayRequest, path: Path
) -> tuple[dict[str, Any], list[Any]]:
    """The replay's report and every event of the account aggregate, in order."""
    from domain.ids import account_id  # noqa: PLC0415

    with replay_core(settings, request, path) as (core, the_plan):
        result = run_replay(core, the_plan, request)
        events = list(core.store.events.get(account_id(core.settings.account)))
    return result, events


@dataclass(frozen=True)
class Point:
    at: datetime
    price: Decimal


def path_points(path: Path, start: datetime, end: datetime) -> list[Point]:
    """Each candle in [start, end) as four marks 15 s apart: open, the nearer of high and
    low (low on a tie), the other, close."""
    points: list[Point] = []
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            at = datetime.fromisoformat(row["timestamp"]).replace(tzinfo=UTC)
            if not start <= at < end:
                continue
            o, h, low, c = (Decimal(row[k]) for k in ("open", "high", "low", "close"))
            order = (o, h, low, c) if h - o < o - low else (o, low, h, c)
            points += [Point(at + timedelta(seconds=15 * k), p) for k, p in enumerate(order)]
    return points


@dataclass(frozen=True)
class Expected:
    at: datetime
    equity: Decimal
    peak: Decimal
    drawdown: Decimal


def long_equity_path(
    points: list[Point], wallet: Decimal, quantity: Decimal, entry: Decimal
) -> list[Expected]:
    """Equity of a long of ``quantity`` entered at ``entry`` with ``wallet`` left after the
    entry fee, its running peak and drawdown (equity / peak - 1, to 10 places) at each mark."""
    out: list[Expected] = []
    peak = Decimal(0)
    for p in points:
        equity = wallet + quantity * (p.price - entry)
        peak = max(peak, equity)
        drawdown = min(equity / peak - 1, Decimal(0)).quantize(Decimal("1e-10"))
        out.append(Expected(p.at, equity, peak, drawdown))
    return out


def first_crossing(expected: list[Expected], threshold: Decimal = HARD) -> Expected | None:
    return next((e for e in expected if e.drawdown <= threshold), None)
