"""Rebuilding a read model without downtime, and verifying one against a full replay.

A rebuild replays the log from the first event into shadow copies of the projection's
tables, batch by batch (bounded memory, tracking committed per batch). Then, in one
transaction, it locks the live projection's tracking row (the live runner waits), applies
the few events that arrived meanwhile, and swaps the shadow tables in. Readers see the old
model until that commit and the new one after it, never a partial or empty one. An
interrupted rebuild leaves the live model as it was; the next one starts its shadow afresh.

Verification replays into scratch copies up to exactly the live model's position (taken
under the same lock) and compares the tables row by row. Both honour the skips recorded in
the log (``projections skip``), and verification lists the ones it honoured.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import Connection, Table, delete, except_, inspect, select, text, update

from projections.runner import Projection, ProjectionRunner
from projections.tables import projection_tracking

REBUILD_SUFFIX = "__rebuild"
VERIFY_SUFFIX = "__verify"
MAX_DIFFERENCES = 50

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class RebuildReport:
    name: str
    events_applied: int
    position: int


@dataclass
class VerifyReport:
    consistent: bool = True
    differences: list[dict[str, Any]] = field(default_factory=list)
    positions: dict[str, int] = field(default_factory=dict)
    # The recorded skips the replay honoured: consumer, event id, topic, reason, actor, when.
    skips: list[dict[str, Any]] = field(default_factory=list)
    # Read models held back before an event they cannot apply: not a full replay of the log,
    # so not consistent, whatever their rows up to there say (name, event id, topic, error).
    failing: list[dict[str, Any]] = field(default_factory=list)


def rebuild(
    runner: ProjectionRunner, projection: Projection, progress: Progress = lambda p, h: None
) -> RebuildReport:
    """Rebuild ``projection`` from the first event and swap it in atomically."""
    shadow = projection.renamed(REBUILD_SUFFIX)
    _fresh_copies(runner, shadow)
    applied = runner.catch_up_projection(shadow, progress=progress)
    with runner.engine.begin() as conn:
        live_position = _lock(runner, conn, projection)
        head = runner.reader.head(conn)
        applied += runner.apply_pending(conn, shadow, upto=max(head, live_position))
        for role, live in projection.tables.items():
            _swap(conn, live, shadow.tables[role])
        conn.execute(
            update(projection_tracking)
            .where(projection_tracking.c.name == projection.name)
            .values(position=max(head, live_position), last_error=None)
        )
        conn.execute(delete(projection_tracking).where(projection_tracking.c.name == shadow.name))
    return RebuildReport(projection.name, applied, max(head, live_position))


def verify(
    runner: ProjectionRunner,
    projection: Projection,
    report: VerifyReport,
    progress: Progress = lambda p, h: None,
) -> None:
    """Replay ``projection`` into scratch tables up to its live position and compare."""
    scratch = projection.renamed(VERIFY_SUFFIX)
    _fresh_copies(runner, scratch)
    try:
        with runner.engine.connect() as conn:
            tracked = conn.execute(
                select(
                    projection_tracking.c.position,
                    projection_tracking.c.failing_event_id,
                    projection_tracking.c.failing_topic,
                    projection_tracking.c.last_error,
                ).where(projection_tracking.c.name == projection.name)
            ).first()
        target = int(tracked.position or 0) if tracked is not None else 0
        if tracked is not None and tracked.failing_event_id is not None:
            report.consistent = False
            report.failing.append(
                {
                    "projection": projection.name,
                    "event_id": tracked.failing_event_id,
                    "topic": tracked.failing_topic,
                    "error": tracked.last_error,
                }
            )
        runner.catch_up_projection(scratch, upto=target, progress=progress)
        with runner.engine.begin() as conn:
            live_position = _lock(runner, conn, projection)
            runner.apply_pending(conn, scratch, upto=live_position)
            report.positions[projection.name] = live_position
            report.skips.extend(
                asdict(skip)
                for skip in runner.recorded_skips()
                if skip.consumer == projection.name and skip.event_id <= live_position
            )
            for role, live in projection.tables.items():
                _compare(conn, live, scratch.tables[role], report)
    finally:
        _drop_copies(runner, scratch)


def _lock(runner: ProjectionRunner, conn: Connection, projection: Projection) -> int:
    # The live runner takes the same row lock per batch, so it waits for this transaction.
    return runner.lock_position(conn, projection.name)


def _fresh_copies(runner: ProjectionRunner, copy: Projection) -> None:
    _drop_copies(runner, copy)
    with runner.engine.begin() as conn:
        for table in copy.tables.values():
            table.create(conn)


def _drop_copies(runner: ProjectionRunner, copy: Projection) -> None:
    with runner.engine.begin() as conn:
        for table in copy.tables.values():
            table.drop(conn, checkfirst=True)
        conn.execute(delete(projection_tracking).where(projection_tracking.c.name == copy.name))


def _swap(conn: Connection, live: Table, shadow: Table) -> None:
    """Replace ``live`` with ``shadow`` in the caller's transaction, keeping live's names."""
    schema = live.schema
    shadow_pk = inspect(conn).get_pk_constraint(shadow.name, schema=schema)["name"]
    conn.execute(text(f'DROP TABLE "{schema}"."{live.name}"'))
    conn.execute(text(f'ALTER TABLE "{schema}"."{shadow.name}" RENAME TO "{live.name}"'))
    if shadow_pk:
        conn.execute(
            text(
                f'ALTER TABLE "{schema}"."{live.name}" '
                f'RENAME CONSTRAINT "{shadow_pk}" TO "{live.name}_pkey"'
            )
        )
    for live_index, shadow_index in zip(
        sorted(live.indexes, key=lambda i: str(i.name)),
        sorted(shadow.indexes, key=lambda i: str(i.name)),
        strict=True,
    ):
        conn.execute(
            text(f'ALTER INDEX "{schema}"."{shadow_index.name}" RENAME TO "{live_index.name}"')
        )


def _compare(conn: Connection, live: Table, replay: Table, report: VerifyReport) -> None:
    columns = [c.name for c in live.columns]
    keys = [c.name for c in live.primary_key.columns]
    live_cols = [live.c[name] for name in columns]
    replay_cols = [replay.c[name] for name in columns]
    only_live = conn.execute(except_(select(*live_cols), select(*replay_cols))).all()
    only_replay = conn.execute(except_(select(*replay_cols), select(*live_cols))).all()
    if not only_live and not only_replay:
        return
    report.consistent = False
    rows: dict[tuple[Any, ...], dict[str, Any]] = {}
    for side, found in (("live", only_live), ("replay", only_replay)):
        for row in found:
            data = dict(zip(columns, row, strict=True))
            key = tuple(data[k] for k in keys)
            rows.setdefault(
                key,
                {
                    "table": live.name,
                    "key": dict(zip(keys, key, strict=True)),
                    "live": None,
                    "replay": None,
                },
            )[side] = data
    room = MAX_DIFFERENCES - len(report.differences)
    report.differences.extend(list(rows.values())[: max(room, 0)])
