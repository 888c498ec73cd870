"""``tradecore replay``: recorded candles through the whole safety chain, on market time.

The core runs on a :class:`~adapters.clock.MarketClock` that this module advances candle by
candle; the paper venue is the replayed market. Each candle is shown as four marks, a
quarter of the candle's length apart (``domain.market_data.candle_path``): the open, the
nearer of high and low, the other one, the close. So a candle's low is a mark the account is
valued at, and a breach is recorded at the first of those points that crosses, not a candle
later. After each mark the drawdown breaker reads the account (``BreakerLoop.read``: a
reading, its re-read when held, the flatten after a hard breach); after each candle the
worker performs one round of its duties (``Worker.round``: read models, emergency
supervision, model consumers, model watch, reconciliation, the signal engine with the
promoted model, the sizing agent, the executor and its gate). The market stands still while
the chain acts on a mark, so every figure is reproducible: the same file and options give
the same events, whatever the machine's speed.

Options: a fixed long (``hold``: that many times the deposit, opened at the first replayed
candle straight at the venue and adopted by reconciliation as an ``external`` trade), a
model trained and promoted on the candles before ``train_until`` only (the replay starts
there), and feed glitches: ``glitch_rate`` bad ticks per market hour, each one mark
``GLITCH_MOVE`` away from the true price for the breaker's next read only (the venue is back
at the true mark for the re-read), placed by a seeded generator.

Wall-clock time goes in two places only: ``speed`` paces the replay (market seconds per wall
second) and each activation's wall time to flat is measured around the reading that tripped
it; an event's own time is the market's.
"""

from __future__ import annotations

import random
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, cast

from eventsourcing.utils import get_topic
from sqlalchemy import text

from adapters.clock import MarketClock
from adapters.eventstore import EVENTS_SCHEMA, EVENTS_TABLE
from adapters.paper.venue import PaperVenue
from app.bootstrap import Core
from app.config import Settings
from app.entrypoints.worker import BreakerLoop, Worker
from domain.account import Account
from domain.drawdown import Transition
from domain.emergency import Emergency
from domain.errors import InvalidCommand, RefusedBySafetyRule
from domain.ids import EMERGENCY_ID, POLICY_ID
from domain.market_data import CandleDataInvalid, Candles, candle_path, training_window, window
from domain.model_registry import ModelRegistry
from domain.refusal import RefusedIntent
from domain.sizing_record import SizingRecord
from domain.trade import Trade
from domain.venue import Balance, ExchangePort, OrderRequest

ACTOR = "replay"
DEFAULT_SYMBOL = "BTC/USDT:USDT"
DEPOSIT = Decimal(10_000)
POINTS = 4  # marks per candle: open, nearer extreme, other extreme, close
GLITCH_MOVE = Decimal("0.3")  # a bad tick is 30 % off the true price, up or down
SIGNAL_BAR_CANDLES = 15  # the signal engine samples once every 15 candles


class StoreNotFresh(RefusedBySafetyRule):
    """A replay or the demo runs on a store with no history of its own (exit 3)."""


@dataclass(frozen=True)
class ReplayRequest:
    """What to replay and how. Times are aware UTC; ``speed`` is market seconds per wall
    second (None: as fast as the chain goes); ``hold`` a multiple of the deposit;
    ``glitch_rate`` bad ticks per market hour; ``signals`` False keeps the signal engine from
    trading, so the exposure is the held long alone (what the demo and the no-false-positive
    month need: the engine would otherwise close the adopted long at its first short signal)."""

    symbol: str = DEFAULT_SYMBOL
    start: datetime | None = None
    end: datetime | None = None
    speed: float | None = None
    train_until: datetime | None = None
    hold: Decimal | None = None
    glitch_rate: float = 0.0
    seed: int = 7
    deposit: Decimal = DEPOSIT
    signals: bool = True

    def __post_init__(self) -> None:
        if self.speed is not None and not self.speed > 0:
            raise InvalidCommand(f"--speed must be above 0, got {self.speed}")
        if not 0 <= self.glitch_rate <= 3600:
            raise InvalidCommand(f"--glitch-rate must be 0 to 3600 an hour, got {self.glitch_rate}")
        if self.hold is not None and not Decimal(0) < self.hold <= Decimal(20):
            raise InvalidCommand(f"--hold must be above 0 and at most 20, got {self.hold}")
        if self.start and self.end and self.end <= self.start:
            raise InvalidCommand("--to must be after --from")


