"""The real testcontainers start (tests/postgres.py ``container_server``) failing against an
image that is not there: with a Docker daemon it is the daemon's pull refusing (the registry
is unreachable here, and the name is not on any registry); without one it is the client not
reaching a daemon. Either way the container cannot start, which is what the harness decides
on, so both machines run these tests and neither skips. The session's own server is checked
for what it reports."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator

import pytest

from adapters.database import DatabaseAddress
from tests.postgres import (
    IMAGE_VARIABLE,
    SOURCE_VARIABLE,
    PgSourceUnavailable,
    PgTestServer,
    docker_answers,
    find_server,
)

MISSING_IMAGE = "tradecore-test-no-such-image:0"
STAND_IN = PgTestServer(DatabaseAddress.parse("postgresql://u:p@localhost:2/e"), "stand-in")


@contextlib.contextmanager
def stand_in_embedded() -> Iterator[PgTestServer]:
    yield STAND_IN


def containers_of_missing_image() -> list[object]:
    if not docker_answers():
        return []
    import docker  # noqa: PLC0415

    client = docker.from_env(timeout=10)
    return list(client.containers.list(all=True, filters={"ancestor": MISSING_IMAGE}))


def test_a_missing_image_falls_back_in_one_line_when_nobody_demands_testcontainers() -> None:
    said: list[str] = []

    # Docker is taken as answering, so the real start is attempted on every machine.
    with find_server(
        {IMAGE_VARIABLE: MISSING_IMAGE},
        docker_up=lambda: True,
        start_embedded=stand_in_embedded,
        say=said.append,
    ) as server:
        assert server is STAND_IN

    assert len(said) == 1, said
    assert "\n" not in said[0]
    assert f"could not start {MISSING_IMAGE}" in said[0]
    assert said[0].endswith("using the embedded server instead")
    assert containers_of_missing_image() == []


def test_a_missing_image_fails_the_session_when_testcontainers_is_demanded() -> None:
    with (
        pytest.raises(PgSourceUnavailable) as raised,
        find_server(
            {IMAGE_VARIABLE: MISSING_IMAGE, SOURCE_VARIABLE: "testcontainers"},
            start_embedded=stand_in_embedded,
        ),
    ):
        pytest.fail("no server may be handed out")

    message = str(raised.value)
    assert "\n" not in message
    assert f"could not start {MISSING_IMAGE}" in message
    assert message.endswith(f"{SOURCE_VARIABLE}=testcontainers demands it")
    assert containers_of_missing_image() == []


def test_the_session_server_reports_its_version_and_where_it_came_from(
    pg_server: PgTestServer,
) -> None:
    description = pg_server.describe()

    assert re.fullmatch(r"PostgreSQL \d+(\.\d+)+ \(.+\)", description), description
    assert description.endswith(f"({pg_server.kind})")
