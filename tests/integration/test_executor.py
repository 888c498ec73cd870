"""The executor trades only through the gate: checked immediately before submission, the
order recorded before it leaves, refusals recorded, timeouts resolved by client order id."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select

from adapters.paper import tables as t
from adapters.paper.venue import PaperVenue
from app.bootstrap import Core
from app.commands.executor import Executor, Outcome
from domain.refusal import RefusedIntent
from domain.trade import Trade
from domain.venue import Order, OrderRequest, OutcomeUnknown, VenueUnavailable
from tests.integration.paper_drill import breaker_reads, intent
from tests.waiting import wait_for

BTC = "BTC/USDT:USDT"


def funded(core: Core) -> PaperVenue:
    venue = core.venue()
    assert isinstance(venue, PaperVenue)
    venue.admin().deposit(Decimal(100_000))
    breaker_reads(core)  # the breaker has seen the account before any entry
    venue.admin().set_price(BTC, Decimal(50_000))
    return venue


def requests_at_venue(core: Core, *, opening: bool | None = None) -> int:
    query = select(func.count()).select_from(t.requests)
    if opening is not None:
        query = query.where(t.requests.c.reduce_only.is_(not opening))
    with core.engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def test_an_allowed_intent_is_recorded_before_it_is_sent_and_its_fill_recorded(
    core: Core,
) -> None:
    venue = funded(core)
    seen_in_log_when_sent: list[bool] = []

    class Spy:
        """The real paper venue; notes whether the order was in the log when it arrived."""

        name = "paper"

        def __getattr__(self, item: str) -> Any:
            return getattr(venue, item)

        def create_order(self, request: OrderRequest) -> Order:
            seen_in_log_when_sent.append(
                any(
                    isinstance(e, Trade.OrderSubmitted)
                    and e.client_order_id == request.client_order_id
                    for e in all_events(core)
                )
            )
            return venue.create_order(request)

    execution = executor(core, Spy()).open(intent())

    assert execution.outcome is Outcome.FILLED
    assert seen_in_log_when_sent == [True]
    assert execution.trade_id is not None
    trade = core.store.repository.get(execution.trade_id)
    assert isinstance(trade, Trade)
    opened = next(iter(core.store.events.get(trade.id)))
    assert isinstance(opened, Trade.Opened) and opened.policy_version is not None
    assert trade.quantity == Decimal("0.02")
    assert trade.entry_price == execution.average_price
    assert trade.fees > 0 and not trade.unresolved_orders
    assert [p.quantity for p in venue.fetch_positions()] == [Decimal("0.02")]


def test_with_the_emergency_active_an_intent_is_refused_recorded_and_never_sent(
    core: Core,
) -> None:
    funded(core)
    core.commands.activate_emergency(reason="drill", actor="test")

    execution = core.executor().open(intent())

    assert execution.outcome is Outcome.REFUSED and execution.code == "EMERGENCY_ACTIVE"
    assert "drill" in execution.reason
    assert requests_at_venue(core) == 0
    refusals = [e for e in all_events(core) if isinstance(e, RefusedIntent.Refused)]
    assert [(r.code, r.symbol) for r in refusals] == [("EMERGENCY_ACTIVE", BTC)]


def test_an_intent_over_the_policy_leverage_cap_is_refused(core: Core) -> None:
    funded(core)
    core.commands.update_policy(actor="test", reason="cap", max_leverage=Decimal(3))

    # Sizing caps leverage itself; this is the executor's own last line, unsized.
    execution = executor(core, core.venue()).open(intent(leverage=Decimal(5)))

    assert execution.outcome is Outcome.REFUSED and execution.code == "LEVERAGE_CAP"
    assert requests_at_venue(core) == 0


def test_a_timeout_after_the_venue_executed_is_resolved_by_client_order_id(core: Core) -> None:
    venue = funded(core)

    class LostAnswer(Wrapped):
        def create_order(self, request: OrderRequest) -> Order:
            venue.create_order(request)
            raise OutcomeUnknown("the answer was lost")

    execution = executor(core, LostAnswer(venue)).open(intent())

    assert execution.outcome is Outcome.FILLED
    assert execution.filled == Decimal("0.02")
    assert requests_at_venue(core) == 1


def test_a_timeout_before_the_venue_saw_the_order_resolves_as_never_arrived(core: Core) -> None:
    venue = funded(core)

    class LostRequest(Wrapped):
        def create_order(self, request: OrderRequest) -> Order:
            raise OutcomeUnknown("the request was lost")

    execution = executor(core, LostRequest(venue)).open(intent())

    assert execution.outcome is Outcome.REJECTED and "never arrived" in execution.reason
    assert execution.trade_id is not None
    trade = core.store.repository.get(execution.trade_id)
    assert isinstance(trade, Trade)
    assert trade.close_reason == "unfilled" and not trade.unresolved_orders
    assert venue.fetch_positions() == []


def test_an_unanswerable_timeout_is_left_unresolved_for_reconciliation(core: Core) -> None:
    venue = funded(core)

    class Unreachable(Wrapped):
        def create_order(self, request: OrderRequest) -> Order:
            venue.create_order(request)
            raise OutcomeUnknown("timeout")

        def fetch_order_by_client_id(self, client_order_id: str, symbol: str) -> Order | None:
            raise VenueUnavailable("still down")

    execution = executor(core, Unreachable(venue)).open(intent())

    assert execution.outcome is Outcome.OUTCOME_UNKNOWN
    assert execution.trade_id is not None
    report = core.reconciler().run()
    assert report.orders_resolved == 1 and report.adopted == []
    trade = core.store.repository.get(execution.trade_id)
    assert isinstance(trade, Trade)
    assert trade.quantity == Decimal("0.02") and not trade.unresolved_orders


def test_the_same_intent_key_is_one_trade_and_one_order_ever(core: Core) -> None:
    funded(core)
    first = core.executor().open(intent(key="signal:bar-1"))
    again = core.executor().open(intent(key="signal:bar-1"))

    assert first.outcome is Outcome.FILLED
    assert again.outcome is Outcome.DUPLICATE and again.trade_id == first.trade_id
    assert requests_at_venue(core) == 1


def test_intents_racing_an_activation_leave_the_venue_flat_and_nothing_opens_after_the_sweep(
    core: Core,
) -> None:
    venue = funded(core)
    # The same size again and again: the duplicate check would refuse most of them before
    # the race this test is about.
    core.commands.update_policy(actor="t", reason="t", pretrade={"duplicate_window_s": "0"})
    stop = threading.Event()
    outcomes: dict[int, list[Outcome]] = {n: [] for n in range(6)}

    class SlowNetwork(Wrapped):
        """The real venue behind a slow network: an order takes longer to arrive than the
        flattener takes to sweep, so without the barrier one would open after the sweep."""

        def create_order(self, request: OrderRequest) -> Order:
            time.sleep(0.3)  # the network's delay (a fault injected), not a synchronisation
            return venue.create_order(request)

    def trader(n: int) -> None:
        ex = executor(core, SlowNetwork(venue))
        while not stop.is_set():
            outcomes[n].append(ex.open(intent("500")).outcome)

    def filled() -> int:
        return sum(o.count(Outcome.FILLED) for o in outcomes.values())

    threads = [threading.Thread(target=trader, args=(n,)) for n in outcomes]
    for thread in threads:
        thread.start()
    wait_for(lambda: filled() >= 10, timeout=60.0, what="10 entries filled before the activation")
    core.commands.activate_emergency(reason="race", actor="test")
    report = core.flattener().run()
    swept_at = core.clock()
    # Every trader's order in flight at the sweep has landed once that trader has been
    # answered twice more (the second answer is to an intent made after the sweep).
    seen = {n: len(o) for n, o in outcomes.items()}
    wait_for(
        lambda: all(len(o) >= seen[n] + 2 for n, o in outcomes.items()),
        timeout=60.0,
        what="every trader answered twice after the sweep",
    )
    stop.set()
    for thread in threads:
        thread.join(timeout=30.0)
    assert not any(thread.is_alive() for thread in threads)
    after = [x for n, o in outcomes.items() for x in o[seen[n] + 1 :]]

    assert report is not None and report.flat
    assert venue.fetch_positions() == []
    assert after and set(after) == {Outcome.REFUSED}  # nothing opened after the sweep
    with core.engine.connect() as conn:
        last_opening = conn.execute(
            select(func.max(t.requests.c.received_at)).where(t.requests.c.reduce_only.is_(False))
        ).scalar_one()
    assert last_opening < swept_at
    assert core.open_trade_ids() == []


def test_after_the_emergency_flatten_every_trade_is_closed_with_reason_emergency(
    core: Core,
) -> None:
    funded(core)
    # Two sizes: the same order twice within the duplicate window would be refused.
    opened = [core.executor().open(intent(notional)) for notional in ("1000", "900")]
    core.commands.activate_emergency(reason="drill", actor="test")
    report = core.flattener().run()

    assert report is not None and report.flat
    for execution in opened:
        assert execution.trade_id is not None
        trade = core.store.repository.get(execution.trade_id)
        assert isinstance(trade, Trade)
        assert trade.close_reason == "emergency" and trade.quantity == 0
        exits = [e for e in core.store.events.get(trade.id) if isinstance(e, Trade.ExitRecorded)]
        assert [e.price_source for e in exits] == ["fill"]
        # Bought at the mark plus slippage, closed at the mark minus it, less two fees.
        assert trade.realized_pnl is not None and trade.realized_pnl < 0


# -- helpers ---------------------------------------------------------------------------------


@dataclass
class Wrapped:
    """The real paper venue behind a wrapper a test can override one method of."""

    venue: PaperVenue
    name: str = "paper"

    def __getattr__(self, item: str) -> Any:
        return getattr(self.venue, item)


def executor(core: Core, venue: Any) -> Executor:
    base = core.executor()
    return Executor(core.store, core.gate, venue, core.clock, base.order_flow, lookup_interval=0.01)


def all_events(core: Core) -> list[Any]:
    notifications = core.store.recorder.select_notifications(start=1, limit=100_000)
    return [core.store.mapper.to_domain_event(n) for n in notifications]


def test_closing_a_trade_exits_with_a_reduce_only_order_even_during_a_halt(core: Core) -> None:
    venue = funded(core)
    opened = executor(core, venue).open(intent())
    assert opened.trade_id is not None
    venue.admin().set_price(BTC, Decimal(55_000))
    core.commands.update_policy(actor="test", reason="halt", allow_new_trades=False)

    closed = core.executor().close(opened.trade_id, reason="signal", actor="test")

    assert closed.outcome is Outcome.FILLED
    trade = core.store.repository.get(opened.trade_id)
    assert isinstance(trade, Trade)
    assert (trade.close_reason, trade.quantity) == ("signal", 0)
    # 0.02 BTC from ~50,025 to ~54,972: about +99 less fees.
    assert trade.realized_pnl is not None and Decimal(90) < trade.realized_pnl < Decimal(100)
    assert venue.fetch_positions() == []
    assert requests_at_venue(core, opening=True) == 1
