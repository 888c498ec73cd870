"""A read model shows its lag in events and in seconds: how long the oldest event it has
not applied has waited (by the core's clock), back to 0 once it has caught up."""

from __future__ import annotations

from datetime import datetime, timedelta

from adapters.clock import utc_now
from app.bootstrap import bootstrap
from app.config import Settings
from app.queries.cli_views import projections_dict


class ShiftedClock:
    """The wall clock moved by ``offset`` (which the test changes)."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return utc_now() + self.offset


def test_the_lag_in_seconds_is_the_age_of_the_oldest_event_a_read_model_has_not_applied(
    settings: Settings,
) -> None:
    clock = ShiftedClock()
    with bootstrap(settings, clock=clock) as core:
        core.runner.catch_up()
        assert {(p["lag_events"], p["lag_seconds"]) for p in projections_dict(core)} == {(0, 0.0)}

        core.commands.update_policy(actor="alice", reason="behind", max_leverage="3")
        clock.offset = timedelta(seconds=30)
        core.commands.update_policy(actor="alice", reason="behind", max_leverage="4")
        clock.offset = timedelta(seconds=90)  # nothing applied since the first, 90 s ago

        behind = projections_dict(core)
        for model in behind:
            assert model["lag_events"] >= 2, model
            # the oldest's 90 s (plus the moments between its save and this read), not the
            # newest's 60 s
            assert 90.0 <= model["lag_seconds"] < 120.0, model

        clock.offset = timedelta(seconds=150)
        assert all(150.0 <= p["lag_seconds"] < 180.0 for p in projections_dict(core))

        core.runner.catch_up()
        assert {(p["lag_events"], p["lag_seconds"]) for p in projections_dict(core)} == {(0, 0.0)}
