"""The main job: ``tradecore demo`` on a fresh home replays the shipped real candles, the
breaker fires at the mark where the real market crosses the hard threshold, and the
incident can be audited."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pytest

from adapters.data import excerpt_path
from tests.e2e.conftest import Cli
from tests.integration.replay_support import first_crossing, long_equity_path, path_points
from tests.postgres import private_temp_home


@pytest.fixture
def home() -> Iterator[Path]:
    folder = private_temp_home("tradecore-demo-")
    yield folder / "home"
    shutil.rmtree(folder, ignore_errors=True)


def test_the_demo_trips_the_breaker_where_the_real_market_crosses_and_its_incident_can_be_audited(
    bare_cli: Cli, home: Path
) -> None:
    args = ("--home", str(home))
    try:
        ran = bare_cli(*args, "demo", "--json", timeout=240)
        assert ran.code == 0, ran.stderr
        result = ran.json()
        incident, replay = result["incident"], result["replay"]
        assert incident["trigger"]["source"] == "drawdown"

        # The crossing, computed here from the shipped file and the position the venue
        # filled: the first mark whose drawdown from the running peak is -10 % or worse.
        hold = replay["hold"]
        start = datetime.fromisoformat(replay["replay"]["from"])
        end = datetime.fromisoformat(replay["replay"]["to"])
        expected = long_equity_path(
            path_points(excerpt_path(), start, end),
            wallet=Decimal(hold["wallet_after_entry"]),
            quantity=Decimal(hold["quantity"]),
            entry=Decimal(hold["price"]),
        )
        crossing = first_crossing(expected)
        assert crossing is not None
        assert datetime.fromisoformat(incident["activated_at"]) == crossing.at
        hard = [b for b in incident["breaches"] if b["type"] == "risk.drawdown.hard_breach"]
        assert [datetime.fromisoformat(b["at"]) for b in hard] == [crossing.at]
        assert Decimal(incident["trigger"]["drawdown"]) == crossing.drawdown
        # The soft breach came first (the replay's report: the incident shows minutes only).
        soft = [b for b in replay["breaches"] if b["type"] == "soft"]
        assert soft and datetime.fromisoformat(soft[0]["at"]) < crossing.at

        assert incident["flat"] is True and result["demo"]["venue_positions_after"] == 0
        assert [m["version"] for m in incident["models_at_activation"]] == [1, 1, 1]
        [model] = replay["models"]["registered"]
        assert datetime.fromisoformat(model["data_to"]) < start  # trained before the replay
        assert bare_cli(*args, "positions", "--json").json() == []

        latest = bare_cli(*args, "audit", "incident", "--latest", "--json")
        assert latest.code == 0, latest.stderr
        assert latest.json()["incident_id"] == incident["incident_id"]
        # Between the soft breach and the hard one: entries blocked, no emergency yet.
        between = (
            datetime.fromisoformat(soft[0]["at"])
            + (crossing.at - datetime.fromisoformat(soft[0]["at"])) / 2
        )
        state = bare_cli(*args, "audit", "state", "--at", between.isoformat(), "--json")
        assert state.code == 0, state.stderr
        data = state.json()
        assert data["risk"]["state"] == "soft_breach"
        assert data["policy"]["allow_new_trades"] is False
        assert data["emergency"]["active"] is False
        assert len(data["open_trades"]) == 1

        page = home.parent / "incident.html"
        html = bare_cli(*args, "audit", "incident", "1", "--html", str(page))
        assert html.code == 0, html.stderr
        assert "data:image/png;base64," in page.read_text(encoding="utf-8")

        again = bare_cli(*args, "demo")
        assert again.code == 3 and "needs a fresh one" in again.stderr
    finally:
        stopped = bare_cli(*args, "db", "stop")
        assert stopped.code == 0, stopped.stderr


def test_audit_refuses_bad_input_with_exit_2_naming_what_is_wrong(cli: Cli) -> None:
    bad = cli("audit", "state", "--at", "yesterday")
    assert bad.code == 2 and "ISO 8601" in bad.stderr
    none = cli("audit", "incident", "--latest")
    assert none.code == 2 and "no incident" in none.stderr
    nowhere = cli("audit", "incident", "--latest", "--html", "/no/such/folder/x.html")
    assert nowhere.code == 2 and "/no/such/folder does not exist" in nowhere.stderr
    both = cli("audit", "incident", "--list", "--html", "x.html")
    assert both.code == 2 and "--list" in both.stderr
    unknown = cli("audit", "timeline", "--since", "2026-01-01T00:00:00", "--type", "nosuch")
    assert unknown.code == 2 and "names no event type" in unknown.stderr
