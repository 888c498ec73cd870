"""P0-05 with a real store and the paper venue: the regime from the venue's prices, the
fallback logged and recorded, the executor sizing every intent, and a Q-table that learns
from closed trades and survives a restart."""

from __future__ import annotations

import logging
from decimal import Decimal
from uuid import uuid4

import pytest

from adapters.paper.venue import PaperVenue
from app.bootstrap import Core, bootstrap
from app.commands.executor import Outcome, TradeIntent
from app.config import Settings
from domain.ids import SIZING_AGENT_ID
from domain.market_regime import MarketRegime
from domain.sizing import ALPHA
from domain.sizing_agent import SizingAgent
from domain.sizing_record import SizingRecord
from domain.trade import Trade
from domain.venue import OrderRequest
from tests.integration.paper_drill import breaker_reads, intent

BTC = "BTC/USDT:USDT"
CALM = [60000, 60010, 60005, 60012, 60008, 60011, 60009]
WILD = [60000, 63000, 57500, 64000, 56000, 62500, 55000]


def feed(core: Core, prices: list[int]) -> PaperVenue:
    venue = core.venue()
    assert isinstance(venue, PaperVenue)
    for price in prices:
        venue.admin().set_price(BTC, Decimal(price))
    return venue


def test_a_wild_market_and_an_untrained_table_fall_back_logged_and_recorded(
    core: Core, caplog: pytest.LogCaptureFixture
) -> None:
    feed(core, WILD)
    with caplog.at_level(logging.WARNING):
        sized = core.sizing().size(
            symbol=BTC, confidence=0.75, base_notional=Decimal(1000), decision_id=uuid4()
        )

    d = sized.decision
    assert sized.regime.regime == "HIGH" and sized.regime.known
    assert d.fallback and (d.size_multiplier, d.leverage) == (Decimal("0.3"), Decimal("1.0"))
    assert any("RL_FALLBACK_HIGH_VOL" in r.getMessage() for r in caplog.records)
    assert sized.decision_id is not None
    record = core.store.repository.get(sized.decision_id)
    assert isinstance(record, SizingRecord) and record.fallback
    changes = list(core.store.events.get(MarketRegime.create_id(symbol=BTC)))
    assert [getattr(e, "new", None) for e in changes][-1] == "HIGH"


def test_a_calm_market_is_not_high_and_takes_the_neutral_action(core: Core) -> None:
    feed(core, CALM)
    sized = core.sizing().size(symbol=BTC, confidence=0.75, base_notional=Decimal(1000))
    assert sized.regime.regime == "LOW"
    assert not sized.decision.fallback and sized.decision.notional == Decimal(1000)


def test_too_few_prices_are_sized_as_high_and_say_so(core: Core) -> None:
    sized = core.sizing().size(symbol=BTC, confidence=0.9, base_notional=Decimal(1000))
    assert sized.regime.regime == "HIGH" and not sized.regime.known
    assert sized.regime.note is not None and "sized as HIGH" in sized.regime.note
    assert sized.decision.fallback


def test_the_executor_sizes_every_intent_before_the_gate(core: Core) -> None:
    venue = feed(core, WILD)
    venue.admin().deposit(Decimal(100_000))
    breaker_reads(core)  # the breaker has seen the account before any entry
    execution = core.executor().open(
        TradeIntent(symbol=BTC, side="long", notional=Decimal(1000), actor="t", reason="t")
    )
    assert execution.outcome is Outcome.FILLED and execution.trade_id is not None
    trade = core.store.repository.get(execution.trade_id)
    assert isinstance(trade, Trade)
    assert trade.sizing is not None and trade.sizing["fallback"] is True
    assert trade.leverage == Decimal("1.0")
    notional = trade.entry_cost
    assert Decimal(290) < notional < Decimal(301)  # 0.3 x 1000, at the mark plus slippage


