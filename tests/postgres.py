"""Finding a real Postgres for the tests (DESIGN.md decision 4), in this order:

1. ``TRADECORE_TEST_DATABASE_URL`` (a server someone runs for us);
2. a testcontainers ``PostgresContainer`` when a Docker daemon answers a ping;
3. the embedded server (pgserver's PostgreSQL) in a temporary home.

There is no fourth option: if none works the session errors, it never skips.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from adapters import migrations
from adapters.database import DatabaseAddress
from adapters.embedded_pg import EmbeddedPostgres


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
def find_server() -> Iterator[PgTestServer]:
    url = os.environ.get("TRADECORE_TEST_DATABASE_URL")
    if url:
        yield PgTestServer(DatabaseAddress.parse(url), "TRADECORE_TEST_DATABASE_URL")
        return
    if docker_answers():
        from testcontainers.postgres import PostgresContainer  # noqa: PLC0415

        with PostgresContainer("postgres:16-alpine", driver=None) as container:
            yield PgTestServer(
                DatabaseAddress.parse(container.get_connection_url()), "testcontainers"
            )
        return
    with embedded_server() as server:
        yield PgTestServer(server.owner_address, "embedded pgserver")


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
