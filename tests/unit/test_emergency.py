"""The Emergency latch's rules and its flatten record, without any I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from uuid import UUID, uuid4

import pytest

from domain.emergency import AccountNotFlat, Emergency, EmergencyNotActive
from domain.errors import InvalidCommand

T0 = datetime(2026, 1, 1, tzinfo=UTC)
INSTALLATION = UUID("00000000-0000-4000-8000-000000000001")


def new_latch() -> Emergency:
    return Emergency(installation_id=INSTALLATION, timestamp=T0)


def activate(latch: Emergency, reason: str = "drill") -> bool:
    return latch.activate(reason=reason, actor="alice", source="operator", timestamp=T0)


def reset(
    latch: Emergency, *, positions: int | None = 0, orders: int | None = 0, force: bool = False
) -> None:
    latch.reset(
        reason="ok",
        actor="bob",
        timestamp=T0,
        open_positions=positions,
        open_orders=orders,
        force=force,
    )


def test_activation_latches_with_reason_actor_and_source() -> None:
    latch = new_latch()
    assert activate(latch)
    assert latch.active
    assert (latch.reason, latch.activated_by, latch.source) == ("drill", "alice", "operator")
    assert latch.activation_number == 1
    assert latch.flat is None


def test_activating_an_active_latch_is_idempotent() -> None:
    latch = new_latch()
    activate(latch)
    latch.collect_events()
    assert not activate(latch, reason="again")
    assert latch.collect_events() == []
    assert latch.reason == "drill"


def test_activation_ids_are_stable_per_installation_and_differ_between_installations() -> None:
    one, same, other = new_latch(), new_latch(), Emergency(installation_id=uuid4(), timestamp=T0)
    for latch in (one, same, other):
        activate(latch)
    assert one.activation_id == same.activation_id
    assert one.activation_id != other.activation_id
    reset(one)
    activate(one, reason="second")
    assert one.activation_number == 2 and one.activation_id != same.activation_id


def test_resetting_an_inactive_latch_is_refused() -> None:
    with pytest.raises(EmergencyNotActive):
        reset(new_latch())


@pytest.mark.parametrize(("positions", "orders"), [(1, 0), (0, 2), (None, None)])
def test_reset_is_refused_unless_the_venue_is_known_to_be_flat(
    positions: int | None, orders: int | None
) -> None:
    latch = new_latch()
    activate(latch)
    with pytest.raises(AccountNotFlat):
        reset(latch, positions=positions, orders=orders)
    assert latch.active
    reset(latch, positions=positions, orders=orders, force=True)
    assert not latch.active and latch.forced_reset is True


def test_a_reset_recorded_before_the_flatness_check_still_loads() -> None:
    # Version 1 of Reset had no forced/open_positions/open_orders: it is upcast.
    state = {
        "activation_number": 1,
        "reason": "r",
        "actor": "a",
        "correlation_id": None,
        "causation_id": None,
    }
    Emergency.Reset.upcast_v1_v2(state)
    assert state["forced"] is False and state["open_positions"] is None


def test_activation_requires_reason_actor_and_a_known_source() -> None:
    latch = new_latch()
    with pytest.raises(InvalidCommand, match="reason"):
        latch.activate(reason=" ", actor="a", source="operator", timestamp=T0)
    with pytest.raises(InvalidCommand, match="actor"):
        latch.activate(reason="r", actor="", source="operator", timestamp=T0)
    with pytest.raises(InvalidCommand, match="source"):
        latch.activate(reason="r", actor="a", source="martians", timestamp=T0)
    assert not latch.active


def test_flatten_attempts_are_numbered_in_order() -> None:
    latch = new_latch()
    activate(latch)
    latch.record_attempt(attempt=1, positions_open=2, orders_open=1, timestamp=T0)
    with pytest.raises(InvalidCommand, match="out of order"):
        latch.record_attempt(attempt=1, positions_open=2, orders_open=1, timestamp=T0)
    latch.record_attempt(attempt=2, positions_open=1, orders_open=0, timestamp=T0)
    assert latch.flatten_attempts == 2


def test_flat_is_recorded_with_time_to_flat_and_one_operator_event() -> None:
    latch = new_latch()
    activate(latch)
    latch.record_attempt(attempt=1, positions_open=1, orders_open=1, timestamp=T0)
    latch.record_attempt_results(
        canceled=1,
        canceled_symbols=["BTC/USDT:USDT"],
        closes=[
            {
                "symbol": "BTC/USDT:USDT",
                "side": "long",
                "quantity": Decimal("0.1"),
                "average_price": Decimal("50000"),
                "complete": True,
            }
        ],
        timestamp=T0,
    )
    latch.record_flat(
        positions_closed=1, orders_canceled=1, timestamp=T0 + timedelta(milliseconds=42)
    )
    latch.record_flat(positions_closed=1, orders_canceled=1, timestamp=T0 + timedelta(seconds=9))
    assert latch.flat is True
    assert latch.time_to_flat_ms == 42  # the first time flat counts
    names = [type(e).__name__ for e in latch.collect_events()]
    assert names.count("Triggered") == 1
    assert names.count("AccountFlat") == 2
    assert {"OrdersCanceled", "PositionsClosed"} <= set(names)
    assert Emergency.Triggered.operator_name == "system.emergency.triggered"


def test_flatten_records_are_refused_once_reset() -> None:
    latch = new_latch()
    activate(latch)
    reset(latch)
    with pytest.raises(EmergencyNotActive):
        latch.record_attempt(attempt=1, positions_open=0, orders_open=0, timestamp=T0)
