"""Exact trade records (issue 16, item 4): whoever observes a close first (the flattener, a
reconciliation after a restart, the look-up of a lost answer) books the quantity actually
closed for each trade, at its fill price, fees included."""

from __future__ import annotations

import contextlib
import uuid
from decimal import Decimal
from itertools import count

from adapters.paper.faults import Fault, FaultSettings, draw
from adapters.paper.venue import PaperVenue
from app.bootstrap import Core
from app.commands.executor import Outcome, TradeIntent
from app.queries.audit import Audit
from domain.emergency import Emergency
from domain.ids import EMERGENCY_ID
from domain.trade import Trade
from domain.venue import OrderRequest
from tests.integration.paper_drill import breaker_reads
from tests.store_faults import StoreFaults, is_insert
from tests.waiting import wait_for

BTC, ETH, SOL = "BTC/USDT:USDT", "ETH/USDT:USDT", "SOL/USDT:USDT"
CENT = Decimal("0.01")


def paper(core: Core, prices: dict[str, str]) -> PaperVenue:
    venue = core.venue()
    assert isinstance(venue, PaperVenue)
    admin = venue.admin()
    admin.deposit(Decimal(100_000))
    for symbol, price in prices.items():
        admin.set_price(symbol, Decimal(price))
    breaker_reads(core)
    return venue


def open_trade(core: Core, symbol: str, notional: str) -> uuid.UUID:
    execution = core.executor().open(
        TradeIntent(symbol=symbol, side="long", notional=Decimal(notional), actor="t", reason="t")
    )
    assert execution.outcome is Outcome.FILLED, execution
    assert execution.trade_id is not None
    return execution.trade_id


def trade(core: Core, trade_id: uuid.UUID) -> Trade:
    found = core.store.repository.get(trade_id)
    assert isinstance(found, Trade)
    return found


def exits(core: Core, trade_id: uuid.UUID) -> list[Trade.ExitRecorded]:
    return [e for e in core.store.events.get(trade_id) if isinstance(e, Trade.ExitRecorded)]


def flatten_closes(core: Core) -> list[dict[str, object]]:
    return [
        close
        for e in core.store.events.get(EMERGENCY_ID)
        if isinstance(e, Emergency.PositionsClosed)
        for close in e.closes
    ]


def test_partial_external_close_then_emergency_books_what_the_wallet_saw_to_the_cent(
    core: Core,
) -> None:
    venue = paper(core, {BTC: "50000"})
    wallet_before = venue.fetch_balance().wallet
    trade_id = open_trade(core, BTC, "10000")
    held = trade(core, trade_id).quantity
    venue.admin().set_price(BTC, Decimal(51_000))
    venue.admin().create_order(  # half closed by hand on the venue's site
        OrderRequest(
            symbol=BTC,
            side="sell",
            quantity=held / 2,
            client_order_id=f"web-{uuid.uuid4().hex[:20]}",
            reduce_only=True,
        )
    )
    venue.admin().set_price(BTC, Decimal(49_000))

    core.commands.activate_emergency(reason="drill", actor="test")
    report = core.flattener().run()

    assert report is not None and report.flat
    closed = trade(core, trade_id)
    wallet_change = venue.fetch_balance().wallet - wallet_before
    assert closed.realized_pnl is not None
    assert abs(closed.realized_pnl - wallet_change) < CENT, (closed.realized_pnl, wallet_change)
    booked = exits(core, trade_id)
    # Each half at its own fill, each with its own fee: nothing booked twice or at a guess.
    assert sum(e.quantity for e in booked) == held
    assert [e.price_source for e in booked] == ["fill", "fill"]
    assert all(e.fee > 0 for e in booked)
    assert closed.close_reason == "emergency" and closed.exact


def test_a_restart_during_the_flatten_keeps_the_flatteners_fill_price_not_the_mark(
    core: Core,
) -> None:
    venue = paper(core, {BTC: "50000"})
    trade_id = open_trade(core, BTC, "5000")
    venue.admin().set_price(BTC, Decimal(49_000))
    core.commands.activate_emergency(reason="drill", actor="test")

    class Crash(Exception):
        pass

    def crash(_: float) -> None:
        raise Crash  # the worker dies after the closes are sent, before it sees flat

    flattener = core.flattener()
    flattener.sleep = crash
    with contextlib.suppress(Crash):
        flattener.run()
    wait_for(lambda: bool(flatten_closes(core)), what="the closes recorded")
    assert venue.fetch_positions() == []
    (close,) = flatten_closes(core)

    report = core.reconciler().run()  # the restarted worker reconciles before flat

    assert report.closed_external == [trade_id]
    closed = trade(core, trade_id)
    (exit_,) = exits(core, trade_id)
    assert (exit_.price_source, exit_.price) == ("fill", close["average_price"])
    assert exit_.price != Decimal(49_000)  # the mark
    assert exit_.fee == close["fee"] and exit_.fee > 0
    assert closed.close_reason == "emergency"