@dataclass(frozen=True)
class Plan:
    """The candles a model learns from (None: no training) and those replayed, and the
    candles' length (the smallest step between two of them)."""

    training: Candles | None
    replayed: Candles
    step: timedelta

    @property
    def start(self) -> datetime:
        return self.replayed.first


def plan(candles: Candles, request: ReplayRequest) -> Plan:
    """Split ``candles`` for ``request``. Raises CandleDataInvalid when nothing is left to
    replay or too little to train on."""
    steps = [b - a for a, b in zip(candles.timestamps, candles.timestamps[1:], strict=False)]
    step = min(steps)
    begin = request.start
    training = None
    if request.train_until is not None:
        training = training_window(candles, request.train_until)
        if len(training) < 200:
            raise CandleDataInvalid(
                f"--train-until {request.train_until.isoformat()}: {len(training)} candle(s) "
                "before it; 200 needed to train on"
            )
        begin = max(begin or request.train_until, request.train_until)
    first = 0 if begin is None else sum(1 for t in candles.timestamps if t < begin)
    stop = (
        len(candles)
        if request.end is None
        else sum(1 for t in candles.timestamps if t < request.end)
    )
    if stop <= first:
        raise CandleDataInvalid("no candle to replay between --from/--train-until and --to")
    return Plan(training, window(candles, first, stop), step)


def replay_settings(settings: Settings, request: ReplayRequest, step: timedelta) -> Settings:
    """The configuration a replay runs on: the signal engine on the replayed symbol (on none
    when ``request.signals`` is False), its bar ``SIGNAL_BAR_CANDLES`` candles, the equity
    interval one mark (so the gate's bound on the breaker's last reading is three marks of
    market time)."""
    seconds = step.total_seconds()
    return settings.model_copy(
        update={
            "exchange": "paper",
            "signal_symbols": request.symbol if request.signals else "",
            "signal_bar_seconds": seconds * SIGNAL_BAR_CANDLES,
            "equity_interval": seconds / POINTS,
        }
    )


@dataclass
class Glitch:
    at: datetime
    mark: Decimal
    true: Decimal


@dataclass
class _Run:
    activations_wall_ms: list[float] = field(default_factory=list)
    glitches: list[Glitch] = field(default_factory=list)
    hold: dict[str, Any] | None = None
    marks: int = 0
    candles: int = 0  # replayed (fewer than planned when stopped after flat)
    last: datetime | None = None  # the last replayed candle's open time
    wall_seconds: float = 0.0
    # Where the wall time went: moving the marks, the breaker's readings, the worker's rounds.
    spent: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))


class _Feed:
    """The breaker's venue in a replay: the paper venue, plus a hook run right after its
    next balance read (a glitch ends there: the re-read sees the true mark again)."""

    def __init__(self, venue: ExchangePort) -> None:
        self._venue = venue
        self.after_read: Callable[[], None] | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._venue, name)

    def fetch_balance(self) -> Balance:
        try:
            return self._venue.fetch_balance()
        finally:
            hook, self.after_read = self.after_read, None
            if hook is not None:
                hook()


def run_replay(
    core: Core,
    the_plan: Plan,
    request: ReplayRequest,
    progress: Callable[[str], None] = lambda _: None,
    *,
    consumers: bool = True,
    stop_after_flat: int | None = None,
) -> dict[str, Any]:
    """Replay ``the_plan`` through the whole chain of ``core`` (built on a MarketClock at
    ``the_plan.start``) and return the report (see :func:`report`). ``consumers`` False runs
    the venue and the breaker alone (the benchmark's baseline: no worker rounds);
    ``stop_after_flat``: end that many candles after the first activation.
    Raises StoreNotFresh, InvalidCommand (not a paper venue or a market clock)."""
    clock = core.clock
    if not isinstance(clock, MarketClock):
        raise InvalidCommand("a replay runs on a market clock")
    require_fresh(core, "replay")
    venue = core.venue()
    if not isinstance(venue, PaperVenue):
        raise InvalidCommand(f"a replay runs on the paper venue, not {venue.name}")
    admin = venue.admin()
    started = time.monotonic()
    run = _Run()
    admin.deposit(request.deposit)
    admin.set_prices({request.symbol: _price(the_plan.replayed.open[0])})
    if the_plan.training is not None:
        version = train_and_promote(core, the_plan.training, seed=request.seed, actor=ACTOR)
        progress(
            f"model v{version} trained on {len(the_plan.training)} candle(s) before "
            f"{the_plan.start.isoformat()} and promoted"
        )
    core.commands.update_policy(actor=ACTOR, reason="replay: open trading", allow_new_trades=True)
    if request.hold is not None:
        run.hold = _hold(admin, request.symbol, request.hold)
        progress(f"holding a long of {run.hold['quantity']} at {run.hold['price']}")
    market = _Market(core, clock, admin, the_plan, request, run, consumers)
    market.play(started, progress, stop_after_flat)
    if consumers:
        core.runner.catch_up()
    run.wall_seconds = time.monotonic() - started
    return report(core, the_plan, request, run)


