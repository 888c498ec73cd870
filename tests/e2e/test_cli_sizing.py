"""Sizing through the CLI: a wild market on a fresh install falls back to 0.3x at 1.0."""

from __future__ import annotations

from tests.e2e.conftest import Cli

BTC = "BTC/USDT:USDT"


def test_a_volatile_market_on_a_fresh_install_gives_the_fallback(cli: Cli) -> None:
    for price in ("60000", "63500", "57000", "64200", "55800", "62900", "54500"):
        assert cli("paper", "price", "--symbol", BTC, "--price", price).code == 0

    decided = cli("sizing", "decide", "--symbol", BTC, "--confidence", "0.75", "--json")

    assert decided.code == 0, decided.stderr
    data = decided.json()
    assert data["fallback"] is True
    assert (data["size_multiplier"], data["leverage"]) == ("0.3", "1.0")
    assert data["regime"] == "HIGH" and data["regime_known"] is True
    shown = cli("sizing", "show", "--json").json()
    assert shown["regimes"][0]["symbol"] == BTC and shown["regimes"][0]["regime"] == "HIGH"
    assert shown["agent"]["states_trained"] == 0


def test_a_calm_market_takes_the_neutral_action(cli: Cli) -> None:
    for price in ("60000", "60010", "60004", "60012", "60007", "60011"):
        assert cli("paper", "price", "--symbol", BTC, "--price", price).code == 0
    data = cli("sizing", "decide", "--symbol", BTC, "--confidence", "0.75", "--json").json()
    assert data["fallback"] is False and data["regime"] == "LOW"
    assert (data["size_multiplier"], data["leverage"]) == ("1.0", "1.0")


def test_bad_sizing_input_exits_2(cli: Cli) -> None:
    bad = cli("sizing", "decide", "--symbol", BTC, "--confidence", "high")
    assert bad.code == 2 and "--confidence" in bad.stderr
    over = cli("sizing", "decide", "--symbol", BTC, "--confidence", "1.5")
    assert over.code == 2 and "confidence" in over.stderr
