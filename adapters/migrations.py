"""Alembic, driven from code: ``tradecore db upgrade`` / ``db status`` and the embedded default.

The migration scripts ship inside the package as ``tradecore_migrations`` (the top-level
``alembic/`` folder of the source tree), so an installed tradecore needs no checkout.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, text

if TYPE_CHECKING:
    from alembic.config import Config

from adapters.errors import StoreNotMigrated

# Any two processes migrating at once (two CLI calls on a fresh embedded server) queue on
# this advisory lock instead of both trying to create the same tables.
MIGRATION_LOCK_KEY = 0x7472_6164_6563_6F72  # "tradecor"


def script_location() -> Path:
    spec = importlib.util.find_spec("tradecore_migrations")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("tradecore's migration scripts (tradecore_migrations) are missing")
    return Path(next(iter(spec.submodule_search_locations)))


@dataclass(frozen=True)
class MigrationStatus:
    current: str | None
    head: str

    @property
    def up_to_date(self) -> bool:
        return self.current == self.head


def _config() -> Config:
    from alembic.config import Config  # noqa: PLC0415 - alembic is slow to import

    config = Config()
    config.set_main_option("script_location", str(script_location()))
    return config


def head_revision() -> str:
    from alembic.script import ScriptDirectory  # noqa: PLC0415

    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        exists = conn.execute(text("SELECT to_regclass('public.alembic_version')")).scalar()
        if exists is None:
            return None
        return conn.execute(text("SELECT version_num FROM public.alembic_version")).scalar()


def status(engine: Engine) -> MigrationStatus:
    return MigrationStatus(current=current_revision(engine), head=head_revision())


def upgrade(engine: Engine) -> MigrationStatus:
    """Migrate to head (idempotent). Returns the status after the upgrade."""
    from alembic import command  # noqa: PLC0415

    config = _config()
    with engine.begin() as conn:
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK_KEY})
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
    return status(engine)


def require_head(engine: Engine) -> None:
    """Raise StoreNotMigrated unless the database is at the code's head revision."""
    found = status(engine)
    if not found.up_to_date:
        raise StoreNotMigrated(
            f"database schema is at {found.current or 'nothing'}, this tradecore needs "
            f"{found.head}: run `tradecore db upgrade`"
        )
