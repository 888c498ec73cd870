"""Finding a real Postgres for the tests (docs/ARCHITECTURE.md, decision 4), in this order:

1. ``TRADECORE_TEST_DATABASE_URL`` (a server someone runs for us);
2. a testcontainers ``PostgresContainer`` when a Docker daemon answers a ping, from the image
   ``TRADECORE_TEST_PG_IMAGE`` (default ``postgres:16-alpine``, what a Docker that can pull
   gets; ``scripts/build_test_pg_image.sh`` builds a PostgreSQL 15 one with no registry);
3. the embedded server (pgserver's PostgreSQL 16) in a temporary home.

``TRADECORE_TEST_DATABASE`` names one source instead of that order: ``testcontainers`` (a
container or the session fails) or ``embedded`` (Docker is not asked). When Docker answers
but the container cannot start (the image is absent and cannot be pulled, say) and nobody
demanded testcontainers, the session says so in one line and takes the embedded server.
There is no other option: if no source works the session fails, it never skips.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

from adapters import migrations
from adapters.database import DatabaseAddress
from adapters.embedded_pg import MAX_CONNECTIONS, EmbeddedPostgres

URL_VARIABLE = "TRADECORE_TEST_DATABASE_URL"
SOURCE_VARIABLE = "TRADECORE_TEST_DATABASE"
IMAGE_VARIABLE = "TRADECORE_TEST_PG_IMAGE"
SOURCES = ("testcontainers", "embedded")
DEFAULT_IMAGE = "postgres:16-alpine"
# Longer reasons (a registry's whole HTTP error) are cut: the notice stays one readable line.
MAX_REASON = 240


class PgSourceUnavailable(Exception):
    """The source the session was told to use cannot give it a server (one-line message)."""


@dataclass
class PgTestServer:
    admin: DatabaseAddress  # the maintenance database, for CREATE/DROP DATABASE
    kind: str

    def create_database(self, *, template: str | None = None) -> DatabaseAddress:
        name = f"t_{uuid.uuid4().hex[:16]}"
        with self.admin.connect(autocommit=True) as conn:
            clause = f" TEMPLATE {template}" if template else ""
            conn.execute(f"CREATE DATABASE {name}{clause}")
        return self.admin.with_dbname(name)

    def drop_database(self, address: DatabaseAddress) -> None:
        with self.admin.connect(autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {address.dbname} WITH (FORCE)")

    def describe(self) -> str:
        """``PostgreSQL 15.14 (testcontainers tradecore-test-pg:15)``: the server's version
        as it reports it, and where it came from."""
        with self.admin.connect(autocommit=True) as conn:
            row = conn.execute("SHOW server_version").fetchone()
        version = str(row[0]).split()[0] if row else "of unknown version"
        return f"PostgreSQL {version} ({self.kind})"


def docker_answers() -> bool:
    try:
        import docker  # noqa: PLC0415

        client = docker.from_env(timeout=3)
        client.ping()
        return True
    except Exception:
        return False


def private_temp_home(prefix: str) -> Path:
    """A temporary folder the embedded server may use as root: /tmp is traversable, and
    the folder itself is ours (0755), so nothing private is opened."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    folder.chmod(0o755)
    return folder


@contextlib.contextmanager
def embedded_server(prefix: str = "tradecore-test-") -> Iterator[EmbeddedPostgres]:
    folder = private_temp_home(prefix)
    server = EmbeddedPostgres(folder / "home")
    try:
        server.ensure_running()
        yield server
    finally:
        server.stop(mode="immediate")
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def embedded_test_server() -> Iterator[PgTestServer]:
    with embedded_server() as server:
        yield PgTestServer(server.owner_address, "embedded pgserver")


