"""A flattener killed with SIGKILL at any point, then restarted, still ends flat, and never
sends the same order twice; the emergency's events stay consistent."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import textwrap
import time
from decimal import Decimal

import pytest

from adapters.paper.faults import FaultSettings
from adapters.paper.venue import PaperVenue
from app.bootstrap import bootstrap
from app.config import Settings
from app.processes.flattener import positions_and_orders
from domain.emergency import Emergency
from domain.ids import EMERGENCY_ID
from tests.integration.paper_drill import doubled_orders, open_account
from tests.postgres import PgTestServer, app_address
from tests.waiting import first_line

CHILD = textwrap.dedent(
    """
    import sys
    from app.bootstrap import bootstrap
    from app.config import Settings

    with bootstrap(Settings(database_url=sys.argv[1])) as core:
        flattener = core.flattener()
        print("ready", flush=True)
        flattener.run()
    print("done", flush=True)
    """
)

TRIALS = 20


@pytest.mark.slow
def test_a_flattener_killed_at_random_points_always_ends_flat_without_duplicates(
    pg_server: PgTestServer, migrated_template: str
) -> None:
    outcomes = []
    for trial in range(TRIALS):
        rng = random.Random(trial)
        address = app_address(pg_server.create_database(template=migrated_template))
        try:
            settings = Settings(database_url=address.url)
            with bootstrap(settings) as core:
                venue = core.venue()
                assert isinstance(venue, PaperVenue)
                open_account(venue, symbols=4, resting=3)
                venue.admin().set_faults(
                    FaultSettings(
                        timeout_rate=Decimal("0.2"),
                        error_rate=Decimal("0.1"),
                        partial_fill_rate=Decimal("0.5"),
                        seed=trial,
                    )
                )
                core.commands.activate_emergency(reason=f"crash trial {trial}", actor="test")

                child = subprocess.Popen(
                    [sys.executable, "-c", CHILD, address.url],
                    stdout=subprocess.PIPE,
                    text=True,
                )
                ready = first_line(child, what="the flattener child's ready line")
                assert ready.strip() == "ready"
                # The kill point, drawn at random (the thing under test, not a
                # synchronisation); the outcomes below check the kills landed mid-flatten.
                time.sleep(rng.uniform(0, 0.25))
                child.send_signal(signal.SIGKILL)
                child.wait(timeout=30)
                before = list(core.store.events.get(EMERGENCY_ID))
                mid_flatten = any(isinstance(e, Emergency.FlattenAttempted) for e in before) and (
                    not any(isinstance(e, Emergency.AccountFlat) for e in before)
                )
                outcomes.append((child.returncode, mid_flatten))

                report = core.flattener().run()  # the restart
                assert report is not None and report.flat, (trial, report)
                assert positions_and_orders(venue.admin()) == (0, 0), trial
                assert doubled_orders(core.engine) == [], trial
                events = list(core.store.events.get(EMERGENCY_ID))
                attempts = [e.attempt for e in events if isinstance(e, Emergency.FlattenAttempted)]
                assert attempts == list(range(1, len(attempts) + 1)), trial
                assert sum(isinstance(e, Emergency.Triggered) for e in events) == 1, trial
                assert any(isinstance(e, Emergency.AccountFlat) for e in events), trial
        finally:
            pg_server.drop_database(address)
    # The kills really interrupted work: most children died by the signal, and several of
    # them after recording an attempt but before the account was flat.
    assert sum(code == -signal.SIGKILL for code, _ in outcomes) >= TRIALS // 2, outcomes
    assert sum(mid for _, mid in outcomes) >= 3, outcomes
