"""The main job: ``tradecore demo`` on a fresh home, then the audit of what it did."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from tests.e2e.conftest import Cli
from tests.postgres import private_temp_home


@pytest.fixture
def home() -> Iterator[Path]:
    folder = private_temp_home("tradecore-demo-")
    yield folder / "home"
    shutil.rmtree(folder, ignore_errors=True)


def test_the_demo_trips_the_breaker_flattens_and_its_incident_can_be_audited(
    bare_cli: Cli, home: Path
) -> None:
    args = ("--home", str(home))
    try:
        ran = bare_cli(*args, "demo", "--json", timeout=180)
        assert ran.code == 0, ran.stderr
        result = ran.json()
        incident = result["incident"]
        assert incident["trigger"]["source"] == "drawdown"
        assert float(incident["trigger"]["drawdown"]) <= float(
            incident["trigger"]["hard_threshold"]
        )
        assert incident["time_to_flat_ms"] is not None and incident["flat"] is True
        assert result["demo"]["venue_positions_after"] == 0
        assert result["demo"]["soft_breach_refused_entry"] is True
        assert [m["version"] for m in incident["models_at_activation"]] == [1, 1, 1]
        assert bare_cli(*args, "positions", "--json").json() == []

        latest = bare_cli(*args, "audit", "incident", "--latest", "--json")
        assert latest.code == 0, latest.stderr
        assert latest.json()["incident_id"] == incident["incident_id"]

        # Between the soft breach and the hard one: entries blocked, no emergency yet.
        breaches = {b["type"]: b["at"] for b in incident["breaches"]}
        soft = datetime.fromisoformat(breaches["risk.drawdown.soft_breach"])
        hard = datetime.fromisoformat(breaches["risk.drawdown.hard_breach"])
        between = soft + (hard - soft) / 2
        state = bare_cli(*args, "audit", "state", "--at", between.isoformat(), "--json")
        assert state.code == 0, state.stderr
        data = state.json()
        assert data["risk"]["state"] == "soft_breach"
        assert data["policy"]["allow_new_trades"] is False
        assert data["emergency"]["active"] is False
        assert len(data["open_trades"]) == 3
        text = bare_cli(*args, "audit", "state", "--at", between.isoformat())
        assert text.code == 0 and "position   BTC/USDT:USDT long" in text.stdout
        early = bare_cli(*args, "audit", "state", "--at", "2000-01-01T00:00:00")
        assert early.code == 0 and "nothing was recorded yet" in early.stdout

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
