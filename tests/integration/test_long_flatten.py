"""A time to flat past 32 bits of milliseconds is a valid event every read model can hold."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from app.bootstrap import Core
from domain.emergency import Emergency
from domain.ids import EMERGENCY_ID
from projections.tables import emergency_view, incidents

THIRTY_DAYS_MS = 30 * 24 * 3600 * 1000  # past 2**31 - 1 (24.8 days)


def test_an_emergency_flat_thirty_days_after_activation_wedges_no_read_model(core: Core) -> None:
    core.commands.activate_emergency(reason="long outage", actor="test")
    emergency = core.store.repository.get(EMERGENCY_ID)
    assert isinstance(emergency, Emergency) and emergency.activated_at is not None
    emergency.record_flat(
        positions_closed=0,
        orders_canceled=0,
        timestamp=emergency.activated_at + timedelta(days=30),
    )
    core.store.save(emergency)

    core.runner.catch_up()

    assert core.runner.failing() == []
    with core.engine.connect() as conn:
        assert conn.execute(select(emergency_view.c.time_to_flat_ms)).scalar_one() == (
            THIRTY_DAYS_MS
        )
        assert conn.execute(select(incidents.c.time_to_flat_ms)).scalar_one() == THIRTY_DAYS_MS
