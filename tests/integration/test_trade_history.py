"""The trade store answers the history of trades by symbol and by the time they opened
(open and closed alike), from the read model of the log."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

from app.bootstrap import Core
from app.commands.trade_records import TradeCommands
from domain.trade import Trade

BTC, ETH = "BTC/USDT:USDT", "ETH/USDT:USDT"
T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)
HOUR = timedelta(hours=1)


def opened(commands: TradeCommands, symbol: str, at: datetime) -> UUID:
    trade = Trade.open(
        trade_id=uuid4(),
        symbol=symbol,
        side="long",
        quantity="1",
        leverage="1",
        actor="executor",
        reason="history test",
        timestamp=at,
    )
    commands.open(trade)
    return trade.id


def test_trade_history_is_filtered_by_symbol_and_by_the_time_trades_opened(core: Core) -> None:
    commands = TradeCommands(core.store)
    btc_0 = opened(commands, BTC, T0)
    eth_1 = opened(commands, ETH, T0 + HOUR)
    btc_2 = opened(commands, BTC, T0 + 2 * HOUR)
    btc_3 = opened(commands, BTC, T0 + 3 * HOUR)
    # A closed trade stays in the history.
    commands.update(
        btc_2, lambda t: t.close(reason="manual", actor="alice", timestamp=T0 + 2.5 * HOUR)
    )
    core.runner.catch_up()
    store = core.trade_store()

    def ids(
        symbol: str | None = None, since: datetime | None = None, until: datetime | None = None
    ) -> list[UUID]:
        return [t.trade_id for t in store.history(symbol=symbol, since=since, until=until)]

    assert ids() == [btc_0, eth_1, btc_2, btc_3]  # oldest first
    assert ids(symbol=BTC) == [btc_0, btc_2, btc_3]
    assert ids(symbol=ETH) == [eth_1]
    # since is inclusive, until exclusive: [since, until)
    assert ids(since=T0 + HOUR, until=T0 + 3 * HOUR) == [eth_1, btc_2]
    assert ids(since=T0 + 3 * HOUR) == [btc_3]
    assert ids(until=T0 + HOUR) == [btc_0]
    assert ids(symbol=BTC, since=T0 + HOUR, until=T0 + 3 * HOUR) == [btc_2]
    assert ids(symbol="SOL/USDT:USDT") == []
    [closed] = store.history(symbol=BTC, since=T0 + 2 * HOUR, until=T0 + 3 * HOUR)
    assert closed.status == "closed" and closed.opened_at == T0 + 2 * HOUR
