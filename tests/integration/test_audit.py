"""Audit: the state at any instant and the incident report, rebuilt from the log of a
scripted history (a book opened, a slide to a soft breach, a crash, the flatten, a reset)."""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest

from adapters.paper.venue import PaperVenue
from app.bootstrap import Core
from app.commands.executor import Outcome, TradeIntent
from app.entrypoints.cli.incident_html import render
from app.processes.drawdown_breaker import DrawdownBreaker
from app.processes.flattener import positions_and_orders
from app.queries.audit import Audit
from domain.drawdown import BreakerState
from domain.errors import InvalidCommand
from tests.waiting import wait_for

SYMBOLS = {"BTC/USDT:USDT": Decimal(50_000), "ETH/USDT:USDT": Decimal(3_000)}


@dataclass
class History:
    before_crash: datetime
    between: datetime  # after the soft breach, before the hard one
    after_reset: datetime
    trade_ids: list[Any]
    reading_equity: Decimal


def moment(core: Core) -> datetime:
    """An instant strictly between what was recorded before and what comes after: the clock
    is waited on (bounded) until it has moved past every earlier timestamp, and again past
    the instant returned, so no event shares it."""
    recorded = core.clock()  # not before anything already recorded
    wait_for(lambda: core.clock() > recorded, 5, interval=0.001, what="the clock to tick")
    at = core.clock()
    wait_for(lambda: core.clock() > at, 5, interval=0.001, what="the clock to tick")
    return at


def move(venue: PaperVenue, factor: Decimal) -> None:
    venue.admin().set_prices(
        {s: (p * factor).quantize(Decimal("0.01")) for s, p in SYMBOLS.items()}
    )


def leverage(venue: PaperVenue) -> Decimal:
    """Exposure over equity: how far prices must fall for a given drawdown."""
    exposure = sum((p.quantity * (p.mark_price or 0) for p in venue.fetch_positions()), Decimal(0))
    return exposure / venue.fetch_balance().equity


@pytest.fixture
def history(core: Core) -> History:
    venue = core.venue()
    assert isinstance(venue, PaperVenue)
    venue.admin().deposit(Decimal(10_000))
    venue.admin().set_prices(SYMBOLS)
    breaker: DrawdownBreaker = core.drawdown_breaker()
    breaker.poll()
    executor = core.executor()
    trade_ids = []
    for symbol in SYMBOLS:
        opened = executor.open(
            TradeIntent(
                symbol=symbol,
                side="long",
                notional=Decimal(10_000),
                actor="test",
                reason="scripted",
                leverage=Decimal(3),
            )
        )
        assert opened.outcome is Outcome.FILLED, opened.reason
        trade_ids.append(opened.trade_id)
    breaker.poll()
    before_crash = moment(core)

    fall = Decimal("0.07") / leverage(venue)  # the price fall for a 7 % drawdown
    for step in range(1, 5):  # in steps small enough to be taken as they come
        move(venue, 1 - fall * step / 4)
        breaker.poll()
    assert breaker.load().breaker_state is BreakerState.SOFT_BREACH  # type: ignore[union-attr]
    between = moment(core)

    move(venue, 1 - fall * 3)  # a crash to about -21 %
    poll = breaker.poll()
    assert poll.last is not None and poll.last.transition.value == "hard_breach"
    reading_equity = breaker.load().equity  # type: ignore[union-attr]
    report = core.flattener().run()
    assert report is not None and report.flat
    breaker.reset_peak(actor="alice", reason="reviewed")
    core.commands.reset_emergency(
        reason="reviewed", actor="alice", venue_exposure=lambda: positions_and_orders(venue)
    )
    after_reset = moment(core)
    assert reading_equity is not None
    return History(before_crash, between, after_reset, trade_ids, reading_equity)


def test_the_state_before_the_crash_shows_the_positions_open(core: Core, history: History) -> None:
    state = Audit(core).state_at(history.before_crash)
    assert {t["trade_id"] for t in state["open_trades"]} == set(history.trade_ids)
    assert {p["symbol"] for p in state["positions"]} == set(SYMBOLS)
    assert state["policy"]["allow_new_trades"] is True
    assert state["emergency"]["active"] is False
    assert state["risk"]["state"] == "normal"
    assert state["position"] > 0


