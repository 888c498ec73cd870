"""The rule-based signal source drives the executor: one trade per signal, exits on the
opposite signal, and a replayed bar is never a second trade. Entries are sized on the score
of the promoted model (real LightGBM models): the version promoted at that moment, recorded
in the sizing decision and shown by the incident report; with no model, entries are refused."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest

from adapters.paper.venue import PaperVenue
from adapters.repository import Repository
from adapters.signal_model import SignalModel
from app.bootstrap import Core, bootstrap
from app.commands.executor import Outcome, TradeIntent
from app.config import Settings
from app.entrypoints.cli.audit import print_report
from app.entrypoints.cli.incident_html import render
from app.entrypoints.worker import Worker
from app.processes.model_consumers import CANDLES, promoted_score
from app.processes.signal_engine import SignalEngine
from app.queries.audit import Audit
from domain.refusal import RefusedIntent
from domain.signals import MovingAverageCrossover, evaluate
from domain.sizing_record import SizingRecord, decision_id_for
from tests.integration.paper_drill import breaker_reads, funded
from tests.integration.signal_models import NAME, promote, register, trained

ETH = "ETH/USDT:USDT"


class Bars:
    """A clock that moves one bar per ``next()``."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def next(self) -> None:
        self.now += timedelta(minutes=1)


def engine(
    core: Core, bars: Bars, fence: Callable[[], bool] = lambda: True, *, model: bool = True
) -> SignalEngine:
    """An engine on ETH whose entries are scored by the promoted model (``model``: one is
    registered and promoted first if none is)."""
    runtime = core.model_consumers()[0]
    registry = core.models().registry(NAME)
    if model and (registry is None or registry.promoted is None):
        promote(core, register(core, 7))
    venue = core.venue()
    return SignalEngine(
        core.venue(),
        core.executor(),
        core.trade_store(),
        bars,
        symbols=[ETH],
        notional=Decimal(300),
        bar_seconds=60,
        rule=MovingAverageCrossover(fast=2, slow=4),
        fence=fence,
        score=lambda symbol: promoted_score(runtime, venue, symbol),
    )


def play(core: Core, signals: SignalEngine, bars: Bars, prices: list[int]) -> list[Outcome]:
    venue = core.venue()
    assert isinstance(venue, PaperVenue)
    outcomes = []
    for price in prices:
        venue.admin().set_price(ETH, Decimal(price))
        outcomes += [e.outcome for e in signals.step()]
        core.runner.catch_up()
        bars.next()
    return outcomes


def test_a_cross_up_opens_a_long_and_a_cross_down_closes_it_and_opens_a_short(
    core: Core,
) -> None:
    venue = core.venue()
    assert isinstance(venue, PaperVenue)
    venue.admin().deposit(Decimal(10_000))
    breaker_reads(core)  # the breaker has seen the account before any entry
    bars = Bars()
    signals = engine(core, bars)

    up = play(core, signals, bars, [3000, 3000, 3000, 3000, 3100])
    (long_trade,) = core.trade_store().list_open_trades()
    down = play(core, signals, bars, [3100, 3100, 2900, 2800])

    assert up == [Outcome.FILLED]
    assert down == [Outcome.FILLED, Outcome.FILLED]  # the exit, then the short
    closed = core.trade_store().get(long_trade.trade_id)
    assert closed is not None and closed.close_reason == "signal"
    (short_trade,) = core.trade_store().list_open_trades()
    assert short_trade.side == "short"
    assert [p.side for p in venue.fetch_positions()] == ["short"]


def test_a_bar_replayed_after_a_restart_is_not_a_second_trade(core: Core) -> None:
    venue = core.venue()
    assert isinstance(venue, PaperVenue)
    venue.admin().deposit(Decimal(10_000))
    breaker_reads(core)  # the breaker has seen the account before any entry
    bars = Bars()
    play(core, engine(core, bars), bars, [3000, 3000, 3000, 3000, 3100])
    (first,) = core.trade_store().list_open_trades()
    core.executor().close(first.trade_id, reason="manual", actor="operator")
    core.runner.catch_up()
    bars.now -= timedelta(minutes=5)  # a restarted engine sees the same bars again

    replayed = play(core, engine(core, bars), bars, [3000, 3000, 3000, 3000, 3100])

    assert replayed == [Outcome.DUPLICATE]
    assert core.trade_store().list_open_trades() == []
    assert [t.trade_id for t in core.trade_store().history()] == [first.trade_id]


def test_a_worker_that_no_longer_holds_its_lock_acts_on_no_signal(core: Core) -> None:
    venue = core.venue()
    assert isinstance(venue, PaperVenue)
    venue.admin().deposit(Decimal(10_000))
    breaker_reads(core)  # the breaker has seen the account before any entry
    bars = Bars()
    holds_lock = [True]
    signals = engine(core, bars, fence=lambda: holds_lock[0])
    assert play(core, signals, bars, [3000, 3000, 3000, 3000, 3100]) == [Outcome.FILLED]

    holds_lock[0] = False  # the lock session was lost; a standby may be trading already
    down = play(core, signals, bars, [3100, 3100, 2900, 2800])

    assert down == []  # neither the exit nor the short
    (still_open,) = core.trade_store().list_open_trades()
    assert still_open.side == "long"
    assert [p.side for p in venue.fetch_positions()] == ["long"]


# -- the promoted model drives the decisions (P0-06) ------------------------------------------


