"""Which PostgreSQL a test session takes (tests/postgres.py ``find_server``): the order URL,
testcontainers, embedded; a container that cannot start is a one-line fallback unless
testcontainers was demanded, and then the session fails. The starters here are stand-ins
that record their calls (no Docker, no server); the real container start failing against a
missing image is in tests/integration/test_test_database_fallback.py."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from adapters.database import DatabaseAddress
from tests.postgres import (
    DEFAULT_IMAGE,
    IMAGE_VARIABLE,
    MAX_REASON,
    SOURCE_VARIABLE,
    URL_VARIABLE,
    PgSourceUnavailable,
    PgTestServer,
    find_server,
    one_line,
)

CONTAINER = PgTestServer(DatabaseAddress.parse("postgresql://u:p@localhost:1/c"), "container")
EMBEDDED = PgTestServer(DatabaseAddress.parse("postgresql://u:p@localhost:2/e"), "embedded")


class Sources:
    """Stand-in starters and Docker ping that record what the harness asked for."""

    def __init__(self, *, docker: bool = True, container_error: Exception | None = None) -> None:
        self.docker = docker
        self.container_error = container_error
        self.pinged = 0
        self.images: list[str] = []
        self.embedded_started = 0
        self.said: list[str] = []

    def docker_up(self) -> bool:
        self.pinged += 1
        return self.docker

    @contextlib.contextmanager
    def start_container(self, image: str) -> Iterator[PgTestServer]:
        self.images.append(image)
        if self.container_error is not None:
            raise self.container_error
        yield CONTAINER

    @contextlib.contextmanager
    def start_embedded(self) -> Iterator[PgTestServer]:
        self.embedded_started += 1
        yield EMBEDDED

    def find(self, env: dict[str, str]) -> contextlib.AbstractContextManager[PgTestServer]:
        return find_server(
            env,
            docker_up=self.docker_up,
            start_container=self.start_container,
            start_embedded=self.start_embedded,
            say=self.said.append,
        )


PULL_FAILED = RuntimeError(
    'Get "https://registry-1.docker.io/v2/": no such host\n(and a traceback-like second line)'
)


def test_a_container_that_cannot_start_falls_back_to_the_embedded_server_in_one_line() -> None:
    sources = Sources(container_error=PULL_FAILED)

    with sources.find({IMAGE_VARIABLE: "postgres:16-alpine"}) as server:
        assert server is EMBEDDED

    assert sources.images == ["postgres:16-alpine"]
    assert len(sources.said) == 1
    (line,) = sources.said
    assert "\n" not in line
    assert "could not start postgres:16-alpine" in line
    assert "no such host" in line
    assert "using the embedded server instead" in line


def test_demanding_testcontainers_fails_the_session_when_the_container_cannot_start() -> None:
    sources = Sources(container_error=PULL_FAILED)

    with (
        pytest.raises(PgSourceUnavailable) as raised,
        sources.find({SOURCE_VARIABLE: "testcontainers"}),
    ):
        pytest.fail("no server may be handed out")

    message = str(raised.value)
    assert "\n" not in message
    assert f"could not start {DEFAULT_IMAGE}" in message
    assert f"{SOURCE_VARIABLE}=testcontainers demands it" in message
    assert sources.embedded_started == 0
    assert sources.said == []


def test_demanding_testcontainers_tries_the_container_even_when_docker_does_not_answer() -> None:
    # No ping shortcut to the embedded server: the demand is tried and its failure reported.
    sources = Sources(docker=False, container_error=ConnectionError("no Docker daemon"))

    with (
        pytest.raises(PgSourceUnavailable, match="no Docker daemon"),
        sources.find({SOURCE_VARIABLE: "testcontainers"}),
    ):
        pytest.fail("no server may be handed out")

    assert sources.embedded_started == 0


def test_a_demanded_container_that_starts_is_used() -> None:
    sources = Sources(docker=False)

    with sources.find({SOURCE_VARIABLE: "testcontainers", IMAGE_VARIABLE: "pg:15"}) as server:
        assert server is CONTAINER

    assert sources.images == ["pg:15"]
    assert sources.embedded_started == 0


def test_the_image_comes_from_the_environment_and_defaults_to_postgres_16_alpine() -> None:
    sources = Sources()

    with sources.find({IMAGE_VARIABLE: "tradecore-test-pg:15"}) as server:
        assert server is CONTAINER
    with sources.find({}) as server:
        assert server is CONTAINER

    assert sources.images == ["tradecore-test-pg:15", "postgres:16-alpine"]
    assert sources.said == []


def test_without_docker_the_embedded_server_is_taken_without_a_notice() -> None:
    sources = Sources(docker=False)

    with sources.find({}) as server:
        assert server is EMBEDDED

    assert sources.pinged == 1
    assert sources.images == []
    assert sources.said == []


def test_the_embedded_source_never_asks_docker() -> None:
    sources = Sources()

    with sources.find({SOURCE_VARIABLE: "embedded"}) as server:
        assert server is EMBEDDED

    assert sources.pinged == 0
    assert sources.images == []


def test_a_database_url_comes_first_unless_a_source_is_named() -> None:
    sources = Sources()
    url = "postgresql://someone:secret@db.example:5433/postgres"

    with sources.find({URL_VARIABLE: url}) as server:
        assert server.admin == DatabaseAddress.parse(url)
        assert server.kind == URL_VARIABLE
    assert sources.pinged == 0
    assert sources.embedded_started == 0

    with sources.find({URL_VARIABLE: url, SOURCE_VARIABLE: "embedded"}) as server:
        assert server is EMBEDDED
    assert sources.said == [f"tests: {SOURCE_VARIABLE}=embedded, so {URL_VARIABLE} is not used"]


def test_an_unknown_source_is_refused_naming_it_and_the_known_ones() -> None:
    sources = Sources()

    with pytest.raises(PgSourceUnavailable) as raised, sources.find({SOURCE_VARIABLE: "docker"}):
        pytest.fail("no server may be handed out")

    assert f"{SOURCE_VARIABLE}='docker' is not a source" in str(raised.value)
    assert "testcontainers, embedded" in str(raised.value)
    assert sources.pinged == 0
    assert sources.embedded_started == 0


def test_an_error_inside_the_session_is_not_taken_for_a_container_that_could_not_start() -> None:
    sources = Sources()

    with pytest.raises(KeyError), sources.find({}) as server:
        assert server is CONTAINER
        raise KeyError("a test's own error")

    assert sources.embedded_started == 0
    assert sources.said == []


def test_a_long_reason_is_cut_to_one_bounded_line() -> None:
    reason = one_line(RuntimeError("x" * 1000 + "\nsecond line"))

    assert reason.startswith("RuntimeError: xxx")
    assert len(reason) == MAX_REASON
    assert "second line" not in reason