class _Market:
    """The loop: each candle's marks, a reading after each, a worker round after each
    candle; glitches and pacing as asked."""

    def __init__(
        self,
        core: Core,
        clock: MarketClock,
        admin: PaperVenue,
        the_plan: Plan,
        request: ReplayRequest,
        run: _Run,
        consumers: bool,
    ) -> None:
        self.clock, self.admin, self.plan, self.request, self.run = (
            clock,
            admin,
            the_plan,
            request,
            run,
        )
        self.worker = Worker(core)
        self.duties = self.worker.prepare() if consumers else None
        self.feed = _Feed(core.new_venue())
        self.loop = BreakerLoop(core, venue=cast(ExchangePort, self.feed))
        self.rng = random.Random(request.seed)  # noqa: S311 - a simulation's draws
        self.per_mark = request.glitch_rate * the_plan.step.total_seconds() / POINTS / 3600

    def play(
        self, started: float, progress: Callable[[str], None], stop_after_flat: int | None
    ) -> None:
        candles, quarter = self.plan.replayed, self.plan.step / POINTS
        for i in range(len(candles)):
            if stop_after_flat is not None and self.run.activations_wall_ms:
                if stop_after_flat <= 0:
                    break
                stop_after_flat -= 1
            path = candle_path(candles.open[i], candles.high[i], candles.low[i], candles.close[i])
            for k, value in enumerate(path):
                self.clock.advance_to(candles.timestamps[i] + quarter * k)
                self.mark(_price(value))
            if self.duties is not None:
                began = time.monotonic()
                self.worker.round(self.duties)
                self.run.spent["worker rounds"] += time.monotonic() - began
            self.run.candles += 1
            self.run.last = candles.timestamps[i]
            if self.request.speed is not None:
                ahead = (candles.timestamps[i] - candles.first).total_seconds() / self.request.speed
                time.sleep(max(0.0, ahead - (time.monotonic() - started)))
            if i % 1440 == 1439:
                progress(
                    f"{i + 1}/{len(candles)} candles, market at {self.clock.now().isoformat()}"
                )

    def mark(self, price: Decimal) -> None:
        """Show ``price`` (or a bad tick instead, for one read) and take a reading."""
        symbol = self.request.symbol
        began = time.monotonic()
        if self.per_mark and self.rng.random() < self.per_mark:
            sign = 1 if self.rng.random() < 0.5 else -1
            off = (price * (1 + sign * GLITCH_MOVE)).quantize(Decimal("0.01"))
            self.admin.set_prices({symbol: off})

            def back() -> None:
                self.admin.set_prices({symbol: price})

            self.feed.after_read = back
            self.run.glitches.append(Glitch(self.clock.now(), off, price))
        else:
            self.admin.set_prices({symbol: price})
        self.run.marks += 1
        read = time.monotonic()
        self.run.spent["venue marks"] += read - began
        last = self.loop.read("push").last
        done = time.monotonic()
        self.run.spent["breaker readings"] += done - read
        if last is not None and last.transition is Transition.HARD_BREACH:
            self.run.activations_wall_ms.append((done - read) * 1000)


def require_fresh(core: Core, command: str) -> None:
    """Nothing in the store but the policy and the latch as first created (every command
    makes those). Raises StoreNotFresh naming how many events are there."""
    with core.engine.connect() as conn:
        events = conn.execute(
            text(
                f"SELECT count(*) FROM {EVENTS_SCHEMA}.{EVENTS_TABLE} "
                "WHERE NOT (originator_id IN (:policy, :latch) AND originator_version = 1)"
            ),
            {"policy": POLICY_ID, "latch": EMERGENCY_ID},
        ).scalar_one()
    if events:
        raise StoreNotFresh(
            f"the store at {core.address.display} already holds {events} event(s); the "
            f"{command} needs a fresh one: run it with `tradecore --home <new folder> {command}`"
        )


