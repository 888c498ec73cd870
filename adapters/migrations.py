"""Alembic, driven from code: ``tradecore db upgrade`` / ``db status`` and the embedded default.

The migration scripts ship inside the package as ``tradecore_migrations`` (the top-level
``alembic/`` folder of the source tree), so an installed tradecore needs no checkout.

Two roles. Migrations run as the role that owns the event store (the *owner*); the
application runs as ``tradecore_app``, which may read and append events but not change,
remove or un-trigger them. After every upgrade the app role's rights are brought to exactly
what the application needs (``grant_app_role``), so a later migration cannot forget them.
"""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, text

if TYPE_CHECKING:
    from alembic.config import Config

from adapters.errors import StoreNotMigrated

# Any two processes migrating at once (two CLI calls on a fresh embedded server) queue on
# this advisory lock instead of both trying to create the same tables.
MIGRATION_LOCK_KEY = 0x7472_6164_6563_6F72  # "tradecor"

# The role the application runs as. The migration creates it (NOLOGIN) when the owner may
# create roles; otherwise a DBA creates it first. Logging in is granted separately
# (enable_app_login for the embedded server; a DBA's ALTER ROLE ... LOGIN PASSWORD on a
# managed one).
APP_ROLE = "tradecore_app"
# The read side is the application's own: rebuilding a read model drops and renames its
# tables, which only their owner may do. It is derived from the log, so owning it gives no
# power over history.
APP_OWNED_SCHEMAS = ("readmodel", "paper")
_APP_OWNED = "ARRAY[" + ", ".join(f"'{name}'" for name in APP_OWNED_SCHEMAS) + "]::name[]"

# Idempotent; runs as the owner in the migration's transaction (alembic/env.py).
_GRANT_APP_ROLE = f"""
DO $grant$
DECLARE
    r record;
    events_owner name;
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{APP_ROLE}') THEN
        IF NOT (SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user)
        THEN
            RAISE EXCEPTION 'role {APP_ROLE} does not exist and % may not create it: '
                'a DBA must run CREATE ROLE {APP_ROLE} NOLOGIN (then GRANT {APP_ROLE} '
                'TO %) and migrate again', current_user, current_user
                USING ERRCODE = 'insufficient_privilege';
        END IF;
        CREATE ROLE {APP_ROLE} NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION
            NOBYPASSRLS;
    END IF;
    SELECT pg_get_userbyid(relowner) INTO events_owner
    FROM pg_class WHERE oid = 'eventstore.tradecore_events'::regclass;
    IF NOT pg_has_role(current_user, events_owner, 'USAGE') THEN
        RAISE EXCEPTION 'role % is not the owner of the event store (%)', current_user,
            events_owner USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF (SELECT rolsuper FROM pg_roles WHERE rolname = '{APP_ROLE}')
       OR pg_has_role('{APP_ROLE}', events_owner, 'USAGE') THEN
        RAISE EXCEPTION 'role {APP_ROLE} is a superuser or acts as %, the owner of the '
            'event store: it could rewrite history. Use a role of its own for the '
            'application.', events_owner
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    -- The owner hands the read side over, so it must be able to act as the app role.
    IF NOT pg_has_role(current_user, '{APP_ROLE}', 'USAGE') THEN
        EXECUTE format('GRANT {APP_ROLE} TO %I', current_user);
    END IF;

    -- The event store: read, and append the four columns the recorder writes (never a
    -- notification id or a chain hash of its own choosing).
    GRANT USAGE ON SCHEMA eventstore TO {APP_ROLE};
    REVOKE ALL ON eventstore.tradecore_events, eventstore.tradecore_snapshots
        FROM {APP_ROLE};
    GRANT SELECT ON eventstore.tradecore_events TO {APP_ROLE};
    GRANT INSERT (originator_id, originator_version, topic, state)
        ON eventstore.tradecore_events TO {APP_ROLE};
    GRANT SELECT, INSERT ON eventstore.tradecore_snapshots TO {APP_ROLE};
    GRANT USAGE ON SEQUENCE eventstore.tradecore_events_notification_id_seq TO {APP_ROLE};
    -- The schema version, so the application can check it is at head.
    GRANT SELECT ON public.alembic_version TO {APP_ROLE};

    FOR r IN
        SELECT nspname FROM pg_namespace
        WHERE nspname = ANY({_APP_OWNED}) AND pg_get_userbyid(nspowner) <> '{APP_ROLE}'
    LOOP
        EXECUTE format('ALTER SCHEMA %I OWNER TO {APP_ROLE}', r.nspname);
    END LOOP;
    FOR r IN
        SELECT c.oid::regclass AS relation,
               CASE c.relkind WHEN 'S' THEN 'SEQUENCE' WHEN 'v' THEN 'VIEW'
                              WHEN 'm' THEN 'MATERIALIZED VIEW' ELSE 'TABLE' END AS kind
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = ANY({_APP_OWNED}) AND c.relkind IN ('r', 'p', 'S', 'v', 'm')
          AND pg_get_userbyid(c.relowner) <> '{APP_ROLE}'
          -- a sequence owned by a column follows its table
          AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.objid = c.oid
                          AND d.classid = 'pg_class'::regclass AND d.deptype IN ('a', 'i'))
    LOOP
        EXECUTE format('ALTER %s %s OWNER TO {APP_ROLE}', r.kind, r.relation);
    END LOOP;
END
$grant$
"""


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


