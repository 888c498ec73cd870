"""The leverage the sizing decided is the leverage the venue applies: set and read back by
the executor before any entry, refused (LEVERAGE_NOT_SET) with nothing sent when it cannot
be, never touched by an exit; the paper venue's margin uses it."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import ccxt
import pytest
from sqlalchemy import func, select

from adapters.ccxt.venue import CcxtVenue
from adapters.paper import tables as t
from adapters.paper.venue import PaperVenue
from app.bootstrap import Core
from app.commands.executor import Executor, Outcome
from domain.refusal import RefusedIntent
from domain.trade import Trade
from domain.venue import OrderRejected, VenueUnavailable
from tests.integration.paper_drill import breaker_reads, funded, intent, place
from tests.unit.test_ccxt_venue_offline import KEY, SECRET, binance_wire, offline

BTC = "BTC/USDT:USDT"


def ready(core: Core) -> PaperVenue:
    venue = funded(core, {BTC: "50000"})
    breaker_reads(core)
    return venue


def executor(core: Core, venue: Any) -> Executor:
    """An executor without the sizing agent: the intent's leverage is the decision's."""
    return Executor(
        core.store,
        core.gate,
        venue,
        core.clock,
        core.executor().order_flow,
        lookup_interval=0.01,
    )


def orders_at_venue(core: Core) -> int:
    with core.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(t.requests)).scalar_one())


def refusal_codes(core: Core) -> list[str]:
    notifications = core.store.recorder.select_notifications(start=1, limit=100_000)
    events = [core.store.mapper.to_domain_event(n) for n in notifications]
    return [e.code for e in events if isinstance(e, RefusedIntent.Refused)]


@dataclass
class Wrapped:
    """The real paper venue behind a wrapper a test can override one method of."""

    venue: PaperVenue
    name: str = "paper"

    def __getattr__(self, item: str) -> Any:
        return getattr(self.venue, item)


def test_after_the_high_fallback_the_paper_position_is_at_leverage_one_and_so_is_its_margin(
    core: Core,
) -> None:
    venue = ready(core)  # two marks: the regime cannot be measured, so it is sized as HIGH

    execution = core.executor().open(intent())

    assert execution.outcome is Outcome.FILLED and execution.trade_id is not None
    trade = core.store.repository.get(execution.trade_id)
    assert isinstance(trade, Trade)
    assert trade.sizing is not None and trade.sizing["fallback"] is True
    assert trade.leverage == Decimal(1)
    (position,) = venue.fetch_positions()
    assert position.leverage == Decimal(1)
    assert venue.fetch_leverage(BTC) == Decimal(1)
    with core.engine.begin() as conn:
        _, margin = venue.book.margin(conn)
    assert margin == position.notional  # at 1x the whole notional is margin (10x: a tenth)


def test_the_decided_leverage_is_set_and_read_back_before_the_order(core: Core) -> None:
    venue = ready(core)
    calls: list[str] = []

    class Spy(Wrapped):
        def set_leverage(self, symbol: str, leverage: Decimal) -> None:
            calls.append(f"set {leverage}")
            self.venue.set_leverage(symbol, leverage)

        def fetch_leverage(self, symbol: str) -> Decimal:
            calls.append("read")
            return self.venue.fetch_leverage(symbol)

        def create_order(self, request: Any) -> Any:
            calls.append("order")
            return self.venue.create_order(request)

    execution = executor(core, Spy(venue)).open(intent(leverage=Decimal(3)))

    assert execution.outcome is Outcome.FILLED
    assert calls == ["set 3", "read", "order"]
    (position,) = venue.fetch_positions()
    assert position.leverage == Decimal(3)


def test_a_venue_refusing_the_leverage_refuses_the_intent_and_sends_nothing(core: Core) -> None:
    venue = ready(core)

    class Refuses(Wrapped):
        def set_leverage(self, symbol: str, leverage: Decimal) -> None:
            raise OrderRejected("leverage 2 is not valid for this symbol")

    execution = executor(core, Refuses(venue)).open(intent(leverage=Decimal(2)))

    assert execution.outcome is Outcome.REFUSED and execution.code == "LEVERAGE_NOT_SET"
    assert "not valid" in execution.reason
    assert orders_at_venue(core) == 0 and venue.fetch_positions() == []
    assert refusal_codes(core) == ["LEVERAGE_NOT_SET"]


def test_a_leverage_that_reads_back_otherwise_refuses_the_intent(core: Core) -> None:
    venue = ready(core)

    class Ignores(Wrapped):
        def set_leverage(self, symbol: str, leverage: Decimal) -> None:
            pass  # answered, not applied: the venue keeps its 10x

    execution = executor(core, Ignores(venue)).open(intent(leverage=Decimal(2)))

    assert execution.outcome is Outcome.REFUSED and execution.code == "LEVERAGE_NOT_SET"
    assert "reads 10" in execution.reason
    assert orders_at_venue(core) == 0


def test_an_exit_never_touches_the_leverage(core: Core) -> None:
    venue = ready(core)
    opened = executor(core, venue).open(intent(leverage=Decimal(2)))
    assert opened.trade_id is not None
    touched: list[Decimal] = []

    class Watch(Wrapped):
        def set_leverage(self, symbol: str, leverage: Decimal) -> None:
            touched.append(leverage)

    closed = executor(core, Watch(venue)).close(opened.trade_id, reason="signal", actor="test")

    assert closed.outcome is Outcome.FILLED and touched == []
    assert venue.fetch_positions() == []


def test_the_paper_venue_refuses_a_leverage_its_open_position_cannot_carry(core: Core) -> None:
    venue = ready(core)  # 10,000 deposited
    place(venue, BTC, "buy", "0.8")  # 40,000 at the default 10x: 4,000 of margin

    with pytest.raises(OrderRejected, match="insufficient margin"):
        venue.set_leverage(BTC, Decimal(1))  # 40,000 of margin on a 10,000 account

    assert venue.fetch_leverage(BTC) == Decimal(10)
    venue.set_leverage(BTC, Decimal(5))  # 8,000 of margin: carried
    assert [p.leverage for p in venue.fetch_positions()] == [Decimal(5)]


# -- a ccxt venue (Binance USD-M, canned answers) --------------------------------------------


def binance_venue() -> tuple[CcxtVenue, Any]:
    wire = binance_wire()
    exchange = offline(ccxt.binanceusdm({"apiKey": KEY, "secret": SECRET}), wire)
    wire.on("GET", "/fapi/v1/positionSide/dual", {"dualSidePosition": False})  # one-way
    return CcxtVenue(exchange), wire


def test_on_a_ccxt_venue_the_leverage_request_leaves_before_the_order(core: Core) -> None:
    ready(core)  # the gate's breaker reading
    venue, wire = binance_venue()

    execution = executor(core, venue).open(intent("980.0012", leverage=Decimal(2)))

    assert execution.outcome is Outcome.FILLED, execution
    paths = [(s.method, s.path) for s in wire.sent]
    set_at = paths.index(("POST", "/fapi/v1/leverage"))
    read_at = paths.index(("GET", "/fapi/v1/symbolConfig"))
    order_at = paths.index(("POST", "/fapi/v1/order"))
    assert set_at < read_at < order_at
    assert wire.sent[set_at].body["leverage"] == "2"


def test_on_a_ccxt_venue_a_refused_leverage_sends_no_order(core: Core) -> None:
    ready(core)
    venue, wire = binance_venue()
    wire.on(
        "POST", "/fapi/v1/leverage", {"code": -4028, "msg": "Leverage 2 is not valid"}, status=400
    )

    execution = executor(core, venue).open(intent("980.0012", leverage=Decimal(2)))

    assert execution.outcome is Outcome.REFUSED and execution.code == "LEVERAGE_NOT_SET"
    assert wire.to("POST", "/fapi/v1/order") == []


@pytest.mark.parametrize("read", ["fetch_positions", "fetch_open_orders", "fetch_balance"])
def test_an_exposure_the_venue_cannot_show_refuses_the_intent_and_sends_nothing(
    core: Core, read: str
) -> None:
    venue = ready(core)

    class Blind(Wrapped):
        """The venue answers every call but one of the reads the caps are counted from."""

        def __getattr__(self, item: str) -> Any:
            if item == read:

                def unavailable(*_: Any) -> Any:
                    raise VenueUnavailable(f"{read}: 503 from the venue")

                return unavailable
            return getattr(self.venue, item)

    execution = executor(core, Blind(venue)).open(intent())

    # The caps cannot be proved, so the entry is not allowed: refused, recorded, not sent.
    assert execution.outcome is Outcome.REFUSED and execution.code == "EXPOSURE_UNKNOWN"
    assert orders_at_venue(core) == 0 and venue.fetch_positions() == []
    assert refusal_codes(core) == ["EXPOSURE_UNKNOWN"]