@contextlib.contextmanager
def container_server(image: str) -> Iterator[PgTestServer]:
    """A testcontainers ``PostgresContainer`` from ``image``, removed on exit; raises
    whatever testcontainers or the Docker client raise when it cannot start (the container
    is removed then too)."""
    # Ryuk, testcontainers' reaper, is one more image to pull: on a Docker that cannot pull
    # it failed every database test. Our own `finally` removes the container instead (only a
    # killed session leaves it behind). Set before the first testcontainers import, which is
    # where older 4.x releases read it; an explicit setting of the user's is kept.
    os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")
    try:  # newer 4.x releases moved it and warn at the old name
        from testcontainers.community.postgres import PostgresContainer  # noqa: PLC0415
    except ImportError:
        from testcontainers.postgres import PostgresContainer  # noqa: PLC0415

    # The embedded server's connection limit, so a test sees the same one on every source
    # (both the official image and ours pass leading-dash arguments to postgres).
    container = PostgresContainer(image, driver=None).with_command(
        f"-c max_connections={MAX_CONNECTIONS}"
    )
    try:
        container.start()
    except BaseException:
        with contextlib.suppress(Exception):
            container.stop()
        raise
    try:
        url = container.get_connection_url()
        yield PgTestServer(DatabaseAddress.parse(url), f"testcontainers {image}")
    finally:
        container.stop()


def one_line(error: BaseException) -> str:
    """``TypeName: first line of the message``, cut to MAX_REASON characters."""
    # The Docker client's APIError says "500 Server Error for <url>: ..." before the daemon's
    # own explanation, which is the part that names the cause.
    message = getattr(error, "explanation", None) or str(error)
    lines = [line.strip() for line in str(message).splitlines() if line.strip()]
    reason = f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__
    return reason if len(reason) <= MAX_REASON else reason[: MAX_REASON - 1] + "…"


def _say_on_stderr(line: str) -> None:
    print(line, file=sys.stderr)


@contextlib.contextmanager
def find_server(
    env: Mapping[str, str] | None = None,
    *,
    docker_up: Callable[[], bool] = docker_answers,
    start_container: Callable[[str], AbstractContextManager[PgTestServer]] = container_server,
    start_embedded: Callable[[], AbstractContextManager[PgTestServer]] = embedded_test_server,
    say: Callable[[str], None] = _say_on_stderr,
) -> Iterator[PgTestServer]:
    """The session's server, from the first source that works (module docstring).

    ``env`` defaults to the process environment; the starters and ``docker_up`` are the real
    ones unless a test passes its own. A fallback is announced through ``say`` (one line).
    Raises PgSourceUnavailable when TRADECORE_TEST_DATABASE names no known source or names
    testcontainers and no container starts; the embedded server's own errors propagate.
    """
    env = os.environ if env is None else env
    source = env.get(SOURCE_VARIABLE, "").strip()
    if source and source not in SOURCES:
        raise PgSourceUnavailable(
            f"{SOURCE_VARIABLE}={source!r} is not a source: use one of {', '.join(SOURCES)}"
            " (or leave it unset for the order URL, testcontainers, embedded)"
        )
    url = env.get(URL_VARIABLE)
    if url and not source:
        yield PgTestServer(DatabaseAddress.parse(url), URL_VARIABLE)
        return
    if url:
        say(f"tests: {SOURCE_VARIABLE}={source}, so {URL_VARIABLE} is not used")
    image = env.get(IMAGE_VARIABLE) or DEFAULT_IMAGE
    with contextlib.ExitStack() as stack:
        server: PgTestServer | None = None
        if source == "testcontainers" or (not source and docker_up()):
            try:
                server = stack.enter_context(start_container(image))
            except Exception as error:
                failed = f"testcontainers could not start {image} ({one_line(error)})"
                if source == "testcontainers":
                    raise PgSourceUnavailable(
                        f"{failed}, and {SOURCE_VARIABLE}=testcontainers demands it"
                    ) from error
                say(f"tests: {failed}; using the embedded server instead")
        if server is None:
            server = stack.enter_context(start_embedded())
        yield server


# The app role's password on a test server (roles are per server, not per database). Over
# TCP a role logs in with a password; the embedded server's socket trusts it anyway.
TEST_APP_PASSWORD = "tradecore-test-app"


def migrate(owner: DatabaseAddress) -> DatabaseAddress:
    """Migrate ``owner``'s database as the owner and return the address the application
    uses there: the same database as the app role, which cannot alter events."""
    engine = owner.engine(pool_size=1)
    try:
        migrations.upgrade(engine)
        migrations.enable_app_login(engine, TEST_APP_PASSWORD)
    finally:
        engine.dispose()
    return app_address(owner)


def app_address(owner: DatabaseAddress) -> DatabaseAddress:
    """The app role's address for the database ``owner`` points at."""
    return DatabaseAddress(
        owner.host, owner.port, owner.dbname, migrations.APP_ROLE, TEST_APP_PASSWORD
    )
