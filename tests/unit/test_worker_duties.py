"""The worker's duties that need no store, each driven alone: a venue that cannot be read
skips a bar or a watch, never the duty; a failure that is not theirs reaches the duty's
backoff; the model watch falls due by the core's (here a market) clock."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from adapters.clock import MarketClock
from app.commands.executor import Execution
from app.entrypoints.worker.duty import Duty
from app.entrypoints.worker.models import ConsumerSync, WatchModels
from app.entrypoints.worker.signals import SignalTrading
from domain.errors import InvalidCommand
from domain.venue import VenueError

T0 = datetime(2022, 1, 20, 19, tzinfo=UTC)


class Engine:
    """Steps through ``outcomes``: an exception is raised, a list returned."""

    def __init__(self, *outcomes: Exception | list[Execution]) -> None:
        self.outcomes = list(outcomes)
        self.steps = 0

    def step(self) -> list[Execution]:
        self.steps += 1
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


@pytest.mark.parametrize("error", [VenueError("venue away"), InvalidCommand("bad bar")])
def test_a_signal_bar_the_venue_or_a_rule_refuses_is_skipped_and_the_next_bar_steps(
    error: Exception, caplog: pytest.LogCaptureFixture
) -> None:
    engine = Engine(error, [])
    duty = SignalTrading(engine)
    with caplog.at_level(logging.WARNING):
        duty.run_once()
    assert "signal bar skipped" in caplog.text
    duty.run_once()
    assert engine.steps == 2


def test_a_signal_engine_failure_of_another_kind_reaches_the_duty_backoff() -> None:
    clock = MarketClock(T0)
    duty = Duty(
        "signal trading",
        SignalTrading(Engine(RuntimeError("bug"))).run_once,
        backoff=1.0,
        monotonic=clock.monotonic,
    )
    with pytest.raises(RuntimeError, match="bug"):
        duty.action()


class Watch:
    def __init__(self, fail: bool = False) -> None:
        self.runs = 0
        self.fail = fail

    def run_once(self) -> None:
        self.runs += 1
        if self.fail:
            raise VenueError("venue away")


def test_the_model_watch_runs_at_once_then_every_interval_of_the_market_clock() -> None:
    clock = MarketClock(T0)
    watch = Watch()
    duty = WatchModels(watch, clock.monotonic, interval=30.0)
    duty.run_once()
    duty.run_once()
    assert watch.runs == 1
    clock.advance_to(T0 + timedelta(seconds=29))
    duty.run_once()
    assert watch.runs == 1
    clock.advance_to(T0 + timedelta(seconds=30))
    duty.run_once()
    assert watch.runs == 2


def test_a_failed_model_watch_is_logged_and_waits_for_its_next_turn(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = MarketClock(T0)
    watch = Watch(fail=True)
    duty = WatchModels(watch, clock.monotonic, interval=30.0)
    with caplog.at_level(logging.WARNING):
        duty.run_once()
    assert "model watch failed" in caplog.text
    duty.run_once()
    assert watch.runs == 1


class Consumer:
    def __init__(self, fail: bool = False, model: str = "signal") -> None:
        self.syncs = 0
        self.loads = 0
        self.fail = fail
        self.model = model

    def registry(self) -> str:
        self.loads += 1
        return f"{self.model} registry"

    def follow(self, registry: str) -> None:
        assert registry == f"{self.model} registry"
        self.syncs += 1
        if self.fail:
            raise VenueError("artifact unreadable")


def test_model_consumer_sync_syncs_each_consumer_and_a_failure_reaches_the_duty() -> None:
    consumers = [Consumer(), Consumer(), Consumer(model="other")]
    ConsumerSync(consumers).run_once()
    assert [c.syncs for c in consumers] == [1, 1, 1]
    # One load of each model's registry a round, shared by the consumers that follow it.
    assert sum(c.loads for c in consumers) == 2
    with pytest.raises(VenueError):
        ConsumerSync([Consumer(fail=True)]).run_once()


@pytest.mark.parametrize(
    ("error", "traceback"),
    [
        (psycopg.OperationalError("the store did not answer within 60 s"), False),
        (RuntimeError("bug"), True),
    ],
)
def test_a_duty_failing_on_a_lost_store_says_one_line_and_any_other_failure_its_traceback(
    error: Exception, traceback: bool, caplog: pytest.LogCaptureFixture
) -> None:
    duty = Duty("read models", lambda: None, backoff=1.0, monotonic=MarketClock(T0).monotonic)
    with caplog.at_level(logging.ERROR):
        duty.failed(error)
    [record] = caplog.records
    assert "worker duty 'read models' failed" in record.getMessage()
    assert str(error) in record.getMessage()
    assert (record.exc_info is not None) is traceback, record.exc_info
