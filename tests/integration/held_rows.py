"""A read model's tracking row held by another transaction, as an administrator's open
transaction or a stopped process holds it: what the bounded catch-ups are tested against."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, select

from projections.tables import projection_tracking


@contextmanager
def tracking_row_held(engine: Engine, name: str) -> Iterator[None]:
    """Read model ``name``'s tracking row locked (FOR UPDATE) by a transaction of its own
    for the block, rolled back at its end."""
    with engine.connect() as holder, holder.begin():
        holder.execute(
            select(projection_tracking).where(projection_tracking.c.name == name).with_for_update()
        )
        yield
