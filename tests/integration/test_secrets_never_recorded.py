"""A ccxt venue's API key and secret, given in the environment, never reach the log: after
a run that used them (reconciliation adopting the venue's positions, a flatten whose close
requests the venue refused with an answer quoting the credentials, then a flatten to flat),
no event, snapshot or other row of the database holds either, and no log line does."""

from __future__ import annotations

import logging
import uuid
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import text

from adapters.ccxt.venue import CcxtVenue
from adapters.eventstore import EVENTS_SCHEMA, EVENTS_TABLE, SNAPSHOTS_TABLE
from app.bootstrap import bootstrap
from app.config import Settings
from domain.emergency import Emergency
from domain.ids import EMERGENCY_ID
from tests.ccxt_sim import (
    Answer,
    SimulatedAccount,
    SimulatedSession,
    open_position,
    rest_order,
    venue_symbol,
)

MARKS = {"BTC/USDT:USDT": Decimal(50_000), "ETH/USDT:USDT": Decimal(3_000)}


class QuotingSession(SimulatedSession):
    """The simulated Bybit, whose refusals quote the caller's credentials back in their
    message (the worst a venue or a gateway in front of it could do)."""

    def _rate_limited(self) -> Answer:
        status, answer = super()._rate_limited()
        answer["retMsg"] = (
            f"Too many visits for key {self.exchange.apiKey} (secret {self.exchange.secret})"
        )
        return status, answer


def as_text(value: object) -> str:
    if isinstance(value, (bytes, memoryview)):
        return bytes(value).decode("utf-8", "replace")
    return str(value)


def every_row_text(conn: Any) -> dict[str, str]:
    """Each table of the database (every schema but the server's own) as one text: its rows'
    values, byte strings decoded as UTF-8 (the stored events' and snapshots' JSON)."""
    tables = conn.execute(
        text(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_type = 'BASE TABLE' "
            "AND table_schema NOT IN ('pg_catalog', 'information_schema')"
        )
    ).all()
    found = {}
    for schema, table in tables:
        rows = conn.execute(text(f'SELECT * FROM "{schema}"."{table}"')).all()
        found[f"{schema}.{table}"] = "\n".join(as_text(v) for row in rows for v in row)
    return found


def test_api_keys_and_secrets_never_reach_an_event_a_table_or_a_log_line(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    key, secret = f"tc-key-{uuid.uuid4().hex}", f"tc-secret-{uuid.uuid4().hex}"
    monkeypatch.setenv("TRADECORE_BYBIT_API_KEY", key)
    monkeypatch.setenv("TRADECORE_BYBIT_API_SECRET", secret)
    caplog.set_level(logging.DEBUG)
    configured = settings.model_copy(update={"exchange": "ccxt:bybit", "flatten_deadline": 1.0})
    with bootstrap(configured, pool_size=8) as core:
        venue = core.venue()  # built from the environment, as `tradecore run` builds it
        assert isinstance(venue, CcxtVenue)
        exchange = venue._exchange
        assert (exchange.apiKey, exchange.secret) == (key, secret)
        session = QuotingSession(
            "bybit", SimulatedAccount({venue_symbol(s): m for s, m in MARKS.items()})
        )
        exchange.session, session.exchange = session, exchange
        open_position(session, "BTC/USDT:USDT", Decimal("0.2"))
        open_position(session, "ETH/USDT:USDT", Decimal("-3"))
        rest_order(session, "BTC/USDT:USDT", "buy", Decimal("0.1"), "in-1", price=Decimal(45_000))

        adopted = core.reconciler().run().adopted
        assert len(adopted) == 2  # the venue's positions, adopted as external trades

        core.commands.activate_emergency(reason="drill", actor="alice")
        session.refuse = lambda method, path, params: "order/create" in path
        refused = core.flattener().run()
        assert refused is not None and not refused.flat
        session.refuse = lambda *_: False
        report = core.flattener().run()
        assert report is not None and report.flat, report

        with core.engine.connect() as conn:
            tables = every_row_text(conn)
        events = list(core.store.events.get(EMERGENCY_ID))
    stored = [f"{EVENTS_SCHEMA}.{EVENTS_TABLE}", f"{EVENTS_SCHEMA}.{SNAPSHOTS_TABLE}"]
    assert all(name in tables for name in stored)
    assert "ExternalPositionDetected" in tables[stored[0]]  # the log was read as text
    leaks = [name for name, rows in tables.items() if key in rows or secret in rows]
    assert leaks == []
    assert key not in caplog.text and secret not in caplog.text
    # The venue's refusal is on record all the same, its quotation of the credentials masked.
    [incomplete] = [e for e in events if isinstance(e, Emergency.FlattenIncomplete)]
    assert incomplete.last_error is not None and "Too many visits" in incomplete.last_error
    assert "***" in incomplete.last_error