@functools.cache  # the scripts are the installed code's: parsed once per process
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


# The app role owns the read side, so it could plant code there (a trigger, a rule, a
# function in a default or a check) that would run with the owner's rights the next time a
# migration writes to those tables: a way from the app role to the owner's powers. tradecore
# defines none of these on the read side, so any found means someone put it there.
_PLANTED_CODE = f"""
DO $guard$
DECLARE
    found text;
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{APP_ROLE}') THEN
        RETURN;
    END IF;
    SELECT string_agg(what, ', ') INTO found FROM (
        SELECT format('function %s', p.oid::regprocedure) AS what FROM pg_proc p
        WHERE p.proowner = '{APP_ROLE}'::regrole
        UNION ALL
        SELECT format('trigger %s on %s', t.tgname, c.oid::regclass) FROM pg_trigger t
        JOIN pg_class c ON c.oid = t.tgrelid
        WHERE c.relowner = '{APP_ROLE}'::regrole AND NOT t.tgisinternal
        UNION ALL
        SELECT format('rule %s on %s', w.rulename, c.oid::regclass) FROM pg_rewrite w
        JOIN pg_class c ON c.oid = w.ev_class
        WHERE c.relowner = '{APP_ROLE}'::regrole AND c.relkind IN ('r', 'p')
    ) AS planted;
    IF found IS NOT NULL THEN
        RAISE EXCEPTION 'refusing to migrate: role {APP_ROLE} has code a migration could run '
            'with the owner''s rights: %. Remove it (tradecore defines none).', found
            USING ERRCODE = 'insufficient_privilege';
    END IF;
END
$guard$
"""


def refuse_planted_code(conn: Connection) -> None:
    """Raise InsufficientPrivilege (naming each object) when the app role owns a function,
    or a trigger or rule sits on a table it owns: the owner, about to migrate, would run
    it with its own rights. Runs before every migration (alembic/env.py)."""
    conn.exec_driver_sql(_PLANTED_CODE, execution_options={"no_parameters": True})


def grant_app_role(conn: Connection) -> None:
    """Create the app role if needed and give it exactly the application's rights: read
    and append events and snapshots, read the schema version, own the read side. Runs as
    the owner. Raises the database's error (InsufficientPrivilege, one line naming what a
    DBA must do) when the role is missing and the owner may not create it, or when the app
    role could act as the owner."""
    # No parameters: the driver must not read the block's % signs as placeholders.
    conn.exec_driver_sql(_GRANT_APP_ROLE, execution_options={"no_parameters": True})


def enable_app_login(engine: Engine, password: str | None = None) -> None:
    """Let the app role log in (as the owner; the role exists once migrated). With no
    password it can log in only where the server trusts the connection (the embedded
    server's private socket)."""
    with engine.begin() as conn:
        if password is None:
            conn.exec_driver_sql(f"ALTER ROLE {APP_ROLE} LOGIN")
        else:
            literal = conn.exec_driver_sql("SELECT quote_literal(%s)", (password,)).scalar()
            conn.exec_driver_sql(f"ALTER ROLE {APP_ROLE} LOGIN PASSWORD {literal}")


_ROLE_RIGHTS = text(
    "SELECT r.rolsuper AS superuser, pg_get_userbyid(c.relowner) AS owner, "
    "pg_has_role(current_user, c.relowner, 'USAGE') AS acts_as_owner, "
    "has_table_privilege(c.oid, 'UPDATE') OR has_table_privilege(c.oid, 'DELETE') "
    "OR has_table_privilege(c.oid, 'TRUNCATE') AS may_change "
    "FROM pg_roles r, pg_class c "
    "WHERE r.rolname = current_user AND c.oid = to_regclass('eventstore.tradecore_events')"
)


def history_rewriter(engine: Engine) -> str | None:
    """Why the role ``engine`` connects as could alter recorded events, or None when it
    cannot: a superuser (``session_replication_role = replica`` silences every trigger),
    the events table's owner or a member of it (``ALTER TABLE ... DISABLE TRIGGER``), or a
    role granted UPDATE, DELETE or TRUNCATE on it."""
    with engine.connect() as conn:
        user = conn.execute(text("SELECT current_user")).scalar_one()
        found = conn.execute(_ROLE_RIGHTS).first()
    if found is None:  # no event store yet: nothing to protect
        return None
    if found.superuser:
        return f"role {user} is a superuser"
    if found.acts_as_owner:
        return f"role {user} owns the event store (or acts as its owner {found.owner})"
    if found.may_change:
        return f"role {user} has been granted UPDATE, DELETE or TRUNCATE on the events"
    return None


def require_head(engine: Engine) -> None:
    """Raise StoreNotMigrated unless the database is at the code's head revision."""
    found = status(engine)
    if not found.up_to_date:
        raise StoreNotMigrated(
            f"database schema is at {found.current or 'nothing'}, this tradecore needs "
            f"{found.head}: run `tradecore db upgrade`"
        )
