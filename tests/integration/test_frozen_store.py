"""A store that stops answering but keeps its connections open (every server process
stopped: a paused VM, a host paging, a disk hanging its writes) bounds every wait: a
statement on an open connection fails as a lost store within its bound, and the kill switch
ends "not seen flat", exit 4, within its flatten deadline, instead of never."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal

import psycopg
import pytest
import typer
from sqlalchemy import func, select

from adapters.answer_deadline import LAST_WORD_SECONDS, answer_deadline
from adapters.database import lost_store
from adapters.embedded_pg import EmbeddedPostgres
from adapters.errors import StoreUnavailable
from adapters.paper import tables as paper_tables
from adapters.paper.venue import PaperVenue
from app.bootstrap import Core, bootstrap
from app.config import Settings
from app.entrypoints.cli.context import CliState
from app.entrypoints.cli.emergency import kill_switch
from app.processes.flattener import FlattenReport, positions_and_orders
from domain.emergency import Emergency
from domain.ids import EMERGENCY_ID
from domain.venue import OrderRequest, OutcomeUnknown, VenueUnavailable
from tests.integration.frozen_server import frozen
from tests.integration.paper_drill import funded, long_book

DEADLINE = 3.0  # the flatten deadline of these drills, seconds
# What a call may take past its deadline: the last word (2 s), a connect, the pools'
# shutdown (1 s a worker); generous for a loaded machine (3.0 s measured in every case). The
# code before the last words were given up after a silence took 15-19 s here.
SLACK = 12.0
HANG = 90.0  # a call still running this long hangs: the test fails instead of waiting more


@dataclass
class Ended:
    seconds: float | None = None  # None: still running after HANG
    value: object = None
    error: BaseException | None = None
    done: threading.Event = field(default_factory=threading.Event)


def timed_in_thread(call: Callable[[], object]) -> Ended:
    """``call()`` in a thread; how long it took and how it ended, or ``seconds=None`` if it
    was still running after HANG seconds (the thread is left to end once the server thaws)."""
    ended = Ended()

    def run() -> None:
        started = time.monotonic()
        try:
            ended.value = call()
        except BaseException as e:
            ended.error = e
        ended.seconds = time.monotonic() - started
        ended.done.set()

    threading.Thread(target=run, daemon=True).start()
    ended.done.wait(HANG)
    return ended


def book(core: Core) -> None:
    """Two positions open; every pool of ``core`` holds open connections afterwards, so a
    freeze meets them mid-use, not at connect."""
    core.commands.update_policy(actor="op", reason="open", allow_new_trades=True)
    long_book(funded(core, {"BTC/USDT:USDT": "50000", "ETH/USDT:USDT": "3000"}))
    emergency = core.commands.load_emergency()
    assert emergency is None or not emergency.active
    assert positions_and_orders(core.venue()) == (2, 0)


@pytest.fixture
def drill(own_server: EmbeddedPostgres) -> Iterator[Core]:
    settings = Settings(database_url=own_server.address.url, flatten_deadline=DEADLINE)
    with bootstrap(settings, pool_size=8) as core:
        book(core)
        yield core


def test_a_statement_to_a_frozen_server_fails_as_a_lost_store_within_its_bound(
    own_server: EmbeddedPostgres,
) -> None:
    conn = own_server.address.connect()
    try:
        conn.execute("SELECT 1")  # the connection is open and working

        def statement() -> object:
            with answer_deadline(1.0):
                return conn.execute("SELECT 1").fetchone()

        with frozen(own_server):
            ended = timed_in_thread(statement)
        assert ended.seconds is not None, f"a statement to the frozen server hung {HANG:g}s"
        assert isinstance(ended.error, psycopg.OperationalError), ended.error
        lost = lost_store(ended.error)
        assert lost is not None and "did not answer within 2 s" in str(lost), lost
        assert LAST_WORD_SECONDS <= ended.seconds < LAST_WORD_SECONDS + 5, ended.seconds
        assert conn.closed, "the connection whose statement got no answer is still in use"
    finally:
        conn.close()


def test_the_kill_switch_on_a_store_that_stopped_answering_exits_4_within_its_deadline(
    own_server: EmbeddedPostgres, capsys: pytest.CaptureFixture[str]
) -> None:
    # The command as the CLI runs it: its core, the kill switch, then the command's close
    # (the closing catch-up and the pools' shutdown), all timed.
    cli = CliState()
    settings = Settings(database_url=own_server.address.url, flatten_deadline=DEADLINE)
    core = cli.core(settings=settings)
    book(core)

    def command() -> None:
        try:
            kill_switch(core, "frozen store drill", "op", yes=True)
        finally:
            cli.close()

    with frozen(own_server):
        ended = timed_in_thread(command)
    assert ended.seconds is not None, f"the kill switch hung {HANG:g}s on a frozen store"
    err = capsys.readouterr().err
    print(f"kill switch on a frozen store, close included: {ended.seconds:.1f}s; said: {err}")
    assert isinstance(ended.error, typer.Exit) and ended.error.exit_code == 4, ended.error
    assert "ACCOUNT NOT SEEN FLAT" in err and "may not be latched" in err, err
    # The deadline, the last word, and the pools' shutdown; never a closing catch-up.
    assert ended.seconds < DEADLINE + SLACK, ended.seconds
    # Thawed: nothing was sent (the latch's commit never got its answer).
    with bootstrap(settings) as after:
        events = list(after.store.events.get(EMERGENCY_ID))
        assert not any(isinstance(e, Emergency.FlattenAttempted) for e in events)
        assert positions_and_orders(after.venue()) == (2, 0)


def test_a_flatten_whose_store_stops_answering_reports_not_flat_within_its_deadline(
    drill: Core, own_server: EmbeddedPostgres
) -> None:
    drill.commands.activate_emergency(reason="drill", actor="op", source="operator")
    flattener = drill.flattener()
    with frozen(own_server):
        ended = timed_in_thread(flattener.run)
    assert ended.seconds is not None, f"the flattener hung {HANG:g}s on a frozen store"
    print(f"flatten on a frozen store ended after {ended.seconds:.1f}s")
    assert ended.error is None, repr(ended.error)
    report = ended.value
    assert report is not None and not report.flat  # type: ignore[attr-defined]
    assert "store unavailable" in str(report.last_error), report.last_error  # type: ignore[attr-defined]
    # Never "0 left" (what the worker's log said): the venue was never read.
    assert report.left() == "what is left is unknown (no read of the venue answered)"  # type: ignore[attr-defined]
    assert ended.seconds < DEADLINE + SLACK, ended.seconds
    # Thawed, the next flatten (the worker's) ends it: the latch was kept, nothing was lost.
    after = drill.flattener().run()
    assert after is not None and after.flat
    assert positions_and_orders(drill.venue()) == (0, 0)


def test_a_paper_venue_on_a_frozen_store_answers_as_a_venue_that_timed_out(
    drill: Core, own_server: EmbeddedPostgres
) -> None:
    venue = drill.venue()
    assert isinstance(venue, PaperVenue)
    venue.request_timeout = 1.0  # seconds; ccxt's default is 10
    close = OrderRequest(
        symbol="BTC/USDT:USDT",
        side="sell",
        quantity=Decimal("0.1"),
        client_order_id="frozen-close-1",
        reduce_only=True,
    )
    with frozen(own_server):
        read = timed_in_thread(venue.fetch_positions)
        order = timed_in_thread(lambda: venue.create_order(close))
    for what, ended in (("a read", read), ("an order", order)):
        assert ended.seconds is not None, f"{what} on the frozen paper venue hung {HANG:g}s"
        # Its request timeout and the last word's margin, with slack for a loaded machine.
        assert ended.seconds < 1.0 + LAST_WORD_SECONDS + 5, (what, ended.seconds)
    # Nothing was done by a read; an order's commit may have gone through: unknown, not "no".
    assert isinstance(read.error, VenueUnavailable), repr(read.error)
    assert isinstance(order.error, OutcomeUnknown), repr(order.error)
    # Thawed, the client order id says what became of it, as it would at a venue.
    found = venue.fetch_order_by_client_id(close.client_order_id, close.symbol)
    assert (found is None) == (positions_and_orders(venue) == (2, 0)), found
    print(f"paper venue on a frozen store: read {read.seconds:.1f}s, order {order.seconds:.1f}s")


def test_a_silent_embedded_server_is_named_as_such_and_never_started_over(
    own_server: EmbeddedPostgres,
) -> None:
    pid_file = own_server.pgdata / "postmaster.pid"
    before = pid_file.read_text()
    with frozen(own_server):
        ended = timed_in_thread(own_server.ensure_running)
    assert ended.seconds is not None, f"ensure_running hung {HANG:g}s on a frozen server"
    assert isinstance(ended.error, StoreUnavailable), repr(ended.error)
    pid = before.split()[0]
    assert f"(pid {pid}) is running but does not answer" in str(ended.error), ended.error
    assert pid_file.read_text() == before  # no second server tried over it
    assert own_server.is_running()  # thawed, the same server answers


def test_a_store_that_goes_silent_mid_attempt_ends_the_flatten_unknown_and_doubles_nothing(
    drill: Core, own_server: EmbeddedPostgres
) -> None:
    drill.commands.activate_emergency(reason="drill", actor="op", source="operator")
    freeze = frozen(own_server)

    def freeze_once_recorded(line: str) -> None:
        # Attempt 1 is recorded; its closes now meet a server that answers nothing.
        if line.startswith("attempt 1"):
            freeze.__enter__()

    try:
        ended = timed_in_thread(drill.flattener(progress=freeze_once_recorded).run)
    finally:
        freeze.__exit__(None, None, None)
    assert ended.seconds is not None, f"the flattener hung {HANG:g}s on a frozen store"
    print(f"flatten frozen mid-attempt ended after {ended.seconds:.1f}s")
    assert ended.error is None, repr(ended.error)
    report = ended.value
    assert isinstance(report, FlattenReport) and not report.flat
    # Its closes' outcome unknown and the venue unreadable: never "nothing left".
    assert not report.remaining_known and "2 position(s)" in report.left(), report.left()
    assert ended.seconds < DEADLINE + SLACK, ended.seconds
    # Thawed: the next flatten (the worker's) ends it, and no close order went out twice.
    after = drill.flattener().run()
    assert after is not None and after.flat
    assert positions_and_orders(drill.venue()) == (0, 0)
    with drill.engine.connect() as conn:
        log = paper_tables.requests
        doubled = conn.execute(
            select(log.c.client_order_id)
            .where(log.c.outcome == "filled")
            .group_by(log.c.client_order_id)
            .having(func.count() > 1)
        ).all()
    assert doubled == [], doubled
