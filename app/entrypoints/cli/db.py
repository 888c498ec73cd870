"""``tradecore db upgrade|status|stop``: the schema and the embedded server."""

from __future__ import annotations

import typer
from sqlalchemy.exc import OperationalError

from adapters import migrations
from adapters.database import first_line
from adapters.embedded_pg import EmbeddedPostgres
from adapters.errors import StoreUnavailable
from app.bootstrap import owner_address, upgrade_schema
from app.entrypoints.cli.context import state
from app.entrypoints.cli.options import Json
from app.entrypoints.cli.output import emit_json, out

app = typer.Typer(help="Database schema (alembic) and the embedded server.", no_args_is_help=True)


@app.command("upgrade")
def upgrade(ctx: typer.Context, as_json: Json = False) -> None:
    """Migrate the database to this version's schema (idempotent), as the schema's owner
    (TRADECORE_OWNER_DATABASE_URL; the embedded server's superuser by default)."""
    owner, embedded = owner_address(state(ctx).settings())
    result = upgrade_schema(owner, app_login=embedded)
    if as_json:
        emit_json({"current": result.current, "head": result.head})
    else:
        out.print(f"schema at {result.current} (head {result.head})")


@app.command("status")
def status(ctx: typer.Context, as_json: Json = False) -> None:
    """The schema revision in the database and the one this version needs."""
    owner, _ = owner_address(state(ctx).settings())
    owner.check()
    engine = owner.engine(pool_size=1)
    try:
        result = migrations.status(engine)
    except OperationalError as e:
        raise StoreUnavailable(first_line(e)) from None
    finally:
        engine.dispose()
    if as_json:
        emit_json({"current": result.current, "head": result.head})
    else:
        note = "up to date" if result.up_to_date else "run `tradecore db upgrade`"
        out.print(f"current {result.current or '-'}, head {result.head}: {note}")


@app.command("stop")
def stop(ctx: typer.Context) -> None:
    """Stop the embedded server (it is otherwise kept running between commands)."""
    settings = state(ctx).settings()
    if settings.database_url:
        out.print("a database URL is configured, not the embedded server: nothing to stop")
        return
    stopped = EmbeddedPostgres(settings.home).stop()
    out.print("embedded server stopped" if stopped else "embedded server was not running")