def test_closed_trades_move_the_q_table_and_a_restart_sees_the_same_table(
    settings: Settings, core: Core
) -> None:
    venue = feed(core, CALM)
    venue.admin().deposit(Decimal(100_000))
    breaker_reads(core)  # the breaker has seen the account before any entry
    # Three round trips of one size within seconds: no duplicate window here.
    core.commands.update_policy(actor="t", reason="t", pretrade={"duplicate_window_s": "0"})
    pnls = []
    for exit_price in (Decimal(60250), Decimal(59900), Decimal(60300)):
        venue.admin().set_price(BTC, Decimal(60010))
        opened = core.executor().open(intent(actor="t", reason="t", confidence=Decimal("0.75")))
        assert opened.trade_id is not None
        venue.admin().set_price(BTC, exit_price)
        core.executor().close(opened.trade_id, reason="signal", actor="t")
        closed = core.store.repository.get(opened.trade_id)
        assert isinstance(closed, Trade) and closed.realized_pnl is not None
        pnls.append(closed.realized_pnl)
        core.runner.catch_up()

    lessons = [
        e for e in core.store.events.get(SIZING_AGENT_ID) if isinstance(e, SizingAgent.Learned)
    ]
    assert [lesson.reward > 0 for lesson in lessons] == [p > 0 for p in pnls] == [True, False, True]
    for lesson in lessons:
        # Each step moves the value towards the reward, by ALPHA of the gap.
        assert lesson.new_value == pytest.approx(
            lesson.old_value + ALPHA * (lesson.reward - lesson.old_value)
        )
    table = _agent_table(core)
    assert table[lessons[0].state_key][lessons[0].action_index] != 0
    with bootstrap(settings) as restarted:
        assert _agent_table(restarted) == table


def _agent_table(core: Core) -> dict[str, list[float]]:
    agent = core.sizing().agent()
    assert agent is not None
    return {k: list(v) for k, v in agent.table.items()}


def test_a_long_trained_table_loads_from_a_snapshot_identical_to_its_replay(core: Core) -> None:
    agent = SizingAgent.new(timestamp=core.clock())
    core.store.save(agent)
    for i in range(120):
        agent.learn(
            trade_id=uuid4(),
            state_key=f"c{i % 4}|win|LOW",
            action_index=i % 16,
            reward=(i % 7 - 3) / 10,
            timestamp=core.clock(),
        )
        core.store.save(agent)

    snapshots = list(core.store.snapshots.get(SIZING_AGENT_ID)) if core.store.snapshots else []
    loaded = core.store.repository.get(SIZING_AGENT_ID)
    replayed = SizingAgent.__new__(SizingAgent)
    for number, event in enumerate(core.store.events.get(SIZING_AGENT_ID)):
        replayed = event.mutate(None if number == 0 else replayed)  # type: ignore[arg-type]

    assert snapshots, "the agent should have been snapshotted"
    assert isinstance(loaded, SizingAgent) and isinstance(replayed, SizingAgent)
    assert loaded.table == replayed.table and loaded.learned == replayed.learned
    assert loaded.version == 121


class _NoFillHistory:
    """The paper venue without its fill listing: a close outside tradecore then has no
    evidence but the mark."""

    def __init__(self, venue: PaperVenue) -> None:
        self._venue = venue

    def __getattr__(self, name: str) -> object:
        if name == "fetch_account_fills":
            raise AttributeError(name)
        return getattr(self._venue, name)


def test_the_agent_does_not_learn_from_a_close_booked_at_the_mark(core: Core) -> None:
    from app.processes.reconciliation import Reconciler  # noqa: PLC0415 - this test wires its own venue

    venue = feed(core, CALM)
    venue.admin().deposit(Decimal(100_000))
    breaker_reads(core)
    opened = core.executor().open(intent(actor="t", reason="t", confidence=Decimal("0.75")))
    assert opened.trade_id is not None
    sized = core.store.repository.get(opened.trade_id)
    assert (
        isinstance(sized, Trade) and sized.sizing and sized.sizing.get("action_index") is not None
    )
    venue.admin().create_order(  # closed on the venue's site; this venue lists no fills
        OrderRequest(
            symbol=BTC,
            side="sell",
            quantity=sized.quantity,
            client_order_id=f"web-{uuid4().hex[:20]}",
            reduce_only=True,
        )
    )
    blind = core.reconciler()
    reconciler = Reconciler(
        core.store,
        _NoFillHistory(venue),  # type: ignore[arg-type]
        core.clock,
        core.open_trade_ids,
        blind.exclusive_flow,
    )

    assert reconciler.run().closed_external == [opened.trade_id]
    core.runner.catch_up()

    lessons = [
        e for e in core.store.events.get(SIZING_AGENT_ID) if isinstance(e, SizingAgent.Learned)
    ]
    assert lessons == []
    closed = core.store.repository.get(opened.trade_id)
    assert isinstance(closed, Trade) and closed.close_reason == "external" and not closed.exact
