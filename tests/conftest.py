"""Fixtures: one real Postgres per session, a fresh migrated database per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from adapters.database import DatabaseAddress
from adapters.embedded_pg import EmbeddedPostgres
from app.bootstrap import Core, bootstrap
from app.config import Settings
from tests.postgres import (
    PgSourceUnavailable,
    PgTestServer,
    app_address,
    embedded_server,
    find_server,
    migrate,
)

TEST_BREAKER_SIGHT = 600.0  # seconds

# Property tests run on a shared 2-core machine: Hypothesis's default 200 ms deadline per
# example would fail a correct test that a busy neighbour slowed down (flaky, not a
# finding). A hang is still caught, by pytest-timeout's per-test bound (pyproject.toml).
settings.register_profile("tradecore", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("tradecore")


# The lines saying which PostgreSQL the session uses (and any fallback), printed once at the
# end of the run. Under pytest-xdist each worker finds its own server: the workers send their
# lines to the controller, which prints each distinct line once.
DATABASE_LINES = pytest.StashKey[list[str]]()
WORKER_OUTPUT_KEY = "tradecore_database_lines"


def pytest_configure(config: pytest.Config) -> None:
    config.stash[DATABASE_LINES] = []


def note_database(config: pytest.Config, line: str) -> None:
    lines = config.stash[DATABASE_LINES]
    if line not in lines:
        lines.append(line)
    worker_output = getattr(config, "workeroutput", None)
    if worker_output is not None:
        worker_output[WORKER_OUTPUT_KEY] = list(lines)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    """pytest-xdist: a worker finished; keep its database lines."""
    config = node.config
    for line in getattr(node, "workeroutput", {}).get(WORKER_OUTPUT_KEY, []):
        note_database(config, line)


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    lines = config.stash.get(DATABASE_LINES, [])
    if lines:
        terminalreporter.write_sep("-", "test database")
        for line in lines:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def pg_server(request: pytest.FixtureRequest) -> Iterator[PgTestServer]:
    config = request.config
    try:
        with find_server(say=lambda line: note_database(config, line)) as server:
            note_database(config, f"tests: using {server.describe()}")
            yield server
    except PgSourceUnavailable as error:
        note_database(config, f"tests: no database: {error}")
        # Stop the session after this test's error instead of erroring every database test
        # with the same reason (under xdist the worker stops and the controller follows).
        request.session.shouldfail = f"no test database: {error}"
        raise


@pytest.fixture(scope="session")
def migrated_template(pg_server: PgTestServer) -> Iterator[str]:
    """A database migrated once per session; every test gets a copy of it."""
    template = pg_server.create_database()
    migrate(template)
    yield template.dbname
    pg_server.drop_database(template)


@pytest.fixture
def owner_database(pg_server: PgTestServer, migrated_template: str) -> Iterator[DatabaseAddress]:
    """A fresh migrated database, as the role that owns it (migrations, tampering)."""
    address = pg_server.create_database(template=migrated_template)
    yield address
    pg_server.drop_database(address)


@pytest.fixture
def database(owner_database: DatabaseAddress) -> DatabaseAddress:
    """The same database as the application sees it: the app role, which cannot alter
    events. Every test that runs tradecore runs it as this role."""
    return app_address(owner_database)


@pytest.fixture
def empty_database(pg_server: PgTestServer) -> Iterator[DatabaseAddress]:
    """A database with no schema at all."""
    address = pg_server.create_database()
    yield address
    pg_server.drop_database(address)


@pytest.fixture
def settings(database: DatabaseAddress, tmp_path: Path) -> Settings:
    # No worker reads equity every second in most tests: a test that opens trades takes one
    # reading first (paper_drill.breaker_reads), fresh for a test's length. The default
    # bound is tested where it matters (test_gate_breaker_blind.py) and by the e2e tests.
    # Each test keeps its model files apart: a test that tampers with an artifact (P0-06)
    # must not corrupt the same model (same seed, same hash) another test is loading.
    return Settings(
        database_url=database.url,
        breaker_blind_after=TEST_BREAKER_SIGHT,
        artifact_dir=tmp_path / "artifacts",
    )


@pytest.fixture
def core(settings: Settings) -> Iterator[Core]:
    """A core whose operator has opened trading (a fresh install starts closed)."""
    with bootstrap(settings, pool_size=8) as built:
        built.commands.update_policy(actor="operator", reason="open", allow_new_trades=True)
        yield built


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # A test that owns its server runs on the embedded PostgreSQL whatever the session's
    # source: `-m "not own_server"` leaves it out of a run meant for another server.
    for item in items:
        if "own_server" in getattr(item, "fixturenames", ()):
            item.add_marker("own_server")
    # The real month's tests run only when an -m names them: another -m (which replaces the
    # addopts' `-m 'not real_candles'`) leaves them out too, reported as deselected.
    if "real_candles" not in (config.option.markexpr or ""):
        month = [item for item in items if item.get_closest_marker("real_candles")]
        if month:
            config.hook.pytest_deselected(items=month)
            items[:] = [item for item in items if item not in month]


@pytest.fixture
def own_server() -> Iterator[EmbeddedPostgres]:
    """A server this test owns and may stop and start (fault tests), already migrated."""
    with embedded_server("tradecore-fault-") as server:
        migrate(server.owner_address)  # its ``address`` is then the app role's
        yield server