def train_and_promote(core: Core, candles: Candles, *, seed: int, actor: str) -> int:
    """Train the signal model on ``candles``, register and promote it; its version."""
    from adapters.signal_model import train  # noqa: PLC0415 - LightGBM only when training

    trained = train(candles, seed=seed)
    models = core.models()
    name = core.settings.signal_model
    registered = models.register(
        name,
        artifact=trained.artifact,
        data_from=trained.data_from,
        data_to=trained.data_to,
        metrics=trained.metrics,
        actor=actor,
    )
    models.promote(name, registered.version, actor=actor, reason=f"{actor}: trained on candles")
    return registered.version


def _price(value: float) -> Decimal:
    return Decimal(repr(float(value)))


def _hold(admin: PaperVenue, symbol: str, multiple: Decimal) -> dict[str, Any]:
    """A market long of ``multiple`` x equity at the mark, sent straight to the venue (at
    leverage enough for its margin), so no sizing changes it; reconciliation adopts it."""
    equity = admin.fetch_balance().equity
    mark = admin.fetch_mark_price(symbol)
    quantity = (equity * multiple / mark).quantize(Decimal("0.00000001"))
    admin.set_leverage(symbol, max(Decimal(2) * multiple, Decimal(1)).to_integral_value())
    order = admin.create_order(OrderRequest(symbol, "buy", quantity, "replay-hold-1"))
    wallet = admin.fetch_balance().wallet
    return {
        "symbol": symbol,
        "quantity": order.filled,
        "price": order.average_price,
        "wallet_after_entry": wallet,
        "multiple": multiple,
    }


# -- the report ---------------------------------------------------------------------------

TOPICS = {
    name: get_topic(cls)
    for name, cls in {
        "reading": Account.EquityRecorded,
        "rejected": Account.EquityReadingRejected,
        "unconfirmed": Account.ReadingUnconfirmed,
        "soft": Account.SoftBreach,
        "hard": Account.HardBreach,
        "recovered": Account.Recovered,
        "activated": Emergency.Activated,
        "flat": Emergency.AccountFlat,
        "closed": Trade.Closed,
        "opened": Trade.Opened,
        "sized": SizingRecord.SizingDecided,
        "refused": RefusedIntent.Refused,
        "registered": ModelRegistry.ModelRegistered,
        "promoted": ModelRegistry.ModelPromoted,
    }.items()
}


def report(core: Core, the_plan: Plan, request: ReplayRequest, run: _Run) -> dict[str, Any]:
    """What the replay did, from the log: trades and PnL, the equity path (readings, peak,
    deepest drawdown), breaches, activations (trigger; time to flat in market and wall
    time), sizing fallbacks and caps, gate refusals by code, model versions, glitches and
    what the breaker recorded for each."""
    events = _events(core)
    by = {name: [e for e in events if e.topic_name == name] for name in TOPICS}
    readings = [e.event for e in by["reading"]]
    accepted = [e for e in readings if e.status == "accepted"]
    deepest = min(accepted, key=lambda e: e.drawdown, default=None)
    closed = [e.event for e in by["closed"]]
    sized = [e.event for e in by["sized"]]
    flats = {e.event.activation_number: e.event for e in by["flat"]}
    candles = the_plan.replayed
    return {
        "replay": {
            "symbol": request.symbol,
            "from": candles.first,
            "to": run.last,
            "candles": run.candles,
            "marks": run.marks,
            "path": "open, nearer of high/low, the other, close; a quarter candle apart",
            "wall_seconds": round(run.wall_seconds, 3),
            "candles_per_second": round(run.candles / run.wall_seconds, 1)
            if run.wall_seconds
            else None,
            "seconds_in": {k: round(v, 3) for k, v in run.spent.items()},
            "speed": request.speed or "max",
            "seed": request.seed,
            "deposit": request.deposit,
        },
        "hold": run.hold,
        "trades": {
            "opened": len(by["opened"]),
            "closed": len(closed),
            "realized_pnl": sum((e.realized_pnl for e in closed), Decimal(0)),
            "by_reason": dict(Counter(e.close_reason for e in closed)),
        },
        "equity": {
            "readings": len(readings),
            "accepted": len(accepted),
            "first": accepted[0].equity if accepted else None,
            "last": accepted[-1].equity if accepted else None,
            "peak": max((e.peak for e in accepted), default=None),
            "deepest_drawdown": deepest.drawdown if deepest else None,
            "deepest_at": deepest.venue_at if deepest else None,
            "path": _sampled(accepted),
        },
        "breaches": [
            {"at": e.event.timestamp, "type": e.topic_name, "drawdown": e.event.drawdown}
            for e in events
            if e.topic_name in ("soft", "hard", "recovered")
        ],
        "activations": [
            _activation(e.event, flats.get(e.event.activation_number), run, n)
            for n, e in enumerate(by["activated"])
        ],
        "sizing": {
            "decisions": len(sized),
            "fallbacks": sum(1 for e in sized if e.fallback),
            "caps": dict(Counter(c for e in sized for c in e.caps_applied)),
        },
        "gate_refusals": dict(Counter(e.event.code for e in by["refused"])),
        "models": {
            # Each registered version's artifact digest and training window: what the
            # no-look-ahead check compares.
            "registered": [
                {
                    "name": e.event.name,
                    "version": e.event.version,
                    "sha256": e.event.sha256,
                    "data_from": e.event.data_from,
                    "data_to": e.event.data_to,
                }
                for e in by["registered"]
            ],
            "promoted": [e.event.new_version for e in by["promoted"]],
            "used_for_sizing": sorted({e.model_version for e in sized if e.model_version}),
        },
        "glitches": _glitches(run.glitches, by),
    }


