"""One active worker per account: a second one waits as a hot standby and takes over."""

from __future__ import annotations

import threading
import time

from app.bootstrap import bootstrap
from app.config import Settings
from app.worker import run_exclusively


def test_a_second_worker_for_the_account_stands_by_and_takes_over_when_the_first_stops(
    settings: Settings,
) -> None:
    events: list[str] = []
    stops = [threading.Event(), threading.Event()]
    with bootstrap(settings) as first, bootstrap(settings) as second:

        def run(core: object, n: int) -> None:
            run_exclusively(
                core,  # type: ignore[arg-type]
                stops[n],
                on_standby=lambda: events.append(f"standby {n}"),
                on_active=lambda: events.append(f"active {n}"),
                poll=0.2,
            )

        a = threading.Thread(target=run, args=(first, 0))
        a.start()
        wait_for(lambda: "active 0" in events)
        b = threading.Thread(target=run, args=(second, 1))
        b.start()
        wait_for(lambda: "standby 1" in events)
        time.sleep(0.5)
        assert "active 1" not in events  # never two active workers for one account

        stops[0].set()
        a.join(timeout=30)
        wait_for(lambda: "active 1" in events)
        stops[1].set()
        b.join(timeout=30)
    assert events == ["active 0", "standby 1", "active 1"]


def wait_for(condition: object, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)
