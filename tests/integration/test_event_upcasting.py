"""Events are a permanent schema: events recorded by earlier versions keep loading."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from uuid import uuid4

from eventsourcing.persistence import StoredEvent

from app.bootstrap import Core, bootstrap
from app.config import Settings
from domain.account import Account
from domain.drawdown import Reading, Thresholds
from domain.emergency import LEGACY_INSTALLATION, Emergency
from domain.ids import EMERGENCY_ID, POLICY_ID
from domain.policy import Policy
from domain.sizing import SizingState, decide
from domain.sizing_record import SizingRecord
from tests.integration.paper_drill import breaker_reads

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def as_version_1(core: Core, event: object, drop: str) -> StoredEvent:
    """The event as version 1 stored it: without ``drop`` and without a class_version."""
    stored = core.store.mapper.to_stored_event(event)  # type: ignore[arg-type]
    state = json.loads(stored.state)
    state.pop(drop)
    state.pop("class_version", None)
    return StoredEvent(
        originator_id=stored.originator_id,
        originator_version=stored.originator_version,
        topic=stored.topic,
        state=json.dumps(state).encode(),
    )


def test_version_1_creation_events_load_with_their_old_meaning(settings: Settings) -> None:
    with bootstrap(settings) as core:
        [policy_created] = Policy.create(actor="v1", reason="old", timestamp=T0).collect_events()
        [latch_created] = Emergency(
            installation_id=LEGACY_INSTALLATION, timestamp=T0
        ).collect_events()
        core.store.recorder.insert_events(
            [
                as_version_1(core, policy_created, drop="allow_new_trades"),
                as_version_1(core, latch_created, drop="installation_id"),
            ]
        )
        policy = core.store.repository.get(POLICY_ID)
        latch = core.store.repository.get(EMERGENCY_ID)
        assert isinstance(policy, Policy) and isinstance(latch, Emergency)
        assert policy.allow_new_trades is True  # what version 1 policies started with
        assert latch.installation_id == LEGACY_INSTALLATION
        # And the projection, which replays the same events, agrees.
        core.runner.catch_up()
        breaker_reads(core)  # the gate also needs a breaker that sees the account
        assert core.gate.can_open_new_trades().allowed


def test_version_1_equity_readings_load_and_nothing_is_ordered_against_them(
    settings: Settings,
) -> None:
    """Readings recorded before feeds and venue clocks: no feed, no sequence, and a date that
    may have been the local clock's, so a new feed's reading dated earlier is still judged."""
    account = Account.open(account="main", timestamp=T0)
    limits = Thresholds(soft=Decimal("-0.05"), hard=Decimal("-0.10"))
    for _ in range(2):  # the first reading and its confirmation
        account.record_reading(
            Reading(Decimal(100), Decimal(100), Decimal(0), "old", T0 + timedelta(minutes=5)),
            thresholds=limits,
            positions_open=False,
            emergency_active=False,
            entries_allowed=True,
            breaker_stopped_entries=False,
            timestamp=T0 + timedelta(minutes=5),
            correlation_id=uuid4(),
        )
    with bootstrap(settings) as core:
        stored = []
        for event in account.collect_events():
            record = core.store.mapper.to_stored_event(event)
            state = json.loads(record.state)
            if isinstance(event, Account.EquityRecorded):
                for name in ("venue_clock", "feed", "sequence", "class_version"):
                    state.pop(name, None)
            stored.append(
                StoredEvent(
                    originator_id=record.originator_id,
                    originator_version=record.originator_version,
                    topic=record.topic,
                    state=json.dumps(state).encode(),
                )
            )
        core.store.recorder.insert_events(stored)
        loaded = core.store.repository.get(account.id)
        assert isinstance(loaded, Account) and loaded.equity == Decimal(100)
        assert loaded.feed is None and loaded.last_venue_at is None
        evaluation = loaded.record_reading(
            Reading(Decimal(99), Decimal(99), Decimal(0), "new", T0, feed="f", sequence=1),
            thresholds=limits,
            positions_open=False,
            emergency_active=False,
            entries_allowed=True,
            breaker_stopped_entries=False,
            timestamp=T0,
            correlation_id=uuid4(),
        )
        assert evaluation.status == "accepted"


def test_version_1_sizing_decisions_load_naming_no_model(settings: Settings) -> None:
    """Decisions recorded before they named the model behind their confidence."""
    state = SizingState.of(confidence=0.7, recent_pnl=Decimal(0), regime="LOW")
    sized = decide(
        {}, state, base_notional=Decimal(100), max_leverage=Decimal(2), max_notional=Decimal(500)
    )
    [decided] = SizingRecord.record(
        decision_id=uuid4(),
        symbol="BTC/USDT:USDT",
        decision=sized,
        base_notional=Decimal(100),
        regime_known=True,
        regime_note=None,
        volatility=0.01,
        timestamp=T0,
        confidence=0.7,
        model="signal",
        model_version=3,
    ).collect_events()
    with bootstrap(settings) as core:
        stored = as_version_1(core, decided, drop="model")
        old = json.loads(stored.state)
        for field in ("confidence", "model_version"):
            old.pop(field)
        core.store.recorder.insert_events(
            [StoredEvent(stored.originator_id, 1, stored.topic, json.dumps(old).encode())]
        )
        record = core.store.repository.get(decided.originator_id)
        assert isinstance(record, SizingRecord)
        assert (record.confidence, record.model, record.model_version) == (None, None, None)
        assert record.notional == sized.notional


def test_exits_recorded_before_their_fee_load_with_no_fee(core: Core) -> None:
    from domain.trade import Trade  # noqa: PLC0415 - only this test needs it

    trade = Trade.open(
        trade_id=uuid4(),
        symbol="BTC/USDT:USDT",
        side="long",
        quantity="1",
        leverage="1",
        actor="reconciliation",
        reason="old",
        timestamp=T0,
        source="external",
    )
    trade.adopt_external(quantity="1", entry_price="100", detail="old", timestamp=T0)
    trade.record_exit(quantity="1", price="110", price_source="mark", detail="old", timestamp=T0)
    opened, adopted, exited = trade.collect_events()
    stored = [core.store.mapper.to_stored_event(e) for e in (opened, adopted)]  # type: ignore[arg-type]
    core.store.recorder.insert_events([*stored, as_version_1(core, exited, drop="fee")])

    loaded = core.store.repository.get(trade.id)

    assert isinstance(loaded, Trade) and loaded.fees == 0 and loaded.quantity == 0
    assert not loaded.exact  # priced at the mark
