"""The one clock: a market clock moves only when the replay moves it, never back, and the
worker's duties fall due by it, not by the machine's time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from adapters.clock import MarketClock, WallClock, as_clock
from app.entrypoints.worker import Duty
from domain.market_data import candle_path

T0 = datetime(2022, 1, 20, 19, tzinfo=UTC)


def test_a_market_clock_stands_still_until_advanced_and_never_goes_back() -> None:
    clock = MarketClock(T0)
    assert clock() == T0 and clock.simulated
    clock.advance_to(T0 + timedelta(minutes=1))
    assert clock.now() == T0 + timedelta(minutes=1)
    assert clock.monotonic() == (T0 + timedelta(minutes=1)).timestamp()
    with pytest.raises(ValueError, match="cannot go back"):
        clock.advance_to(T0)
    with pytest.raises(ValueError, match="timezone-aware"):
        clock.advance_to(datetime(2022, 1, 21))


def test_a_plain_callable_becomes_a_wall_clock_reading_it() -> None:
    clock = as_clock(lambda: T0)
    assert isinstance(clock, WallClock) and clock() == T0 and not clock.simulated


def test_a_failed_duty_falls_due_again_after_its_backoff_in_market_time() -> None:
    clock = MarketClock(T0)
    duty = Duty("reconciliation", lambda: None, backoff=30.0, monotonic=clock.monotonic)
    assert duty.due()
    duty.failed(RuntimeError("venue away"))
    assert not duty.due()
    clock.advance_to(T0 + timedelta(seconds=29))
    assert not duty.due()
    clock.advance_to(T0 + timedelta(seconds=30))
    assert duty.due()


@pytest.mark.parametrize(
    ("candle", "path"),
    [
        ((100.0, 103.0, 99.0, 101.0), (100.0, 99.0, 103.0, 101.0)),  # low nearer
        ((100.0, 101.0, 96.0, 97.0), (100.0, 101.0, 96.0, 97.0)),  # high nearer
        ((100.0, 102.0, 98.0, 100.0), (100.0, 98.0, 102.0, 100.0)),  # a tie: low first
    ],
)
def test_a_candle_is_shown_open_nearer_extreme_other_extreme_close(
    candle: tuple[float, float, float, float], path: tuple[float, float, float, float]
) -> None:
    assert candle_path(*candle) == path
