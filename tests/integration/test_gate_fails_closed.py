"""The gate fails closed: store down, view far behind, no policy -> no new trades."""

from __future__ import annotations

import threading

from adapters.embedded_pg import EmbeddedPostgres
from app.bootstrap import Core, bootstrap
from app.config import Settings
from app.queries.gate import GateCode, GateDecision
from tests.conftest import TEST_BREAKER_SIGHT
from tests.integration.paper_drill import breaker_reads
from tests.waiting import wait_for


def test_gate_is_closed_while_the_server_is_stopped_and_recovers_when_it_returns(
    own_server: EmbeddedPostgres,
) -> None:
    settings = Settings(database_url=own_server.address.url, breaker_blind_after=TEST_BREAKER_SIGHT)
    with bootstrap(settings) as core:
        core.commands.update_policy(actor="op", reason="open", allow_new_trades=True)
        breaker_reads(core)  # the breaker sees the account: only the store is in question
        core.runner.catch_up()
        assert core.gate.can_open_new_trades().allowed

        own_server.stop(mode="immediate")
        decision = core.gate.can_open_new_trades()
        assert not decision.allowed
        assert decision.code is GateCode.STORE_UNAVAILABLE
        assert decision.emergency_mode  # unknown counts as emergency

        own_server.start()
        wait_for(
            lambda: core.gate.can_open_new_trades().allowed,
            20,
            interval=0.1,
            what="the gate to open again once the server is back",
        )
        assert core.gate.can_open_new_trades().code is GateCode.OK


def test_gate_closes_when_the_view_is_behind_past_the_bound(core: Core) -> None:
    breaker_reads(core)
    core.runner.catch_up()
    bound = core.gate.max_lag_events
    for i in range(bound + 1):
        core.commands.update_policy(actor="a", reason="churn", max_position_notional=str(5000 + i))
    decision = core.gate.can_open_new_trades()
    assert not decision.allowed
    assert decision.code is GateCode.VIEW_BEHIND
    core.runner.catch_up()
    assert core.gate.can_open_new_trades().allowed


def test_a_fresh_install_refuses_new_trades_until_an_operator_allows_them(
    settings: Settings,
) -> None:
    with bootstrap(settings) as core:
        core.commands.ensure_initialised()
        decision = core.gate.can_open_new_trades()
        assert not decision.allowed
        assert decision.code is GateCode.NEW_TRADES_DISABLED
        core.commands.update_policy(actor="op", reason="open", allow_new_trades=True)
        breaker_reads(core)
        assert core.gate.can_open_new_trades().allowed


def test_gate_refuses_before_any_policy_exists(settings: Settings) -> None:
    with bootstrap(settings) as core:  # no ensure_initialised
        decision = core.gate.can_open_new_trades()
        assert not decision.allowed
        assert decision.code is GateCode.NOT_INITIALISED


def test_a_running_worker_keeps_the_view_at_the_head(core: Core) -> None:
    stop = threading.Event()
    worker = threading.Thread(
        target=core.runner.run, args=(stop, core.waiter()), kwargs={"poll_interval": 0.5}
    )
    worker.start()
    try:
        core.commands.activate_emergency(reason="drill", actor="alice")
        decisions: list[GateDecision] = []

        def answered_from_the_view() -> bool:
            decisions.append(core.gate.can_open_new_trades())
            return decisions[-1].source == "view"

        wait_for(answered_from_the_view, 10, what="the gate answering from the view")
        assert decisions[-1].code is GateCode.EMERGENCY
    finally:
        stop.set()
        worker.join(timeout=10)
    assert not worker.is_alive(), "the runner did not stop within 10 s"
