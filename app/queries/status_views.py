"""What the status API and the dashboards show: read models only, never an aggregate, never
the venue, never a write — so it can run on a machine of its own against the same Postgres.

Each of the seven safeguards is ``ACTIVE`` or ``DEGRADED`` with the evidence: ``DEGRADED``
whenever the evidence says it could not act now (the worker silent, readings stale, a read
model behind or failing).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, select

from app.config import Settings
from projections.policy_view import read_policy_snapshot
from projections.runner import ProjectionPosition, ProjectionRunner
from projections.tables import (
    equity_history,
    incidents,
    model_consumers,
    model_promotions,
    risk_view,
    worker_status,
)
from projections.trade_store import TradeRow, TradeStateStore

ACTIVE, DEGRADED = "ACTIVE", "DEGRADED"
SAFEGUARDS = (
    "p0_01_policy_store",
    "p0_02_ess_close_positions",
    "p0_03_event_buffer",
    "p0_04_trade_state",
    "p0_05_rl_fallback",
    "p0_06_model_sync",
    "p0_07_dd_monitor",
)


@dataclass(frozen=True)
class Bounds:
    max_lag_events: int = 100  # a read model further behind the log than this is degraded
    worker_silence: float = 10.0  # seconds without a worker heartbeat
    reading_age: float = 5.0  # seconds without an equity reading

    @classmethod
    def of(cls, settings: Settings) -> Bounds:
        return cls(
            max_lag_events=settings.gate_max_lag_events,
            reading_age=settings.breaker_sight_bound,
        )


class ReadSide:
    def __init__(
        self, engine: Engine, runner: ProjectionRunner, clock: Any, bounds: Bounds
    ) -> None:
        self.engine = engine
        self.runner = runner
        self.clock = clock
        self.bounds = bounds

    # -- single views ---------------------------------------------------------------------------

    def policy_and_emergency(self) -> tuple[dict[str, Any] | None, dict[str, Any] | None, int]:
        with self.engine.connect() as conn, conn.begin():
            snapshot = read_policy_snapshot(conn)
        policy = asdict(snapshot.policy) if snapshot.policy else None
        emergency = asdict(snapshot.emergency) if snapshot.emergency else None
        return policy, emergency, snapshot.position

    def accounts(self) -> list[dict[str, Any]]:
        """The breaker of each account, with the age of its last reading."""
        now = self.clock()
        with self.engine.connect() as conn:
            accounts = [dict(r._mapping) for r in conn.execute(select(risk_view))]
        for account in accounts:
            last = account["last_reading_at"]
            account["reading_age_seconds"] = (
                round((now - last).total_seconds(), 3) if last else None
            )
        return accounts

    def risk(self, minutes: int = 60) -> dict[str, Any]:
        """The breaker's state (every account) and the equity history of the last minutes."""
        since = self.clock() - timedelta(minutes=minutes)
        h = equity_history.c
        with self.engine.connect() as conn:
            history = [
                dict(r._mapping)
                for r in conn.execute(
                    select(h.account_id, h.at, h.equity, h.peak, h.drawdown)
                    .where(h.at >= since)
                    .order_by(h.position)
                    .limit(20_000)
                )
            ]
        policy, _, _ = self.policy_and_emergency()
        return {
            "accounts": self.accounts(),
            "soft_threshold": policy["drawdown_soft_threshold"] if policy else None,
            "hard_threshold": policy["drawdown_hard_threshold"] if policy else None,
            "history": history,
        }

    def trades(self, *, open_only: bool, limit: int) -> list[TradeRow]:
        """The most recent ``limit`` trades (or open trades), oldest first."""
        return TradeStateStore(self.engine).recent(limit, open_only=open_only)

    def positions(self) -> list[dict[str, Any]]:
        """The positions as tradecore's open trades add up (not the venue's own answer)."""
        held: dict[tuple[str, str], Decimal] = {}
        for trade in TradeStateStore(self.engine).list_open_trades():
            key = (trade.symbol, trade.side)
            held[key] = held.get(key, Decimal(0)) + trade.quantity
        return [
            {"symbol": s, "side": side, "quantity": q}
            for (s, side), q in sorted(held.items())
            if q > 0
        ]

    def incidents(self, limit: int = 50) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [
                dict(r._mapping)
                for r in conn.execute(
                    select(incidents).order_by(incidents.c.activation_number.desc()).limit(limit)
                )
            ]

    def models(self) -> dict[str, Any]:
        with self.engine.connect() as conn:
            promoted = [dict(r._mapping) for r in conn.execute(select(model_promotions))]
            consumers = [
                dict(r._mapping)
                for r in conn.execute(
                    select(model_consumers).order_by(
                        model_consumers.c.model, model_consumers.c.consumer
                    )
                )
            ]
        return {"promoted": promoted, "consumers": consumers}

    def projections(self) -> list[ProjectionPosition]:
        return self.runner.positions()

    def worker(self) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(worker_status)).first()
        if row is None:
            return None
        data = dict(row._mapping)
        data["heartbeat_age_seconds"] = round((self.clock() - row.heartbeat_at).total_seconds(), 3)
        return data

    # -- the seven safeguards ---------------------------------------------------------------------

    def safeguards(self) -> dict[str, Any]:
        policy, emergency, _ = self.policy_and_emergency()
        lags = {p.name: p for p in self.projections()}
        worker = self.worker()
        accounts = self.accounts()
        models = self.models()
        b = self.bounds
        worker_age = worker["heartbeat_age_seconds"] if worker else None
        worker_alive = worker_age is not None and worker_age <= b.worker_silence

        def healthy(name: str) -> tuple[bool, dict[str, Any]]:
            p = lags.get(name)
            if p is None:
                return False, {"read_model": name, "missing": True}
            ok = p.lag <= b.max_lag_events and not p.last_error
            evidence: dict[str, Any] = {
                "read_model": name,
                "lag_events": p.lag,
                "last_error": p.last_error,
            }
            if p.failing_event_id is not None:
                evidence.update(
                    failing_event_id=p.failing_event_id,
                    failing_topic=p.failing_topic,
                    failing_since=p.failing_since,
                    reason=f"{name} cannot apply event {p.failing_event_id} "
                    f"({p.failing_topic}): {p.last_error}",
                )
            return ok, evidence

        checks: dict[str, tuple[bool, dict[str, Any]]] = {}
        ok, ev = healthy("policy_view")
        checks["p0_01_policy_store"] = (
            ok and policy is not None,
            {
                **ev,
                "policy_version": policy["version"] if policy else None,
                "allow_new_trades": policy["allow_new_trades"] if policy else None,
                "emergency_mode": policy["emergency_mode"] if policy else None,
            },
        )
        active = bool(emergency and emergency["active"])
        flat = emergency["flat"] if emergency else None
        checks["p0_02_ess_close_positions"] = (
            worker_alive and (not active or flat is True),
            {
                "worker_heartbeat_age_seconds": worker_age,
                "emergency_active": active,
                "flat": flat,
                "activation_number": emergency["activation_number"] if emergency else 0,
            },
        )
        behind = [p for p in lags.values() if p.lag > b.max_lag_events or p.last_error]
        checks["p0_03_event_buffer"] = (
            worker_alive and not behind,
            {
                "mechanism": "replay from the event log",
                "worker_heartbeat_age_seconds": worker_age,  # no worker: nothing replays
                "head": max((p.head for p in lags.values()), default=0),
                "max_lag_events": max((p.lag for p in lags.values()), default=0),
                "read_models_behind_or_failing": [p.name for p in behind],
                "read_models_failing": {
                    p.name: f"event {p.failing_event_id} ({p.failing_topic}): {p.last_error}"
                    for p in behind
                    if p.failing_event_id is not None
                },
                "worker_outages": worker["outages"] if worker else None,
            },
        )
        ok, ev = healthy("trades")
        open_trades = len(TradeStateStore(self.engine).list_open_trades())
        checks["p0_04_trade_state"] = (ok, {**ev, "open_trades": open_trades})
        ok, ev = healthy("sizing_learner")
        checks["p0_05_rl_fallback"] = (ok, ev)
        ok, ev = healthy("model_status")
        promotions_ok, _ = healthy("dashboard")  # where the promoted versions are read from
        ok = ok and promotions_ok
        promoted = {m["model"]: m["version"] for m in models["promoted"]}
        behind_models = [
            f"{c['consumer']} on {c['model']} v{c['version']} (promoted v{promoted[c['model']]})"
            for c in models["consumers"]
            if c["model"] in promoted and (c["version"] != promoted[c["model"]] or c["last_error"])
        ]
        checks["p0_06_model_sync"] = (
            ok and not behind_models,
            {
                **ev,
                "promoted": promoted,
                "consumers": {
                    f"{c['consumer']}/{c['model']}": c["version"] for c in models["consumers"]
                },
                "out_of_sync": behind_models,
            },
        )
        ok, ev = healthy("dashboard")
        account = accounts[0] if accounts else None
        age = account["reading_age_seconds"] if account else None
        checks["p0_07_dd_monitor"] = (
            ok and age is not None and age <= b.reading_age,
            {
                **ev,
                "last_reading_at": account["last_reading_at"] if account else None,
                "reading_age_seconds": age,
                "max_reading_age_seconds": b.reading_age,
                "state": account["state"] if account else None,
                "drawdown": account["drawdown"] if account else None,
                "soft_threshold": policy["drawdown_soft_threshold"] if policy else None,
                "hard_threshold": policy["drawdown_hard_threshold"] if policy else None,
            },
        )
        safeguards = {
            name: {"status": ACTIVE if checks[name][0] else DEGRADED, "evidence": checks[name][1]}
            for name in SAFEGUARDS
        }
        all_active = all(s["status"] == ACTIVE for s in safeguards.values())
        return {
            "status": ACTIVE if all_active else DEGRADED,
            "checked_at": self.clock(),
            "safeguards": safeguards,
        }
