"""The status API over a real Postgres with a scripted history: every endpoint's answer,
the safeguards' states from their evidence, errors as JSON, and no 500 under fuzzing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from starlette.routing import Route

from adapters.errors import StoreUnavailable
from adapters.paper.venue import PaperVenue
from app.bootstrap import Core
from app.commands.executor import Outcome, TradeIntent
from app.entrypoints.api import create_app
from app.queries.status_views import SAFEGUARDS
from tests.integration.test_p0_06_model_sync import NAME, register
from tests.poison import poison_policy_view

BTC = "BTC/USDT:USDT"


@pytest.fixture
def history(core: Core) -> Core:
    """Readings, a trade, a promoted model its consumers run, and an emergency stop."""
    venue = core.venue()
    assert isinstance(venue, PaperVenue)
    venue.admin().deposit(Decimal(10_000))
    breaker = core.drawdown_breaker()
    breaker.poll()
    opened = core.executor().open(
        TradeIntent(symbol=BTC, side="long", notional=Decimal(2000), actor="t", reason="t")
    )
    assert opened.outcome is Outcome.FILLED
    breaker.poll()
    version = register(core, seed=7)
    core.models().promote(NAME, version, actor="t", reason="t")
    for consumer in core.model_consumers():
        consumer.sync()
    core.runner.catch_up()
    return core


@pytest.fixture
def client(history: Core) -> Iterator[TestClient]:
    app = create_app(history.settings, connect=lambda _: history)
    with TestClient(app) as test_client:
        yield test_client


def get(client: TestClient, path: str) -> Any:
    response = client.get(path)
    assert response.status_code == 200, (path, response.text)
    return response.json()


def test_every_endpoint_answers_from_the_read_models(client: TestClient, history: Core) -> None:
    policy = get(client, "/api/policy")
    assert policy["allow_new_trades"] is True and policy["emergency_mode"] is False
    assert get(client, "/api/emergency")["active"] is False
    risk = get(client, "/api/risk")
    [account] = risk["accounts"]
    assert account["state"] == "normal" and Decimal(account["equity"]) > 0
    assert len(risk["history"]) == 2 and risk["hard_threshold"] == "-0.10"
    [position] = get(client, "/api/positions")
    assert position["symbol"] == BTC and position["side"] == "long"
    [trade] = get(client, "/api/trades?open=true")
    assert trade["symbol"] == BTC and trade["status"] == "open"
    models = get(client, "/api/models")
    assert [m["version"] for m in models["promoted"]] == [1]
    assert {c["version"] for c in models["consumers"]} == {1}
    projections = get(client, "/api/projections")
    assert {p["name"] for p in projections} >= {"policy_view", "trades", "dashboard"}
    assert all(p["lag_events"] == 0 for p in projections)
    assert get(client, "/api/incidents") == []
    status = get(client, "/api/status")
    assert status["new_entries_allowed"] is True and set(status["safeguards"]) == set(SAFEGUARDS)
    assert get(client, "/openapi.json")["info"]["title"] == "tradecore status API"

    history.commands.activate_emergency(reason="drill", actor="alice")
    history.flattener().run()
    history.runner.catch_up()
    emergency = get(client, "/api/emergency")
    assert emergency["active"] is True and emergency["flat"] is True
    [incident] = get(client, "/api/incidents")
    assert (incident["source"], incident["activated_by"]) == ("operator", "alice")
    assert incident["time_to_flat_ms"] > 0  # ms, activation to flat: a flatten takes some
    report = get(client, f"/api/incidents/{incident['incident_id']}")
    assert report["trigger"]["reason"] == "drill"
    assert "data:image/png;base64," in client.get("/incidents/1").text
    assert get(client, "/api/positions") == []


def test_the_breaker_is_degraded_without_a_recent_reading_and_active_with_one(
    client: TestClient, history: Core
) -> None:
    history.drawdown_breaker().poll()
    history.runner.catch_up()
    breaker = get(client, "/api/patches/status")["safeguards"]["p0_07_dd_monitor"]
    assert breaker["status"] == "ACTIVE", breaker
    assert breaker["evidence"]["reading_age_seconds"] < 5

    real = history.clock
    # No reading for 30 s past the bound the gate also uses (BREAKER_BLIND).
    silence = history.settings.breaker_sight_bound + 30
    history.clock = lambda: real() + timedelta(seconds=silence)
    try:
        status = get(client, "/api/patches/status")
    finally:
        history.clock = real
    breaker = status["safeguards"]["p0_07_dd_monitor"]
    assert breaker["status"] == "DEGRADED"
    assert breaker["evidence"]["reading_age_seconds"] >= silence
    assert status["status"] == "DEGRADED"
    assert list(status["safeguards"]) == list(SAFEGUARDS)


def test_the_safeguards_a_worker_carries_are_degraded_while_no_worker_answers(
    client: TestClient,
) -> None:
    safeguards = get(client, "/api/patches/status")["safeguards"]
    for name in ("p0_02_ess_close_positions", "p0_03_event_buffer"):
        assert safeguards[name]["status"] == "DEGRADED", name
        # The evidence says why: no worker ever ran.
        assert safeguards[name]["evidence"]["worker_heartbeat_age_seconds"] is None, name
    assert safeguards["p0_03_event_buffer"]["evidence"]["read_models_behind_or_failing"] == []


def test_a_read_model_failing_on_an_event_degrades_its_safeguard_with_the_reason(
    client: TestClient, history: Core
) -> None:
    poison = poison_policy_view(history)
    history.runner.catch_up()
    safeguards = get(client, "/api/patches/status")
    assert safeguards["status"] == "DEGRADED"
    store = safeguards["safeguards"]["p0_01_policy_store"]
    assert store["status"] == "DEGRADED"
    assert store["evidence"]["failing_event_id"] == poison
    assert f"policy_view cannot apply event {poison}" in store["evidence"]["reason"]
    assert "NumericValueOutOfRange" in store["evidence"]["reason"]
    buffer = safeguards["safeguards"]["p0_03_event_buffer"]["evidence"]
    assert list(buffer["read_models_failing"]) == ["policy_view"]
    [view] = [p for p in get(client, "/api/projections") if p["name"] == "policy_view"]
    assert view["last_error"] is not None


def every_table(core: Core) -> dict[str, str]:
    """A fingerprint of every table in the database (the log, the read models, the paper
    venue, the tracking rows): its rows, hashed, by schema-qualified name."""
    with core.engine.connect() as conn, conn.begin():
        conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        names = conn.exec_driver_sql(
            "SELECT quote_ident(table_schema) || '.' || quote_ident(table_name)"
            " FROM information_schema.tables WHERE table_type = 'BASE TABLE'"
            " AND table_schema NOT IN ('pg_catalog', 'information_schema')"
        ).scalars()
        return {
            name: str(
                conn.exec_driver_sql(
                    f"SELECT count(*) || ':' || coalesce(md5(string_agg(t::text, ','"
                    f" ORDER BY t::text)), '') FROM {name} t"
                ).scalar_one()
            )
            for name in names
        }


def test_bad_input_is_422_an_unknown_incident_404_and_nothing_changes_state(
    client: TestClient, history: Core
) -> None:
    before = every_table(history)
    assert len(before) > 10 and any(".tradecore_events" in name for name in before), before

    bad = client.get("/api/risk?minutes=-1")
    assert bad.status_code == 422 and "minutes" in bad.text
    assert client.get("/api/trades?limit=abc").status_code == 422
    missing = client.get("/api/incidents/7")
    assert missing.status_code == 404 and "no incident" in missing.json()["detail"]
    # Every route is read-only, and each refuses every method that could change state.
    routes = [r for r in client.app.routes if isinstance(r, Route)]  # type: ignore[attr-defined]
    assert len(routes) >= 12
    for route in routes:
        assert route.methods is not None and route.methods <= {"GET", "HEAD"}, route.path
        path = route.path.replace("{ref}", "1")
        for method in ("POST", "PUT", "PATCH", "DELETE"):
            response = client.request(method, path, json={"emergency_mode": False})
            assert response.status_code == 405, (method, path, response.status_code)

    assert every_table(history) == before


def test_no_page_served_needs_the_internet(client: TestClient) -> None:
    for page in ("/docs", "/redoc"):  # FastAPI's own pages load their scripts from a CDN
        assert client.get(page).status_code == 404, page
    assert client.get("/openapi.json").json()["info"]["title"] == "tradecore status API"
    dashboard = client.get("/").text
    assert "<script src=" not in dashboard and "https://" not in dashboard


def test_an_unreachable_store_is_a_503_with_the_reason_and_the_server_keeps_going(
    settings: Any,
) -> None:
    def down(_: Any) -> Core:
        raise StoreUnavailable("connection refused (test)")

    with TestClient(create_app(settings, connect=down)) as client:
        for _ in range(2):
            response = client.get("/api/patches/status")
            assert response.status_code == 503
            assert "connection refused" in response.json()["detail"]
        assert client.get("/").status_code == 200  # the page itself still loads


def test_no_request_the_schema_allows_gets_a_server_error(client: TestClient) -> None:
    """Schemathesis generates requests from /openapi.json (every operation, valid and
    boundary values); none may end in a 5xx."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", client.app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 11
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=30,
            deadline=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        )
        def call(case: Any) -> None:
            response = case.call()
            assert response.status_code < 500, (case.path, response.status_code, response.text)

        call()
