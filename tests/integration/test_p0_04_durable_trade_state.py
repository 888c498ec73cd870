"""P0-04: trades are aggregates; the open-trade store is a read model; concurrent writers
never lose an update."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from decimal import Decimal
from uuid import UUID, uuid4

import pytest

from app.bootstrap import Core, bootstrap
from app.commands.trade_records import TradeCommands
from app.config import Settings
from domain.trade import Trade
from projections.trade_store import TradeStateStore

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def opened_with_order(commands: TradeCommands, quantity: int) -> tuple[UUID, str]:
    trade = Trade.open(
        trade_id=uuid4(),
        symbol="BTC/USDT:USDT",
        side="long",
        quantity=str(quantity),
        leverage="2",
        actor="executor",
        reason="test",
        timestamp=T0,
    )
    order = trade.submit_order(
        order_side="buy", quantity=str(quantity), reduce_only=False, timestamp=T0
    )
    commands.open(trade)
    return trade.id, order


def fill_one(commands: TradeCommands, trade_id: UUID, order: str, price: int) -> None:
    commands.update(
        trade_id,
        lambda t: t.record_fill(
            client_order_id=order, quantity="1", price=str(price), timestamp=datetime.now(UTC)
        ),
    )


def test_the_trade_store_answers_from_the_log_and_survives_a_restart(
    core: Core, settings: Settings
) -> None:
    commands = TradeCommands(core.store)
    trade_id, order = opened_with_order(commands, 2)
    fill_one(commands, trade_id, order, 100)
    fill_one(commands, trade_id, order, 110)
    commands.update(
        trade_id, lambda t: t.set_stop(kind="stop_loss", price="90", actor="m", timestamp=T0)
    )
    core.runner.catch_up()
    store = TradeStateStore(core.engine)
    before = store.get(trade_id)
    assert before is not None
    assert (before.status, before.quantity, before.entry_price) == ("open", 2, Decimal(105))
    assert [t.trade_id for t in store.list_open_trades()] == [trade_id]
    core.close()
    with bootstrap(settings) as restarted:
        restarted.runner.catch_up()
        assert TradeStateStore(restarted.engine).get(trade_id) == before
        aggregate = TradeCommands(restarted.store).load(trade_id)
        assert aggregate.quantity == 2 and aggregate.stop_loss == Decimal(90)


@pytest.mark.slow
def test_eight_threads_updating_one_trade_lose_no_update(core: Core) -> None:
    commands = TradeCommands(core.store)
    threads, per_thread = 8, 250
    trade_id, order = opened_with_order(commands, threads * per_thread)
    with ThreadPoolExecutor(threads) as pool:
        list(
            pool.map(
                lambda i: [
                    fill_one(commands, trade_id, order, 100 + i % 7) for _ in range(per_thread)
                ],
                range(threads),
            )
        )
    trade = commands.load(trade_id)
    # The serial result: every fill counted once.
    assert trade.quantity == threads * per_thread
    assert trade.orders[order]["filled"] == threads * per_thread
    fills = [e for e in core.store.events.get(trade_id) if isinstance(e, Trade.Filled)]
    assert len(fills) == threads * per_thread
    core.runner.catch_up()
    row = TradeStateStore(core.engine).get(trade_id)
    assert row is not None and row.quantity == threads * per_thread


WRITER = textwrap.dedent(
    """
    import sys
    from datetime import UTC, datetime
    from uuid import UUID
    from app.bootstrap import bootstrap
    from app.config import Settings
    from app.commands.trade_records import TradeCommands

    url, trade_id, order, count = sys.argv[1], UUID(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    with bootstrap(Settings(database_url=url)) as core:
        commands = TradeCommands(core.store)
        for _ in range(count):
            commands.update(trade_id, lambda t: t.record_fill(
                client_order_id=order, quantity="1", price="100", timestamp=datetime.now(UTC)))
    """
)


@pytest.mark.slow
def test_two_processes_updating_one_trade_lose_no_update(core: Core, settings: Settings) -> None:
    commands = TradeCommands(core.store)
    count = 100
    trade_id, order = opened_with_order(commands, 2 * count)
    assert settings.database_url
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, settings.database_url, str(trade_id), order, str(count)]
        )
        for _ in range(2)
    ]
    assert [p.wait(timeout=180) for p in procs] == [0, 0]
    assert commands.load(trade_id).quantity == 2 * count
