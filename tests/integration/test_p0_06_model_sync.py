"""P0-06: one promotion, every consumer follows; a model that fails to load never replaces a
working one; restarts and rollbacks are followed too. Real LightGBM models throughout."""

from __future__ import annotations

import logging
import threading
import time
from decimal import Decimal

import pytest
from sqlalchemy import select

from adapters.paper.venue import PaperVenue
from adapters.signal_model import SignalModel
from app.bootstrap import Core
from app.commands.executor import TradeIntent
from app.entrypoints.worker import Worker
from app.processes.model_consumers import CONSUMERS, ModelWatch, model_confidence
from domain.model_consumer import ModelConsumer, consumer_id
from domain.model_registry import (
    ArtifactRefused,
    ModelRegistry,
    NothingToRollBack,
    UnknownModelVersion,
    model_id,
)
from projections.tables import model_consumers
from tests.integration.paper_drill import breaker_reads
from tests.integration.signal_models import NAME, register, trained


def versions_in_use(core: Core) -> dict[str, int | None]:
    core.runner.catch_up()
    with core.engine.connect() as conn:
        rows = conn.execute(select(model_consumers)).all()
    return {r.consumer: r.version for r in rows}


def test_after_each_promotion_every_consumer_in_the_worker_reports_the_new_version(
    core: Core,
) -> None:
    assert (register(core, 7), register(core, 8)) == (1, 2)
    stop = threading.Event()
    worker = threading.Thread(target=Worker(core).run, args=(stop,))
    worker.start()
    waiter = core.waiter()
    try:
        for version in (1, 2, 1):
            core.models().promote(NAME, version, actor="test", reason=f"to v{version}")
            deadline = time.monotonic() + 10
            while versions_in_use(core) != dict.fromkeys(CONSUMERS, version):
                assert time.monotonic() < deadline, versions_in_use(core)
                waiter(0.5)  # woken by the log's NOTIFY, not a fixed sleep
    finally:
        stop.set()
        worker.join(timeout=10)
    assert not worker.is_alive(), "the worker did not stop within 10 s"
    promotions = [
        e
        for e in core.store.events.get(model_id(NAME))
        if isinstance(e, ModelRegistry.ModelPromoted)
    ]
    assert [(p.old_version, p.new_version) for p in promotions] == [(None, 1), (1, 2), (2, 1)]
    assert ModelRegistry.ModelPromoted.operator_name == "model.promoted"


def test_a_corrupt_artifact_is_never_promoted(core: Core) -> None:
    register(core, 7)
    registry = core.models().registry(NAME)
    assert registry is not None
    core.artifacts().path(registry.sha256_of(1)).write_bytes(b"tampered")

    with pytest.raises(ArtifactRefused, match="hash check"):
        core.models().promote(NAME, 1, actor="test", reason="x")
    with pytest.raises(UnknownModelVersion):
        core.models().promote(NAME, 9, actor="test", reason="x")
    registry = core.models().registry(NAME)
    assert registry is not None and registry.promoted is None


def test_a_version_that_fails_to_load_leaves_the_old_one_in_use_and_says_so(core: Core) -> None:
    register(core, 7), register(core, 8)
    consumers = core.model_consumers()
    core.models().promote(NAME, 1, actor="test", reason="first")
    assert all(c.sync() for c in consumers)
    core.models().promote(NAME, 2, actor="test", reason="second")
    registry = core.models().registry(NAME)
    assert registry is not None
    core.artifacts().path(registry.sha256_of(2)).write_bytes(b"corrupted after promotion")

    assert not any(c.sync() for c in consumers)

    assert all(c.version == 1 and c.current is not None for c in consumers)
    failures = [
        e
        for c in CONSUMERS
        for e in core.store.events.get(consumer_id(c, NAME))
        if isinstance(e, ModelConsumer.ModelLoadFailed)
    ]
    assert [(f.version, f.kept_version) for f in failures] == [(2, 1)] * 3
    core.runner.catch_up()
    with core.engine.connect() as conn:
        errors = conn.execute(select(model_consumers.c.last_error)).scalars().all()
    assert len(errors) == 3 and all(e and e.startswith("v2: ") for e in errors)


def test_a_restart_loads_the_promoted_version_and_falls_back_if_it_cannot(core: Core) -> None:
    register(core, 7), register(core, 8)
    core.models().promote(NAME, 1, actor="test", reason="first")
    assert all(c.sync() for c in core.model_consumers())
    core.models().promote(NAME, 2, actor="test", reason="second")

    restarted = core.model_consumers()  # a new process: nothing in memory
    assert all(c.sync() for c in restarted) and {c.version for c in restarted} == {2}

    registry = core.models().registry(NAME)
    assert registry is not None
    core.artifacts().path(registry.sha256_of(2)).write_bytes(b"gone bad")
    again = core.model_consumers()
    for consumer in again:
        consumer.sync()
    # v2 cannot load: each runs the version promoted before it, never no model.
    assert {c.version for c in again} == {1} and all(c.current is not None for c in again)


def test_a_rollback_is_followed_by_every_consumer(core: Core) -> None:
    register(core, 7), register(core, 8)
    consumers = core.model_consumers()
    with pytest.raises(NothingToRollBack):
        core.models().roll_back(NAME, actor="test", reason="nothing yet")
    for version in (1, 2):
        core.models().promote(NAME, version, actor="test", reason="up")
        for c in consumers:
            c.sync()

    assert core.models().roll_back(NAME, actor="test", reason="v2 misbehaves") == 1
    for c in consumers:
        c.sync()

    assert {c.version for c in consumers} == {1}
    assert versions_in_use(core) == dict.fromkeys(CONSUMERS, 1)
    with pytest.raises(NothingToRollBack):
        core.models().roll_back(NAME, actor="test", reason="no earlier one")


def test_the_consumers_score_with_the_promoted_model(
    core: Core, caplog: pytest.LogCaptureFixture
) -> None:
    register(core, 7)
    core.models().promote(NAME, 1, actor="test", reason="first")
    engine, monitor, insights = core.model_consumers()
    for consumer in (engine, monitor, insights):
        consumer.sync()
    venue = core.venue()
    assert isinstance(venue, PaperVenue)
    venue.admin().deposit(Decimal(100_000))
    breaker_reads(core)  # the breaker has seen the account before any entry
    for price in (60000, 60100, 59900, 60300, 60250, 60400):
        venue.admin().set_price("BTC/USDT:USDT", Decimal(price))

    p_up = model_confidence(engine, venue, "BTC/USDT:USDT")

    expected = SignalModel.load(trained(7).artifact).confidence(
        venue.fetch_candles("BTC/USDT:USDT", 100)
    )
    assert p_up is not None and 0 <= p_up <= 1 and p_up == expected
    core.executor().open(
        TradeIntent(
            symbol="BTC/USDT:USDT", side="long", notional=Decimal(500), actor="t", reason="t"
        )
    )
    core.runner.catch_up()
    watch = ModelWatch(monitor, insights, venue, core.trade_store().list_open_trades, [])
    with caplog.at_level(logging.INFO, logger="app.processes.model_consumers"):
        watch.run_once()
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("position_monitor: trade") and "signal v1" in m for m in messages)
    assert any(m.startswith("insights_logger: BTC/USDT:USDT") for m in messages)
