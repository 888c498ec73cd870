"""The ccxt venues' cash transfers (issue 15), through ccxt's real request building and
ledger parsing against canned Binance USD-M and Bybit answers, with no network (the rig of
``test_ccxt_venue_offline``)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import ccxt
import pytest

from adapters.ccxt.venue import CcxtVenue
from domain.venue import CashTransfer, VenueAuthenticationFailed, VenueUnavailable
from tests.unit.test_ccxt_venue_offline import (
    KEY,
    SECRET,
    Rig,
    Sent,
    assert_binance_signed,
    binance_wire,
    bybit_error,
    bybit_wire,
    no_network,  # noqa: F401  (autouse: sockets closed in this module too)
    offline,
)

IN_AT = datetime(2025, 12, 31, 23, 50, tzinfo=UTC)  # 1767225000000 ms
OUT_AT = datetime(2025, 12, 31, 23, 58, 20, tzinfo=UTC)  # 1767225500000 ms


@pytest.fixture
def binance() -> Rig:
    wire = binance_wire()
    wire.on("GET", "/fapi/v1/income", "income_transfers.json")
    exchange = offline(ccxt.binanceusdm({"apiKey": KEY, "secret": SECRET}), wire)
    return Rig(CcxtVenue(exchange), wire)


def _bybit_log(sent: Sent) -> str:
    return {"TRANSFER_IN": "transaction_log_in.json", "TRANSFER_OUT": "transaction_log_out.json"}[
        sent.query["type"]
    ]


@pytest.fixture
def bybit() -> Rig:
    wire = bybit_wire()
    wire.on("GET", "/v5/account/transaction-log", _bybit_log)
    exchange = offline(ccxt.bybit({"apiKey": KEY, "secret": SECRET}), wire)
    return Rig(CcxtVenue(exchange), wire)


def test_binance_transfers_come_from_the_futures_income_history_filtered_to_transfers(
    binance: Rig,
) -> None:
    transfers = binance.venue.fetch_transfers(None)

    assert transfers == [
        CashTransfer("9689322392", "transfer_in", Decimal(2000), "USDT", IN_AT),
        CashTransfer("9689322393", "transfer_out", Decimal(1500), "USDT", OUT_AT),
    ]  # the BNB transfer is another wallet's business
    assert [t.net for t in transfers] == [Decimal(2000), Decimal(-1500)]
    sent = binance.wire.one("GET", "/fapi/v1/income")
    assert sent.host == "fapi.binance.com"
    assert sent.query["incomeType"] == "TRANSFER" and sent.query["limit"] == "1000"
    assert "startTime" not in sent.query  # the venue's default window: the last 7 days
    assert_binance_signed(sent)


def test_bybit_transfers_come_from_the_unified_transaction_log_one_type_a_request(
    bybit: Rig,
) -> None:
    transfers = bybit.venue.fetch_transfers(None)

    assert transfers == [
        CashTransfer("592324_USDT_1767225000000", "transfer_in", Decimal(2000), "USDT", IN_AT),
        CashTransfer("592324_USDT_1767225500000", "transfer_out", Decimal(1500), "USDT", OUT_AT),
    ]
    sent = bybit.wire.to("GET", "/v5/account/transaction-log")
    assert sorted(s.query["type"] for s in sent) == ["TRANSFER_IN", "TRANSFER_OUT"]
    assert all(s.query["currency"] == "USDT" and s.query["limit"] == "50" for s in sent)
    assert all(s.headers["X-BAPI-API-KEY"] == KEY for s in sent)


def test_a_ledger_the_keys_may_not_read_is_a_venue_error_not_an_empty_ledger(
    bybit: Rig,
) -> None:
    bybit.wire.on(
        "GET",
        "/v5/account/transaction-log",
        bybit_error(10005, "Permission denied, please check your API key permissions."),
    )
    with pytest.raises(VenueAuthenticationFailed):
        bybit.venue.fetch_transfers(None)


def test_a_transfer_entry_without_an_amount_is_refused_rather_than_guessed(binance: Rig) -> None:
    rows = binance.wire.fixture("income_transfers.json")
    rows[0]["income"] = ""
    binance.wire.on("GET", "/fapi/v1/income", rows)
    with pytest.raises(VenueUnavailable, match="without amount"):
        binance.venue.fetch_transfers(None)
