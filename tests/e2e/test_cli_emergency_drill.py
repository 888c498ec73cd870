"""The operator's emergency drill on the paper venue, end to end through the CLI."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import Cli


def open_drill_account(cli: Cli) -> None:
    assert cli("paper", "deposit", "--amount", "10000").code == 0
    for symbol, price in (
        ("BTC/USDT:USDT", "50000"),
        ("ETH/USDT:USDT", "3000"),
        ("SOL/USDT:USDT", "150"),
    ):
        assert cli("paper", "price", "--symbol", symbol, "--price", price).code == 0
    for symbol, qty in (
        ("BTC/USDT:USDT", "0.01"),
        ("ETH/USDT:USDT", "0.1"),
        ("SOL/USDT:USDT", "1"),
    ):
        placed = cli("paper", "order", "--symbol", symbol, "--side", "buy", "--qty", qty)
        assert placed.code == 0, placed.stderr
    for symbol, price in (("BTC/USDT:USDT", "45000"), ("ETH/USDT:USDT", "2500")):
        resting = cli(
            "paper",
            "order",
            "--symbol",
            symbol,
            "--side",
            "buy",
            "--qty",
            "0.01",
            "--type",
            "limit",
            "--price",
            price,
        )
        assert resting.code == 0, resting.stderr
    assert len(cli("positions", "--json").json()) == 3
    assert len(cli("orders", "--json").json()) == 2


@pytest.mark.parametrize(
    "faults",
    [
        (),
        (
            "--error-rate",
            "0.3",
            "--timeout-rate",
            "0.2",
            "--partial-fill-rate",
            "0.5",
            "--seed",
            "7",
        ),
    ],
    ids=["no-faults", "heavy-faults"],
)
def test_activation_flattens_the_account_and_reset_needs_it_flat(
    cli: Cli, faults: tuple[str, ...]
) -> None:
    if faults:
        assert cli("paper", "faults", *faults).code == 0
    open_drill_account(cli)

    early = cli("emergency", "reset", "--reason", "nothing active", "--yes")
    assert early.code == 3

    activated = cli("emergency", "activate", "--reason", "drill", "--yes")
    assert activated.code == 0, activated.stderr
    assert cli("positions", "--json").json() == []
    assert cli("orders", "--json").json() == []
    status = cli("emergency", "status", "--json").json()
    assert status["active"] is True
    assert status["flat"] is True
    assert status["positions_closed"] == 3
    assert status["orders_canceled"] == 2
    assert isinstance(status["time_to_flat_ms"], int)

    reset = cli("emergency", "reset", "--reason", "ok", "--yes")
    assert reset.code == 0, reset.stderr
    assert cli("emergency", "status", "--json").json()["active"] is False


def test_reset_is_refused_with_exit_3_while_the_venue_shows_exposure(cli: Cli) -> None:
    assert cli("paper", "deposit", "--amount", "1000").code == 0
    assert cli("paper", "price", "--symbol", "BTC/USDT:USDT", "--price", "50000").code == 0
    assert cli("emergency", "activate", "--reason", "drill", "--yes").code == 0
    # A position appears after the flatten (e.g. placed by hand on the venue).
    assert (
        cli("paper", "order", "--symbol", "BTC/USDT:USDT", "--side", "buy", "--qty", "0.001").code
        == 0
    )
    refused = cli("emergency", "reset", "--reason", "ok", "--yes")
    assert refused.code == 3
    assert "position" in refused.stderr
    forced = cli("emergency", "reset", "--reason", "hedged elsewhere", "--force", "--yes")
    assert forced.code == 0, forced.stderr
    assert cli("emergency", "status", "--json").json()["forced_reset"] is True


def test_bad_paper_input_exits_2(cli: Cli) -> None:
    assert cli("paper", "deposit", "--amount", "-5").code == 2
    assert cli("paper", "price", "--symbol", "BTCUSDT", "--price", "1").code == 2
    assert cli("paper", "faults", "--error-rate", "1.5").code == 2
    assert (
        cli("paper", "order", "--symbol", "BTC/USDT:USDT", "--side", "up", "--qty", "1").code == 2
    )
