"""``tradecore replay`` on real candles (the shipped excerpt of January 2022): the breaker's
figures against an independent computation, the breach at the first crossing mark, no
look-ahead in ``--train-until``, and bad ticks that never trip the breaker."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from adapters.data import excerpt_path
from adapters.database import DatabaseAddress
from app.config import Settings
from app.entrypoints.replay import ReplayRequest
from domain.account import Account
from tests.integration.replay_support import (
    first_crossing,
    long_equity_path,
    path_points,
    replayed,
)
from tests.postgres import PgTestServer, app_address

START = datetime(2022, 1, 20, 19, tzinfo=UTC)
END = datetime(2022, 1, 20, 22, tzinfo=UTC)


def test_breaker_figures_equal_the_independent_computation_and_it_trips_at_the_first_crossing_mark(
    settings: Settings,
) -> None:
    request = ReplayRequest(start=START, end=END, hold=Decimal(3))
    result, events = replayed(settings, request, excerpt_path())
    hold = result["hold"]
    expected = long_equity_path(
        path_points(excerpt_path(), START, END),
        wallet=Decimal(hold["wallet_after_entry"]),
        quantity=Decimal(hold["quantity"]),
        entry=Decimal(hold["price"]),
    )
    crossing = first_crossing(expected)
    assert crossing is not None, "the window was chosen to cross -10 % with a 3x long"
    breach = [e for e in events if isinstance(e, Account.HardBreach)]
    assert len(breach) == 1
    # The breach is recorded at the crossing mark: the reading it judged is dated by the
    # market clock, and the breach itself carries the same market time.
    assert breach[0].timestamp == crossing.at
    accepted = [
        (e.venue_at, e.equity, e.peak, e.drawdown)
        for e in events
        if isinstance(e, Account.EquityRecorded)
        and e.status == "accepted"
        and e.venue_at <= crossing.at
    ]
    wanted = [(x.at, x.equity, x.peak, x.drawdown) for x in expected if x.at <= crossing.at]
    assert len(accepted) == len(wanted) > 400
    for got, want in zip(accepted, wanted, strict=True):
        assert got == want
    activation = result["activations"][0]
    assert activation["activated_at"] == crossing.at
    assert activation["flat_at"] is not None
    assert result["hold"]["quantity"] > 0
    assert result["trades"]["by_reason"] == {"emergency": 1}


@pytest.fixture
def second_database(pg_server: PgTestServer, migrated_template: str) -> Iterator[DatabaseAddress]:
    address = pg_server.create_database(template=migrated_template)
    yield app_address(address)
    pg_server.drop_database(address)


def test_a_model_trained_until_t_is_byte_identical_whatever_the_file_holds_after_t(
    settings: Settings, second_database: DatabaseAddress, tmp_path: Path
) -> None:
    until = datetime(2022, 1, 20, 8, tzinfo=UTC)
    lines = excerpt_path().read_text().splitlines()
    # The same candles up to T, then 30 more or 900 more: what follows T differs.
    short, long = tmp_path / "short.csv", tmp_path / "long.csv"
    cut = 1 + 8 * 60
    short.write_text("\n".join(lines[: cut + 30]) + "\n")
    long.write_text("\n".join(lines[: cut + 900]) + "\n")
    request = ReplayRequest(train_until=until, end=datetime(2022, 1, 20, 8, 10, tzinfo=UTC))
    stores = (settings, settings.model_copy(update={"database_url": second_database.url}))
    models = []
    for path, store in zip((short, long), stores, strict=True):
        result, _ = replayed(store, request, path)
        [model] = result["models"]["registered"]
        assert model["data_to"] < until
        assert result["models"]["promoted"] == [1]
        assert result["replay"]["from"] == until
        models.append(model)
    assert models[0]["sha256"] == models[1]["sha256"]
    assert models[0]["data_to"] == datetime(2022, 1, 20, 7, 59, tzinfo=UTC)


def test_isolated_bad_ticks_on_a_real_window_trip_nothing_and_each_is_recorded_as_unconfirmed(
    settings: Settings,
) -> None:
    # 0.5x through the 2022-01-20 evening fall: the true drawdown stays far from -10 %,
    # while a bad tick 30 % off would read as -15 % if the breaker believed it.
    request = ReplayRequest(
        start=datetime(2022, 1, 20, 18, tzinfo=UTC),
        end=datetime(2022, 1, 20, 22, tzinfo=UTC),
        hold=Decimal("0.5"),
        glitch_rate=6.0,  # a bad tick every 10 market minutes on average
        seed=11,
    )
    result, events = replayed(settings, request, excerpt_path())
    glitches = result["glitches"]
    assert glitches["injected"] >= 10
    assert set(glitches["by_outcome"]) <= {"unconfirmed", "rejected"}, glitches["by_outcome"]
    assert sum(glitches["by_outcome"].values()) == glitches["injected"]
    assert result["activations"] == []
    assert result["breaches"] == []
    assert not [e for e in events if isinstance(e, Account.HardBreach | Account.SoftBreach)]
    # Every bad tick was seen (held, then contradicted by the re-read at the true mark).
    unconfirmed = [e for e in events if isinstance(e, Account.ReadingUnconfirmed)]
    assert len(unconfirmed) == glitches["by_outcome"].get("unconfirmed", 0)
    assert min(float(g["mark"]) / float(g["true"]) for g in glitches["each"]) < 0.75
