"""The legacy import writes a whole file in one transaction, however large, and once."""

from __future__ import annotations

import json
from uuid import uuid4

import pytest

from app.bootstrap import Core
from app.commands.legacy_import import LegacyImporter, legacy_trade_id
from domain.errors import InvalidCommand
from domain.trade import Trade
from projections.trade_store import TradeStateStore


def legacy_file(count: int) -> str:
    return json.dumps(
        {
            f"old-{i}": {
                "symbol": "ETHUSDT",
                "side": "long" if i % 2 else "short",
                "entry_price": str(3000 + i),
                "qty": "0.5",
                "stop_loss": "2000",
                "opened_at": 1_759_000_000 + i,
            }
            for i in range(count)
        }
    )


def test_a_file_of_two_thousand_trades_imports_whole_in_one_go_and_once(core: Core) -> None:
    importer = LegacyImporter(core.store, core.clock)
    text = legacy_file(2000)

    imported = importer.execute(importer.plan(text, source="big.json"), actor="test")
    again = importer.plan(text, source="big.json")

    assert imported == 2000
    assert again.new == [] and len(again.already_imported) == 2000
    core.runner.catch_up()
    store = TradeStateStore(core.engine)
    assert len(store.list_open_trades()) == 2000
    row = store.get(legacy_trade_id("old-7"))
    assert row is not None and row.entry_price == 3007 and row.stop_loss == 2000


def test_a_legacy_id_that_is_a_uuid_is_kept_as_the_trade_id(core: Core) -> None:
    kept = uuid4()
    importer = LegacyImporter(core.store, core.clock)
    text = json.dumps(
        {
            str(kept): {
                "symbol": "BTC/USDT:USDT",
                "side": "short",
                "price": 1,
                "size": 2,
                "timestamp": 1,
            }
        }
    )

    importer.execute(importer.plan(text, source="f.json"), actor="test")

    trade = core.store.repository.get(kept)
    assert isinstance(trade, Trade) and trade.source == "import" and trade.side == "short"


def test_an_id_taken_by_a_trade_that_was_not_imported_is_refused(core: Core) -> None:
    taken = uuid4()
    core.store.save(
        Trade.open(
            trade_id=taken,
            symbol="BTC/USDT:USDT",
            side="long",
            quantity="1",
            leverage="1",
            actor="executor",
            reason="signal",
            timestamp=core.clock(),
        )
    )
    importer = LegacyImporter(core.store, core.clock)
    text = json.dumps(
        {str(taken): {"symbol": "BTCUSDT", "side": "long", "price": 1, "qty": 1, "opened": 5}}
    )

    with pytest.raises(InvalidCommand, match="not imported"):
        importer.plan(text, source="f.json")


def test_an_import_takes_over_only_the_part_of_an_adoption_it_holds(core: Core) -> None:
    from decimal import Decimal  # noqa: PLC0415

    from adapters.paper.venue import PaperVenue  # noqa: PLC0415
    from domain.venue import OrderRequest  # noqa: PLC0415

    venue = core.venue()
    assert isinstance(venue, PaperVenue)
    venue.admin().deposit(Decimal(100_000))
    venue.admin().create_order(
        OrderRequest(
            symbol="BTC/USDT:USDT", side="buy", quantity=Decimal("0.03"), client_order_id="web-1"
        )
    )
    (adopted_id,) = core.reconciler().run().adopted
    importer = LegacyImporter(core.store, core.clock, venue=venue, open_trades=core.open_trade_ids)
    text = json.dumps(
        {"old-1": {"symbol": "BTCUSDT", "side": "long", "price": 50000, "qty": "0.01", "opened": 5}}
    )

    plan = importer.plan(text, source="backup.json")
    importer.execute(plan, actor="test")

    (link,) = plan.links
    assert (link.adopted, link.quantity) == (adopted_id, Decimal("0.01"))
    adoption = core.store.repository.get(adopted_id)
    assert isinstance(adoption, Trade) and adoption.is_open and adoption.quantity == Decimal("0.02")
    handed = [e for e in core.store.events.get(adopted_id) if isinstance(e, Trade.ClaimHandedOver)]
    assert [(e.quantity, e.to_trade_id) for e in handed] == [(Decimal("0.01"), link.trade_id)]
    again = core.reconciler().run()  # the claims now add up to what the venue holds
    assert again.adopted == [] and again.mismatches == []
