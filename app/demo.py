"""``tradecore demo``: the whole safety chain on the paper venue, in under a minute.

On a fresh store it deposits, trains and promotes a LightGBM signal model on the shipped
sample, starts the worker (breaker, flattener, projections, model consumers) and plays a
**synthetic, seeded** market: a calm random walk, positions opened through the executor and
the sizing agent, then a slide that crosses the soft drawdown threshold (new entries stop:
one more intent is refused) and a flash crash past the hard one — the breaker activates the
emergency stop and the account is flattened. The incident report comes from the log.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from sqlalchemy import text

from adapters.data import sample_path
from adapters.eventstore import EVENTS_SCHEMA, EVENTS_TABLE
from adapters.paper.venue import PaperVenue
from app.audit import Audit
from app.bootstrap import Core
from app.executor import Outcome, TradeIntent
from app.worker import Worker
from domain.errors import RefusedBySafetyRule
from domain.ids import EMERGENCY_ID, POLICY_ID
from domain.market_data import parse_ohlcv_csv

ACTOR = "demo"
DEPOSIT = Decimal(10_000)
OPENING = {
    "BTC/USDT:USDT": Decimal(60_000),
    "ETH/USDT:USDT": Decimal(3_000),
    "SOL/USDT:USDT": Decimal(150),
}
# Asked per symbol; the sizing agent decides how much of it. Three entries at the leverage
# it decides untrained (1x, now applied at the venue) fit the deposit's margin.
NOTIONAL = Decimal(3_000)
STEP_SECONDS = 0.15
SOFT_TARGET = Decimal("0.065")  # the slide's drawdown, past the soft threshold (-5 %)
HARD_TARGET = Decimal("0.15")  # the flash crash's, past the hard threshold (-10 %)


class DemoRefused(RefusedBySafetyRule):
    """The demo only runs on a fresh store, with the paper venue."""


def run_demo(core: Core, progress: Callable[[str], None], *, seed: int = 7) -> dict[str, Any]:
    _require_fresh(core)
    venue = core.venue()
    if not isinstance(venue, PaperVenue):
        raise DemoRefused(f"the demo runs on the paper venue, not {venue.name}")
    admin = venue.admin()
    rng = random.Random(seed)  # noqa: S311 - a synthetic market, not security
    started = time.monotonic()

    admin.deposit(DEPOSIT)
    admin.set_prices(OPENING)
    progress(f"deposited {DEPOSIT} USDT on the paper venue; marks {_marks(OPENING)}")
    version = _train_and_promote(core, seed)
    progress(f"signal model v{version} trained on the shipped synthetic sample and promoted")
    core.commands.update_policy(actor=ACTOR, reason="demo: open trading", allow_new_trades=True)

    stop = threading.Event()
    worker = threading.Thread(target=Worker(core).run, args=(stop,), name="worker", daemon=True)
    worker.start()
    try:
        marks = dict(OPENING)
        _wait(lambda: _has_reading(core), "the first equity reading")
        progress("worker running: equity feed, drawdown breaker, flattener, read models")
        marks = _walk(admin, marks, rng, steps=12, volatility=0.001)
        opened = _open_positions(core, progress)
        marks = _walk(admin, marks, rng, steps=8, volatility=0.001)
        exposure, equity = _exposure(admin), admin.fetch_balance().equity
        progress(
            f"calm market: {opened} position(s), exposure {exposure:.2f} on equity {equity:.2f}"
        )

        # The slide: four steps to past the soft threshold, each small enough to be taken
        # as it comes (no confirmation needed).
        slide = SOFT_TARGET * equity / exposure
        for _ in range(4):
            marks = {s: _cents(p * (1 - slide / 4)) for s, p in marks.items()}
            admin.set_prices(marks)
            time.sleep(STEP_SECONDS * 2)
        _wait(lambda: _state(core) == "soft_breach", "the soft breach")
        refused = core.executor().open(_intent("SOL/USDT:USDT", "demo: one more entry"))
        entry_refused = refused.outcome is Outcome.REFUSED
        progress(f"slide: soft breach; new entries stopped (another intent: {refused.outcome})")

        # The flash crash: one move, held for confirmation and confirmed by the re-read.
        crash = (HARD_TARGET - SOFT_TARGET) * equity / exposure
        marks = {s: _cents(p * (1 - crash)) for s, p in marks.items()}
        admin.set_prices(marks)
        progress("flash crash")
        _wait(lambda: _flat(core), "the account to be flat", timeout=30)
        _walk(admin, marks, rng, steps=4, volatility=0.002)
    finally:
        stop.set()
        worker.join(timeout=30)
    core.runner.catch_up()  # every read model at the head: the dashboard shows the incident
    report = Audit(core).incident(None)
    return {
        "demo": {
            "scenario": "synthetic, seeded: a calm random walk, a slide, a flash crash",
            "seed": seed,
            "seconds": round(time.monotonic() - started, 1),
            "model_version": version,
            "soft_breach_refused_entry": entry_refused,
            "venue_positions_after": len(admin.fetch_positions()),
        },
        "incident": report,
    }


def _require_fresh(core: Core) -> None:
    """Nothing but the policy and the latch as first created (every command makes those)."""
    with core.engine.connect() as conn:
        events = conn.execute(
            text(
                f"SELECT count(*) FROM {EVENTS_SCHEMA}.{EVENTS_TABLE} "
                "WHERE NOT (originator_id IN (:policy, :latch) AND originator_version = 1)"
            ),
            {"policy": POLICY_ID, "latch": EMERGENCY_ID},
        ).scalar_one()
    if events:
        raise DemoRefused(
            f"the store at {core.address.display} already holds {events} event(s); the demo "
            "needs a fresh one: run it with `tradecore --home <new folder> demo`"
        )


def _train_and_promote(core: Core, seed: int) -> int:
    from adapters.signal_model import train  # noqa: PLC0415 - LightGBM only when training

    candles = parse_ohlcv_csv(sample_path().read_text(encoding="utf-8"), source="sample")
    trained = train(candles, seed=seed)
    models = core.models()
    registered = models.register(
        core.settings.signal_model,
        artifact=trained.artifact,
        data_from=trained.data_from,
        data_to=trained.data_to,
        metrics=trained.metrics,
        actor=ACTOR,
    )
    models.promote(
        core.settings.signal_model, registered.version, actor=ACTOR, reason="demo: first model"
    )
    return registered.version


def _open_positions(core: Core, progress: Callable[[str], None]) -> int:
    executor = core.executor()
    opened = 0
    for symbol in OPENING:
        result = executor.open(_intent(symbol, "demo: signal"))
        progress(f"open {symbol} long: {result.outcome} ({result.reason})")
        opened += result.outcome in (Outcome.FILLED, Outcome.PARTIALLY_FILLED)
    if not opened:
        raise RuntimeError("the demo could not open any position")
    return opened


def _intent(symbol: str, reason: str) -> TradeIntent:
    return TradeIntent(
        symbol=symbol,
        side="long",
        notional=NOTIONAL,
        actor=ACTOR,
        reason=reason,
        confidence=Decimal("0.7"),
    )


def _walk(
    admin: PaperVenue,
    marks: dict[str, Decimal],
    rng: random.Random,
    *,
    steps: int,
    volatility: float,
) -> dict[str, Decimal]:
    for _ in range(steps):
        marks = {
            s: _cents(p * Decimal(str(1 + rng.gauss(0, volatility)))) for s, p in marks.items()
        }
        admin.set_prices(marks)
        time.sleep(STEP_SECONDS)
    return marks


def _cents(price: Decimal) -> Decimal:
    return price.quantize(Decimal("0.01"))


def _exposure(admin: PaperVenue) -> Decimal:
    return sum(
        (p.quantity * (p.mark_price or p.entry_price) for p in admin.fetch_positions()),
        Decimal(0),
    )


def _marks(marks: dict[str, Decimal]) -> str:
    return ", ".join(f"{s.split('/')[0]} {p}" for s, p in marks.items())


def _has_reading(core: Core) -> bool:
    account = core.drawdown_breaker().load()
    return account is not None and account.equity is not None


def _state(core: Core) -> str | None:
    account = core.drawdown_breaker().load()
    return account.state if account else None


def _flat(core: Core) -> bool:
    emergency = core.commands.load_emergency()
    return bool(emergency and emergency.active and emergency.flat)


def _wait(condition: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"demo: timed out waiting for {what}")
        time.sleep(0.05)