def seed_where(pattern: list[Fault], settings: FaultSettings) -> int:
    """A seed whose first draws are ``pattern`` (orders), found through the pure draw."""
    for seed in count():
        candidate = FaultSettings(**{**vars(settings), "seed": seed})
        if all(draw(candidate, n, new_order=True).fault is f for n, f in enumerate(pattern)):
            return seed
    raise AssertionError("unreachable")


def test_a_close_whose_answer_was_lost_still_shows_in_the_incident_report(core: Core) -> None:
    venue = paper(core, {BTC: "50000", ETH: "3000", SOL: "150"})
    trade_ids = [open_trade(core, s, n) for s, n in ((BTC, "5000"), (ETH, "3000"), (SOL, "1500"))]
    core.commands.activate_emergency(reason="drill", actor="test")
    every_answer_lost = FaultSettings(timeout_rate=Decimal(1))
    seed = seed_where([Fault.TIMEOUT_EXECUTED] * 3, every_answer_lost)
    lost = FaultSettings(timeout_rate=Decimal(1), seed=seed)

    def on_progress(message: str) -> None:
        # From the first attempt on, every answer is lost: the three closes execute, their
        # answers and every look-up time out, until the deadline.
        if message.startswith("attempt 1:"):
            venue.admin().set_faults(lost)

    first = core.flattener(progress=on_progress)
    first.deadline = 1.0
    incomplete = first.run()
    assert incomplete is not None and not incomplete.flat
    assert venue.admin().fetch_positions() == []  # executed, though no answer said so
    venue.admin().set_faults(None)

    again = core.flattener().run()  # the worker's next call, the venue answering again

    assert again is not None and again.flat
    incident = Audit(core).incident(None)
    assert incident["positions_closed"] == 3
    assert sorted(o["symbol"] for o in incident["orders"]) == sorted([BTC, ETH, SOL])
    assert all(o["fill_price"] is not None for o in incident["orders"])
    for trade_id in trade_ids:
        booked = exits(core, trade_id)
        assert [e.price_source for e in booked] == ["fill"], booked
        assert trade(core, trade_id).close_reason == "emergency"
    assert len(incident["trades_closed"]) == 3


def test_closes_whose_results_were_never_recorded_are_looked_up_and_booked_at_their_fill(
    core: Core,
) -> None:
    venue = paper(core, {BTC: "50000", ETH: "3000"})
    trade_ids = [open_trade(core, s, n) for s, n in ((BTC, "5000"), (ETH, "3000"))]
    core.commands.activate_emergency(reason="drill", actor="test")

    class Crash(Exception):
        pass

    def crash(_: float) -> None:
        raise Crash  # dies after its closes went out, as a run whose store went silent

    first = core.flattener()
    first.sleep = crash
    with StoreFaults().attach(core) as faults:
        # The attempt is recorded; what its closes did never is (neither filled nor unknown).
        faults.rule = lambda name, _i, topics: (
            "error"
            if is_insert(name) and ("PositionsClosed" in topics or "ClosesUnknown" in topics)
            else None
        )
        with contextlib.suppress(Crash):
            first.run()
    assert venue.fetch_positions() == []  # the closes executed
    assert flatten_closes(core) == []  # and nothing says so

    again = core.flattener().run()  # the worker's next call

    assert again is not None and again.flat
    fills = {str(c["symbol"]): c["average_price"] for c in flatten_closes(core)}
    assert sorted(fills) == [BTC, ETH], fills  # looked up by client order id and recorded
    for trade_id, symbol in zip(trade_ids, (BTC, ETH), strict=True):
        (exit_,) = exits(core, trade_id)
        assert (exit_.price_source, exit_.price) == ("fill", fills[symbol]), exit_
        assert trade(core, trade_id).close_reason == "emergency"
