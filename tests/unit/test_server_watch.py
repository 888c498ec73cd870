"""The worker's watch over its embedded server: restart it, or say once that it cannot."""

from __future__ import annotations

import logging

import pytest

from adapters.errors import StoreUnavailable
from app.processes.server_watch import ServerWatch


class Server:
    """A stand-in for EmbeddedPostgres that can be killed and refuse to start."""

    def __init__(self) -> None:
        self.running = True
        self.startable = True
        self.starts = 0

    def is_running(self) -> bool:
        return self.running

    def ensure_running(self) -> object:
        if not self.running:
            if not self.startable:
                raise StoreUnavailable("embedded PostgreSQL failed (pg_ctl): no space left")
            self.starts += 1
            self.running = True
        return self


def watch_of(server: Server, events: list[str]) -> ServerWatch:
    return ServerWatch(
        server,
        on_down=lambda: events.append("down"),
        on_back=lambda seconds: events.append(f"back {seconds >= 0}"),
    )


def test_a_running_server_is_left_alone() -> None:
    server, events = Server(), []
    watch = watch_of(server, events)
    assert [watch.check() for _ in range(3)] == [True] * 3
    assert server.starts == 0
    assert events == []


def test_a_dead_server_is_restarted_and_its_outage_reported_once() -> None:
    server, events = Server(), []
    watch = watch_of(server, events)
    server.running = False
    assert watch.check() is True
    assert server.starts == 1
    assert watch.restarts == 1
    assert events == ["down", "back True"]
    assert watch.check() is True
    assert events == ["down", "back True"]


def test_a_server_that_cannot_be_restarted_is_said_loudly_once_per_outage(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server, events = Server(), []
    watch = watch_of(server, events)
    server.running, server.startable = False, False
    with caplog.at_level(logging.ERROR, logger="app.processes.server_watch"):
        assert [watch.check() for _ in range(5)] == [False] * 5
    critical = [r for r in caplog.records if r.levelno == logging.CRITICAL]
    assert len(critical) == 1
    assert "CANNOT BE RESTARTED" in critical[0].getMessage()
    assert "no space left" in critical[0].getMessage()
    assert events == ["down"]

    server.startable = True
    assert watch.check() is True
    assert events == ["down", "back True"]
    # A later outage is a new one: said again.
    server.running, server.startable = False, False
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="app.processes.server_watch"):
        watch.check()
    assert [r.levelno for r in caplog.records].count(logging.CRITICAL) == 1
    assert events == ["down", "back True", "down"]
