"""The kill switch fails closed: a store error while flattening is retried until the
flatten deadline, never read as "no emergency"; what could not be done is recorded."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

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
