"""The caps count the venue's position and account, not one order: entries that each fit
cannot add up past ``max_position_notional`` (per symbol and side, resting opening orders
included) or ``max_leverage`` x equity (the whole account); an entry over a cap is sized
down to what is left, naming the cap, or refused when nothing is left."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.paper.venue import PaperVenue
from app.bootstrap import Core, bootstrap
from app.commands.executor import Execution, Outcome, TradeIntent
from app.config import Settings
from domain.refusal import RefusedIntent
from domain.trade import Trade
from domain.venue import Order, OrderRequest
from tests.conftest import TEST_BREAKER_SIGHT
from tests.integration.paper_drill import breaker_reads, place
from tests.postgres import PgTestServer, app_address

BTC, ETH, SOL = "BTC/USDT:USDT", "ETH/USDT:USDT", "SOL/USDT:USDT"
MARKS = {BTC: Decimal(50_000), ETH: Decimal(3_000), SOL: Decimal(150)}


def intent(symbol: str = BTC, notional: str = "1000", side: str = "long") -> TradeIntent:
    return TradeIntent(
        symbol=symbol, side=side, notional=Decimal(notional), actor="test", reason="t"
    )


def account(core: Core, deposit: Decimal) -> PaperVenue:
    venue = core.venue()
    assert isinstance(venue, PaperVenue)
    venue.admin().deposit(deposit)
    venue.admin().set_prices(MARKS)
    breaker_reads(core)
    return venue


def sizing(core: Core, execution: Execution) -> dict[str, Any]:
    assert execution.trade_id is not None
    trade = core.store.repository.get(execution.trade_id)
    assert isinstance(trade, Trade) and trade.sizing is not None
    return trade.sizing


def refusals(core: Core) -> list[str]:
    notifications = core.store.recorder.select_notifications(start=1, limit=100_000)
    events = [core.store.mapper.to_domain_event(n) for n in notifications]
    return [e.code for e in events if isinstance(e, RefusedIntent.Refused)]


def test_four_entries_on_one_symbol_end_at_most_the_position_cap(core: Core) -> None:
    venue = account(core, Decimal(10_000))
    # The duplicate check off: four identical entries within its window would be refused
    # as duplicates before the cap is reached.
    core.commands.update_policy(
        actor="test",
        reason="x",
        max_position_notional=Decimal(1000),
        pretrade={"duplicate_window_s": "0"},
    )

    # The agent sizes each 1,000 asked to 300 (regime HIGH, untrained): 1,200 in four.
    done = [core.executor().open(intent()) for _ in range(4)]

    assert [e.outcome for e in done] == [Outcome.FILLED] * 4
    assert [sizing(core, e).get("exposure_caps") for e in done] == [
        None,
        None,
        None,
        ["max_position_notional"],
    ]
    assert "capped by max_position_notional" in done[3].reason
    (btc,) = venue.fetch_positions()
    assert Decimal(999) < btc.notional <= Decimal(1000)

    fifth = core.executor().open(intent())
    assert fifth.outcome is Outcome.REFUSED and fifth.code == "NOTIONAL_CAP"
    assert refusals(core) == ["NOTIONAL_CAP"]
    assert venue.fetch_positions()[0].notional <= Decimal(1000)


def test_four_entries_across_symbols_end_at_most_the_account_leverage(core: Core) -> None:
    venue = account(core, Decimal(1000))
    core.commands.update_policy(actor="test", reason="x", max_leverage=Decimal(1))

    done = [core.executor().open(intent(symbol)) for symbol in (BTC, ETH, SOL, BTC)]

    assert [e.outcome for e in done] == [Outcome.FILLED] * 4
    assert sizing(core, done[3])["exposure_caps"] == ["max_leverage"]
    fifth = core.executor().open(intent(ETH))
    assert fifth.outcome is Outcome.REFUSED and fifth.code == "ACCOUNT_LEVERAGE_CAP"
    open_notional = sum((p.notional for p in venue.fetch_positions()), Decimal(0))
    assert open_notional <= venue.fetch_balance().equity  # 1x
    assert open_notional > Decimal(990)  # sized down to what was left, not refused early


def test_resting_opening_orders_count_towards_the_position_cap(core: Core) -> None:
    venue = account(core, Decimal(10_000))
    core.commands.update_policy(actor="test", reason="x", max_position_notional=Decimal(1000))
    place(venue, BTC, "buy", "0.01", type="limit", price=Decimal(40_000))  # 400 resting
    place(venue, BTC, "sell", "0.01", type="limit", price=Decimal(60_000))  # the short side

    execution = core.executor().open(intent(notional="3000"))  # sized to 900

    assert execution.outcome is Outcome.FILLED
    assert sizing(core, execution)["exposure_caps"] == ["max_position_notional"]
    (btc,) = venue.fetch_positions()
    assert btc.notional == Decimal(600)  # 1,000 less the 400 resting


# -- property: at the moment each order is sent ---------------------------------------------

Step = tuple[str, str, str, Decimal]  # ("open", symbol, side, notional) | ("move", symbol, "", x)

steps = st.lists(
    st.one_of(
        st.tuples(
            st.just("open"),
            st.sampled_from([BTC, ETH]),
            st.sampled_from(["long", "short"]),
            st.decimals(min_value=10, max_value=5000, places=2),
        ),
        st.tuples(
            st.just("move"),
            st.sampled_from([BTC, ETH]),
            st.just(""),
            st.decimals(min_value=Decimal("0.8"), max_value=Decimal("1.25"), places=3),
        ),
    ),
    min_size=1,
    max_size=8,
)


@contextmanager
def fresh_core(pg_server: PgTestServer, template: str) -> Iterator[Core]:
    """A core on a database of its own: one per generated example."""
    address = app_address(pg_server.create_database(template=template))
    try:
        with bootstrap(
            Settings(database_url=address.url, breaker_blind_after=TEST_BREAKER_SIGHT),
            pool_size=4,
        ) as core:
            yield core
    finally:
        pg_server.drop_database(address)


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    plan=steps,
    cap=st.decimals(min_value=200, max_value=3000, places=0),
    max_leverage=st.sampled_from([Decimal(1), Decimal("1.5"), Decimal(2)]),
)
def test_no_entry_is_ever_sent_over_the_position_or_the_account_cap(
    pg_server: PgTestServer,
    migrated_template: str,
    plan: list[Step],
    cap: Decimal,
    max_leverage: Decimal,
) -> None:
    with fresh_core(pg_server, migrated_template) as core:
        core.commands.update_policy(
            actor="test",
            reason="caps",
            allow_new_trades=True,
            max_position_notional=cap,
            max_leverage=max_leverage,
        )
        venue = account(core, Decimal(1000))
        sent: list[tuple[Decimal, Decimal, Decimal, Decimal]] = []

        class Watch:
            """The paper venue; measures the venue at the moment an entry arrives."""

            name = "paper"

            def __getattr__(self, item: str) -> Any:
                return getattr(venue, item)

            def create_order(self, request: OrderRequest) -> Order:
                if not request.reduce_only:
                    sent.append(exposure_with(venue, request))
                return venue.create_order(request)

        executor = core.executor()
        executor.venue = Watch()  # type: ignore[assignment]
        for kind, symbol, side, amount in plan:
            if kind == "move":
                venue.admin().set_price(symbol, venue.fetch_mark_price(symbol) * amount)
            else:
                executor.open(intent(symbol, str(amount), side))

        for position, account_notional, equity, new in sent:
            assert position <= cap, (position, cap, new)
            assert account_notional <= max_leverage * equity, (account_notional, equity, new)


def exposure_with(
    venue: PaperVenue, request: OrderRequest
) -> tuple[Decimal, Decimal, Decimal, Decimal]:
    """(position of the request's symbol and side, account notional, equity, the order's own
    notional) as they would be with ``request`` filled at the mark, resting orders counted."""
    mark = venue.fetch_mark_price(request.symbol)
    new = request.quantity * mark
    side = "long" if request.side == "buy" else "short"
    positions = venue.fetch_positions()
    resting = [o for o in venue.fetch_open_orders() if not o.reduce_only]
    position = sum(
        (
            p.quantity * (p.mark_price or mark)
            for p in positions
            if (p.symbol, p.side)
            == (
                request.symbol,
                side,
            )
        ),
        Decimal(0),
    )
    position += sum(
        (
            o.remaining * (o.price or o.stop_price or mark)
            for o in resting
            if o.symbol == request.symbol and ("long" if o.side == "buy" else "short") == side
        ),
        Decimal(0),
    )
    total = sum((p.quantity * (p.mark_price or p.entry_price) for p in positions), Decimal(0))
    total += sum((o.remaining * (o.price or o.stop_price or mark) for o in resting), Decimal(0))
    return position + new, total + new, venue.fetch_balance().equity, new
