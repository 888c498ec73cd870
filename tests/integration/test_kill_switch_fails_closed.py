"""The kill switch fails closed: a store error while flattening is retried until the
flatten deadline, never read as "no emergency"; what could not be done is recorded."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest

from adapters.paper.faults import FaultSettings
from adapters.paper.venue import PaperVenue
from app.bootstrap import Core, bootstrap
from app.config import Settings
from app.processes.flattener import positions_and_orders
from domain.emergency import Emergency
from domain.ids import EMERGENCY_ID
from tests.integration.paper_drill import open_account
from tests.store_faults import StoreFaults, is_insert


@pytest.fixture
def drill(settings: Settings) -> Iterator[Core]:
    """A core with a short flatten deadline and an account with open positions."""
    with bootstrap(settings.model_copy(update={"flatten_deadline": 2.0}), pool_size=8) as core:
        venue = core.venue()
        assert isinstance(venue, PaperVenue)
        open_account(venue, symbols=3, resting=1)
        core.commands.activate_emergency(reason="drill", actor="test")
        yield core


def test_a_store_error_right_after_activation_does_not_end_the_flatten(drill: Core) -> None:
    with StoreFaults().attach(drill) as faults:
        faults.fail_at(0, "error")  # the flattener's first read of the emergency
        report = drill.flattener().run()
        assert faults.injected, "the fault was never reached"
    assert report is not None, "a store error was read as 'no emergency'"
    assert report.flat
    assert positions_and_orders(drill.venue()) == (0, 0)


def test_a_store_that_never_answers_gives_a_report_that_is_not_flat(drill: Core) -> None:
    with StoreFaults() as faults:
        faults.attach(drill).rule = lambda _name, _index, _topics: "error"
        report = drill.flattener().run()
    assert report is not None, "an unreachable store was read as 'no emergency'"
    assert not report.flat and report.activation_number is None
    assert report.last_error is not None and "store unavailable" in report.last_error
    assert positions_and_orders(drill.venue()) == (3, 1)  # nothing left unrecorded


def test_attempts_the_store_cannot_record_end_in_flatten_incomplete_with_the_reason(
    drill: Core,
) -> None:
    with StoreFaults().attach(drill) as faults:
        # Every insert fails except the one recording the conclusion.
        faults.rule = lambda name, _i, topics: (
            "error" if is_insert(name) and "FlattenIncomplete" not in topics else None
        )
        report = drill.flattener().run()
    assert report is not None and not report.flat
    # No order left without its attempt recorded first.
    assert positions_and_orders(drill.venue()) == (3, 1)
    events = list(drill.store.events.get(EMERGENCY_ID))
    assert not any(isinstance(e, Emergency.FlattenAttempted) for e in events)
    [incomplete] = [e for e in events if isinstance(e, Emergency.FlattenIncomplete)]
    assert incomplete.last_error is not None and "store unavailable" in incomplete.last_error


def test_a_venue_unreadable_at_the_deadline_is_reported_as_unknown_never_as_nothing_left(
    drill: Core,
) -> None:
    venue = drill.venue()
    assert isinstance(venue, PaperVenue)

    def venue_goes_away(line: str) -> None:
        # The attempt is recorded; from now on every request fails as a network error: its
        # closes and every read after them, until the deadline.
        if line.startswith("attempt 1"):
            venue.admin().set_faults(FaultSettings(error_rate=Decimal(1)))

    report = drill.flattener(progress=venue_goes_away).run()
    venue.admin().set_faults(None)
    assert report is not None and not report.flat
    assert not report.remaining_known, "a venue it could not read was reported as known"
    # What the last read that answered showed stands in: 3 positions and the resting order.
    assert (len(report.remaining_positions), report.remaining_orders) == (3, 1), report.left()
    assert "unknown" in report.left() and "3 position(s), 1 order(s)" in report.left()
    assert positions_and_orders(venue) == (3, 1)  # indeed still open
    # The record counts nothing as closed that was not seen gone.
    events = list(drill.store.events.get(EMERGENCY_ID))
    [incomplete] = [e for e in events if isinstance(e, Emergency.FlattenIncomplete)]
    [triggered] = [e for e in events if isinstance(e, Emergency.Triggered)]
    assert len(incomplete.remaining_positions) == 3 and incomplete.remaining_orders == 1
    assert (triggered.positions_closed, triggered.orders_canceled) == (0, 0)
