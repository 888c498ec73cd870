"""What an operator sees of the caps and the leverage: four entries under a position cap end
at most at the cap, the capped and the refused ones saying why; in regime HIGH an untrained
agent's entry sits at the venue at leverage 1."""

from __future__ import annotations

from decimal import Decimal

from tests.e2e.conftest import Cli, running_worker

BTC = "BTC/USDT:USDT"
OPEN = ("trade", "open", "--symbol", BTC, "--side", "long", "--notional", "1000", "--reason", "t")


def test_four_entries_under_a_position_cap_end_at_most_the_cap_and_say_why(cli: Cli) -> None:
    assert cli("paper", "deposit", "--amount", "10000").code == 0
    # The duplicate check off: four identical entries within its 2 s window would
    # otherwise be refused as duplicates (DUPLICATE_ORDER) before the cap is reached.
    capped = cli(
        "policy", "set", "--allow-new-trades", "true", "--max-position-notional", "1000",
        "--duplicate-window", "0", "--reason", "x", "--yes",
    )  # fmt: skip
    assert capped.code == 0, capped.stderr
    with running_worker(cli):
        entries = [cli(*OPEN) for _ in range(4)]
        fifth = cli(*OPEN)
        positions = cli("positions", "--json").json()

    assert [e.code for e in entries] == [0, 0, 0, 0], [e.stderr for e in entries]
    assert "capped by max_position_notional" in entries[3].stdout
    assert fifth.code == 3 and "NOTIONAL_CAP" in fifth.stderr
    (btc,) = positions
    assert btc["symbol"] == BTC and Decimal(btc["notional"]) <= Decimal(1000)
    trades = cli("trades", "list", "--json").json()
    assert [t["symbol"] for t in trades] == [BTC] * 4  # the refused fifth opened none


def test_in_regime_high_an_untrained_agent_entry_is_at_leverage_one_at_the_venue(
    cli: Cli,
) -> None:
    assert cli("paper", "deposit", "--amount", "10000").code == 0
    assert cli("policy", "set", "--allow-new-trades", "true", "--reason", "x", "--yes").code == 0
    for price in ("63000", "59000", "64000", "58000"):  # +-5 % a minute: regime HIGH
        assert cli("paper", "price", "--symbol", BTC, "--price", price).code == 0
    with running_worker(cli):
        opened = cli(*OPEN)
        positions = cli("positions", "--json").json()
        sizing = cli("sizing", "show", "--json").json()

    assert opened.code == 0, opened.stderr
    (decision,) = sizing["last_decisions"]
    assert decision["state"]["regime"] == "HIGH" and decision["regime_known"] is True
    assert decision["fallback"] is True and Decimal(decision["leverage"]) == Decimal(1)
    (btc,) = positions
    assert Decimal(btc["leverage"]) == Decimal(1)
