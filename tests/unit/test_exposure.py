"""The arithmetic of the exposure caps: what an entry may still add."""

from __future__ import annotations

from decimal import Decimal

from app.commands.exposure_caps import ENTRY_COST, Exposure, room

MARK = Decimal(50_000)


def test_an_entry_within_both_caps_keeps_its_size() -> None:
    r = room(
        Exposure(Decimal(0), Decimal(0), Decimal(10_000)),
        asked=Decimal(1000),
        mark=MARK,
        max_position_notional=Decimal(5000),
        max_leverage=Decimal(2),
    )
    assert (r.notional, r.quantity, r.capped_by, r.refusal) == (
        Decimal(1000),
        Decimal("0.02"),
        (),
        None,
    )


def test_the_position_cap_cuts_an_entry_to_what_the_position_has_left() -> None:
    r = room(
        Exposure(Decimal(900), Decimal(900), Decimal(10_000)),
        asked=Decimal(300),
        mark=MARK,
        max_position_notional=Decimal(1000),
        max_leverage=None,
    )
    assert r.capped_by == ("max_position_notional",) and r.notional == Decimal(100)


def test_the_account_cap_leaves_room_for_the_entry_cost() -> None:
    r = room(
        Exposure(Decimal(0), Decimal(900), Decimal(1000)),
        asked=Decimal(300),
        mark=MARK,
        max_position_notional=None,
        max_leverage=Decimal(1),
    )
    assert r.capped_by == ("max_leverage",)
    # What fills, and what it costs, still fits 1x the equity it leaves.
    assert Decimal(900) + r.notional <= Decimal(1000) - r.notional * ENTRY_COST
    assert r.notional > Decimal("99.7")


def test_nothing_left_refuses_with_the_binding_cap_code() -> None:
    full = Exposure(Decimal(1000), Decimal(3000), Decimal(1000))
    by_position = room(
        full,
        asked=Decimal(100),
        mark=MARK,
        max_position_notional=Decimal(1000),
        max_leverage=Decimal(5),
    )
    by_account = room(
        full,
        asked=Decimal(100),
        mark=MARK,
        max_position_notional=Decimal(5000),
        max_leverage=Decimal(3),
    )
    assert by_position.refusal is not None and by_position.refusal[0] == "NOTIONAL_CAP"
    assert by_account.refusal is not None and by_account.refusal[0] == "ACCOUNT_LEVERAGE_CAP"
    assert by_position.quantity == by_account.quantity == 0


def test_dust_left_under_a_cap_is_nothing_left() -> None:
    r = room(
        Exposure(Decimal("997"), Decimal("997"), Decimal(10_000)),
        asked=Decimal(300),
        mark=MARK,
        max_position_notional=Decimal(1000),
        max_leverage=None,
    )
    assert r.refusal is not None and r.refusal[0] == "NOTIONAL_CAP"
    assert "997" in r.refusal[1]


def test_an_equity_at_or_below_zero_leaves_nothing() -> None:
    r = room(
        Exposure(Decimal(0), Decimal(0), Decimal(-5)),
        asked=Decimal(100),
        mark=MARK,
        max_position_notional=None,
        max_leverage=Decimal(5),
    )
    assert r.refusal is not None and r.refusal[0] == "ACCOUNT_LEVERAGE_CAP"