PATH_POINTS = 500


def _sampled(accepted: list[Any]) -> list[dict[str, Any]]:
    """At most about ``PATH_POINTS`` accepted readings, evenly spread, with the deepest
    drawdown and the last one kept (the chart's line; the log holds every reading)."""
    if not accepted:
        return []
    every = max(1, len(accepted) // PATH_POINTS)
    deepest = min(range(len(accepted)), key=lambda i: accepted[i].drawdown)
    keep = sorted({*range(0, len(accepted), every), deepest, len(accepted) - 1})
    return [
        {
            "at": accepted[i].venue_at,
            "equity": accepted[i].equity,
            "peak": accepted[i].peak,
            "drawdown": accepted[i].drawdown,
        }
        for i in keep
    ]


@dataclass(frozen=True)
class _Logged:
    position: int
    topic_name: str
    event: Any


def _events(core: Core) -> list[_Logged]:
    names = {topic: name for name, topic in TOPICS.items()}
    mapper = core.store.mapper
    found: list[_Logged] = []
    after = 0
    with core.engine.connect() as conn:
        head = core.reader.head(conn)
        while after < head:
            page = core.reader.read(conn, after=after, upto=head, topics=list(names), limit=5_000)
            if not page:
                break
            for position, stored in page:
                found.append(_Logged(position, names[stored.topic], mapper.to_domain_event(stored)))
            after = page[-1][0]
    return found


def _activation(activated: Any, flat: Any, run: _Run, number: int) -> dict[str, Any]:
    wall = run.activations_wall_ms[number] if number < len(run.activations_wall_ms) else None
    return {
        "activated_at": activated.timestamp,
        "source": activated.source,
        "trigger": activated.reason,
        "flat_at": flat.timestamp if flat else None,
        "time_to_flat_market_ms": flat.time_to_flat_ms if flat else None,
        "time_to_flat_wall_ms": None if wall is None else round(wall, 1),
    }


def _glitches(glitches: list[Glitch], by: dict[str, list[_Logged]]) -> dict[str, Any]:
    """Each bad tick and what the breaker recorded for the reading that saw it."""
    pending = {e.event.venue_at: e.event for e in by["reading"] if e.event.status == "pending"}
    accepted = {e.event.venue_at for e in by["reading"] if e.event.status == "accepted"}
    rejected = {e.event.venue_at for e in by["rejected"]}
    unconfirmed = {e.event.pending_version for e in by["unconfirmed"]}
    outcomes: list[dict[str, Any]] = []
    for g in glitches:
        held = pending.get(g.at)
        if g.at in rejected:
            outcome = "rejected"
        elif held is not None and held.originator_version in unconfirmed:
            outcome = "unconfirmed"
        elif g.at in accepted:
            outcome = "accepted"
        else:
            outcome = "unseen"
        outcomes.append({"at": g.at, "mark": g.mark, "true": g.true, "recorded": outcome})
    return {
        "injected": len(glitches),
        "by_outcome": dict(Counter(o["recorded"] for o in outcomes)),
        "each": outcomes,
    }
