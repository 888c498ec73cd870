"""The one retry policy: bounded in time for an unavailable store, bounded in attempts for
conflicts, and never retrying anything else."""

from __future__ import annotations

import pytest

from adapters.errors import StoreUnavailable
from adapters.repository import WRITER, WRITER_BOUND, ConcurrencyExhausted, Conflict, RetryPolicy


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def policy(clock: FakeClock, **kwargs: float) -> RetryPolicy:
    return RetryPolicy(sleep=clock.sleep, now=lambda: clock.now, **kwargs)  # type: ignore[arg-type]


def test_an_unavailable_store_is_retried_with_backoff_then_reported_within_the_budget() -> None:
    clock = FakeClock()
    calls = 0

    def attempt() -> None:
        nonlocal calls
        calls += 1
        clock.now += 0.1  # each attempt costs time too
        raise StoreUnavailable("down")

    with pytest.raises(StoreUnavailable):
        policy(clock, budget=2.0).run(attempt)
    assert calls > 1
    assert clock.now <= 2.0 + 0.1  # no attempt starts after the budget
    assert max(clock.sleeps) <= 0.25  # backoff is capped


def test_the_writers_budget_plus_one_cut_off_attempt_fits_the_stated_bound() -> None:
    store_timeout = 3.0  # the event store's connect and pool timeout (adapters/eventstore.py)
    assert WRITER.budget + store_timeout <= WRITER_BOUND


def test_conflicts_are_retried_until_the_attempts_run_out() -> None:
    clock = FakeClock()
    calls = 0

    def attempt() -> None:
        nonlocal calls
        calls += 1
        raise Conflict("lost the race")

    with pytest.raises(ConcurrencyExhausted):
        policy(clock, max_attempts=7).run(attempt)
    assert calls == 7


def test_a_conflict_then_success_returns_the_result() -> None:
    clock = FakeClock()
    answers = iter([Conflict("x"), StoreUnavailable("blip"), "done"])

    def attempt() -> str:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert policy(clock).run(attempt) == "done"


def test_any_other_error_is_not_retried() -> None:
    clock = FakeClock()
    calls = 0

    def attempt() -> None:
        nonlocal calls
        calls += 1
        raise ValueError("a bug, not an outage")

    with pytest.raises(ValueError, match="a bug"):
        policy(clock).run(attempt)
    assert calls == 1
