"""Concurrent writers of the policy: every update is applied once, in order, none lost."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from itertools import pairwise

import pytest

from app.bootstrap import Core
from app.config import Settings
from domain.ids import POLICY_ID
from domain.policy import Policy
from tests.waiting import StreamLines


def limit_updates(core: Core) -> list[Policy.LimitsUpdated]:
    return [e for e in core.store.events.get(POLICY_ID) if isinstance(e, Policy.LimitsUpdated)]


def test_updates_from_many_threads_are_all_applied_exactly_once(core: Core) -> None:
    threads, per_thread = 8, 10

    def writer(t: int) -> None:
        for i in range(per_thread):
            # Distinct values, so a lost update would be a missing value in the log.
            core.commands.update_policy(
                actor=f"thread-{t}", reason="race", max_position_notional=str(100_000 + t * 100 + i)
            )

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(writer, range(threads)))

    updates = limit_updates(core)
    values = [e.max_position_notional for e in updates]
    expected = {Decimal(100_000 + t * 100 + i) for t in range(threads) for i in range(per_thread)}
    assert len(values) == threads * per_thread
    assert set(values) == expected
    # In order: each thread's own updates appear in the order it made them.
    for t in range(threads):
        mine = [v for e, v in zip(updates, values, strict=True) if e.actor == f"thread-{t}"]
        assert mine == sorted(mine)
    versions = [e.originator_version for e in core.store.events.get(POLICY_ID)]
    assert versions == list(range(1, len(versions) + 1))
    # The writers really raced: their updates are interleaved in the log, not one
    # thread's run after another's.
    assert switches([e.actor for e in updates]) > threads - 1


def switches(actors: list[str]) -> int:
    """How often the writer changes from one update of the log to the next."""
    return sum(a != b for a, b in pairwise(actors))


WRITER = textwrap.dedent(
    """
    import sys
    from app.bootstrap import bootstrap
    from app.config import Settings

    url, tag, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with bootstrap(Settings(database_url=url)) as core:
        core.commands.load_policy()  # connected: the start is not a race of imports
        print("ready", flush=True)
        for line in sys.stdin:  # "go R": one round of updates; end of input: stop
            race = int(line.split()[1])
            for i in range(count):
                core.commands.update_policy(
                    actor=f"proc-{tag}", reason=f"race {race}", max_leverage=f"{tag}.{race}{i:02d}"
                )
            print("done", flush=True)
    """
)


@pytest.mark.slow
def test_updates_from_two_processes_are_all_applied_exactly_once(
    core: Core, settings: Settings
) -> None:
    # Each race is two writers of `count` updates started together; the race is run again
    # (at most `races` times) until the two writers' updates interleave in the log, since a
    # scheduler may let one finish before the other begins (seen once on PostgreSQL 15 in a
    # container). Every race's updates must be exact, interleaved or not.
    count, races = 25, 5
    assert settings.database_url
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, settings.database_url, tag, str(count)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for tag in ("1", "2")
    ]
    interleaved: list[int] = []
    try:
        lines = [StreamLines(proc.stdout) for proc in procs]
        # Both connected before either writes, so that they do write at the same time.
        for out in lines:
            assert out.next(what="a writer's ready line") == "ready"
        for race in range(1, races + 1):
            for proc in procs:
                assert proc.stdin is not None
                proc.stdin.write(f"go {race}\n")
                proc.stdin.flush()
            for out in lines:
                assert out.next(what=f"a writer's end of race {race}") == "done"
            updates = [e for e in limit_updates(core) if e.reason == f"race {race}"]
            for tag in ("1", "2"):
                values = [e.max_leverage for e in updates if e.actor == f"proc-{tag}"]
                assert values == [Decimal(f"{tag}.{race}{i:02d}") for i in range(count)], tag
            # The two really raced: their updates interleave in the log.
            if switches([e.actor for e in updates]) > 1:
                interleaved.append(race)
                break
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.close()
        assert [p.wait(timeout=60) for p in procs] == [0, 0]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)
    assert interleaved, f"the two writers never interleaved in {races} races"
    versions = [e.originator_version for e in core.store.events.get(POLICY_ID)]
    assert versions == list(range(1, len(versions) + 1))