def until_signal(core: Core, signals: SignalEngine, bars: Bars, prices: list[int]) -> list[Any]:
    """Play ``prices`` until a bar acts; the venue's marks then are those it acted on."""
    venue = core.venue()
    assert isinstance(venue, PaperVenue)
    for price in prices:
        venue.admin().set_price(ETH, Decimal(price))
        executions = signals.step()
        core.runner.catch_up()
        bars.next()
        if executions:
            return executions
    raise AssertionError("no signal")


def decision(core: Core, trade_id: UUID | None) -> SizingRecord:
    assert trade_id is not None
    record = Repository(core.store).find(SizingRecord, decision_id_for(trade_id))
    assert record is not None
    return record


def p_up(core: Core, seed: int) -> float:
    """What the model trained with ``seed`` says of ETH's marks now."""
    candles = core.venue().fetch_candles(ETH, CANDLES)
    return SignalModel.load(trained(seed).artifact).confidence(candles)


def test_after_a_promotion_the_next_entry_is_sized_on_the_new_version(core: Core) -> None:
    funded(core, {ETH: "3000"})
    breaker_reads(core)
    assert (register(core, 7), register(core, 8)) == (1, 2)
    promote(core, 1)
    bars = Bars()
    signals = engine(core, bars)

    (entry,) = until_signal(core, signals, bars, [3000, 3000, 3000, 3000, 3100])
    promote(core, 2)  # between two signals, with no worker syncing the consumers
    exit_, short = until_signal(core, signals, bars, [3100, 3100, 2900, 2800])

    assert (entry.outcome, exit_.outcome, short.outcome) == (Outcome.FILLED,) * 3
    first, second = decision(core, entry.trade_id), decision(core, short.trade_id)
    assert (first.model, first.model_version) == (NAME, 1)
    assert (second.model, second.model_version) == (NAME, 2)
    # A short is sized on the model's P(down).
    assert second.confidence == round(1 - p_up(core, 8), 4)


def test_the_confidence_recorded_is_the_promoted_models_not_the_rules(core: Core) -> None:
    funded(core, {ETH: "3000"})
    breaker_reads(core)
    promote(core, register(core, 7))
    bars = Bars()
    signals = engine(core, bars)
    closes = [3000, 3000, 3000, 3000, 3100]

    (entry,) = until_signal(core, signals, bars, closes)

    recorded = decision(core, entry.trade_id).confidence
    by_v1, by_other = round(p_up(core, 7), 4), round(p_up(core, 8), 4)
    rule = evaluate(signals.rule, ETH, [Decimal(c) for c in closes], core.clock())
    assert rule is not None and by_other != by_v1 != round(rule.confidence, 4)  # they differ
    assert recorded == by_v1
    trade = core.trade_store().get(entry.trade_id)  # type: ignore[arg-type]
    assert trade is not None and trade.side == "long"


def test_with_no_promoted_model_entries_are_refused_and_exits_still_go_out(core: Core) -> None:
    venue = funded(core, {ETH: "3000"})
    breaker_reads(core)
    bars = Bars()
    signals = engine(core, bars, model=False)

    (refused,) = until_signal(core, signals, bars, [3000, 3000, 3000, 3000, 3100])
    held = core.executor().open(
        TradeIntent(symbol=ETH, side="long", notional=Decimal(300), actor="t", reason="manual")
    )
    core.runner.catch_up()
    exit_, short = until_signal(core, signals, bars, [3100, 3100, 2900, 2800])

    assert (refused.outcome, refused.code) == (Outcome.REFUSED, "NO_MODEL")
    assert (short.outcome, short.code) == (Outcome.REFUSED, "NO_MODEL")
    assert exit_.outcome is Outcome.FILLED and exit_.trade_id == held.trade_id
    assert venue.fetch_positions() == []
    logged = core.store.recorder.select_notifications(start=1, limit=100_000)
    events = [core.store.mapper.to_domain_event(n) for n in logged]
    refusals = [e for e in events if isinstance(e, RefusedIntent.Refused)]
    assert [(r.code, r.side) for r in refusals] == [("NO_MODEL", "long"), ("NO_MODEL", "short")]


def test_the_incident_report_names_the_model_version_behind_each_entry(
    core: Core, capsys: pytest.CaptureFixture[str]
) -> None:
    funded(core, {ETH: "3000"})
    breaker_reads(core)
    register(core, 7)
    promote(core, register(core, 8))
    bars = Bars()
    (entry,) = until_signal(core, engine(core, bars), bars, [3000, 3000, 3000, 3000, 3100])
    core.commands.activate_emergency(reason="drill", actor="alice")
    report = core.flattener().run()
    assert report is not None and report.flat
    core.runner.catch_up()

    incident = Audit(core).incident(None)
    print_report(incident)

    (closed,) = incident["trades_closed"]
    assert closed["trade_id"] == entry.trade_id
    assert (closed["entry"]["model"], closed["entry"]["model_version"]) == (NAME, 2)
    assert f"entry sized on {NAME} v2" in capsys.readouterr().out
    assert "<td>signal</td><td>2</td>" in render(incident)  # the HTML report too


def test_the_workers_signal_engine_scores_with_the_promoted_version(settings: Settings) -> None:
    with bootstrap(settings.model_copy(update={"signal_symbols": ETH})) as core:
        funded(core, {ETH: "3000"})
        register(core, 7)
        promote(core, register(core, 8))
        engine_model = core.model_consumers()[0]

        signals = Worker(core).signal_engine(engine_model)

        assert signals is not None and signals.symbols == [ETH]
        score = signals.score(ETH)
        assert score is not None and (score.model, score.version) == (NAME, 2)
        assert score.p_up == p_up(core, 8)