def test_between_the_soft_and_the_hard_breach_entries_are_blocked_but_no_emergency(
    core: Core, history: History
) -> None:
    state = Audit(core).state_at(history.between)
    assert state["risk"]["state"] == "soft_breach"
    assert state["policy"]["allow_new_trades"] is False
    assert state["policy"]["emergency_mode"] is False
    assert state["emergency"]["active"] is False
    assert len(state["open_trades"]) == 2  # still held: a soft breach closes nothing
    # Today the trades are closed and the latch was used: the answer is not today's.
    assert core.open_trade_ids() == []


def test_after_the_reset_there_is_no_emergency_and_nothing_open(
    core: Core, history: History
) -> None:
    state = Audit(core).state_at(history.after_reset)
    assert state["emergency"]["active"] is False
    assert state["emergency"]["activation_number"] == 1
    assert state["open_trades"] == []
    assert state["risk"]["state"] == "normal"


def test_the_incident_links_the_triggering_reading_to_every_closing_order(
    core: Core, history: History
) -> None:
    report = Audit(core).incident(None)
    trigger = report["trigger"]
    assert trigger["source"] == "drawdown"
    assert trigger["drawdown"] <= Decimal("-0.10")
    assert trigger["equity"] == history.reading_equity
    assert report["time_to_flat_ms"] > 0 and report["flat"]  # ms, activation to flat
    assert report["reset"]["actor"] == "alice"
    assert report["policy_at_activation"]["emergency_mode"] is True
    assert {o["symbol"] for o in report["orders"]} == set(SYMBOLS)
    assert all(o["slippage_bps"] is not None and o["slippage_bps"] >= 0 for o in report["orders"])
    assert {t["trade_id"] for t in report["trades_closed"]} == set(history.trade_ids)

    parent = {link["event_id"]: link["caused_by"] for link in report["causation_chain"]}
    for order in report["orders"]:
        step, seen = order["event_id"], []
        while step is not None and step != trigger["reading_event_id"]:
            seen.append(step)
            assert len(seen) < 50, "a causation cycle"
            step = parent.get(step)
        assert step == trigger["reading_event_id"], f"{order['symbol']} not linked: {seen}"


def test_the_timeline_finds_the_breaches_by_their_operator_names(
    core: Core, history: History
) -> None:
    audit = Audit(core)
    rows = audit.timeline(history.before_crash, history.after_reset)
    types = [r["type"] for r in rows]
    assert types.index("risk.drawdown.soft_breach") < types.index("risk.drawdown.hard_breach")
    hard = audit.timeline(
        history.before_crash, history.after_reset, event_type_or_topic="risk.drawdown.hard_breach"
    )
    assert [r["type"] for r in hard] == ["risk.drawdown.hard_breach"]
    assert hard[0]["figures"]["drawdown"] <= Decimal("-0.10")
    # What an operator types: part of a name, any case, a class name with or without its dot.
    for fragment in ("risk.drawdown", "DRAWDOWN", "breach"):
        found = audit.timeline(
            history.before_crash, history.after_reset, event_type_or_topic=fragment
        )
        assert {"risk.drawdown.soft_breach", "risk.drawdown.hard_breach"} <= {
            r["type"] for r in found
        }, fragment
    for name in ("Emergency.Activated", "emergencyactivated"):
        activated = audit.timeline(
            history.before_crash, history.after_reset, event_type_or_topic=name
        )
        assert [r["type"] for r in activated] == ["Emergency.Activated"], name
    with pytest.raises(InvalidCommand, match="names no event type"):
        audit.timeline(history.before_crash, history.after_reset, event_type_or_topic="nosuch")


def test_the_html_report_is_one_page_with_the_chart(core: Core, history: History) -> None:
    page = render(Audit(core).incident("1"))
    found = re.search(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert found is not None
    assert base64.b64decode(found.group(1)).startswith(b"\x89PNG\r\n\x1a\n")
    assert "http://" not in page and "https://" not in page  # nothing fetched from outside
