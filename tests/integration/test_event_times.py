"""Two times per event: the time it refers to (the application's clock: the market's in a
replay) and the time the store recorded it (the server's, whatever the application says)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from adapters.clock import MarketClock
from app.bootstrap import bootstrap
from app.config import Settings
from app.queries.audit import Audit

MARKET = datetime(2022, 1, 21, 21, 57, 30, tzinfo=UTC)


def test_an_event_made_on_market_time_keeps_that_time_and_the_store_s_own_recording_time(
    settings: Settings,
) -> None:
    with bootstrap(settings, clock=MarketClock(MARKET)) as core:
        before = datetime.now(UTC)
        core.commands.update_policy(actor="replay", reason="open", allow_new_trades=True)
        after = datetime.now(UTC)
        core.runner.catch_up()
        rows = Audit(core).timeline(MARKET - timedelta(days=1), MARKET + timedelta(days=1))

    changed = [r for r in rows if r["reason"] == "open"]
    assert len(changed) == 1, rows
    assert changed[0]["at"] == MARKET
    # The server's clock and this process's agree to well within a second on one machine.
    slack = timedelta(seconds=1)
    assert before - slack <= changed[0]["stored_at"] <= after + slack, changed[0]
