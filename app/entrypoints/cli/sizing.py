"""``tradecore sizing show|decide``: the sizing agent, the regimes, the decisions (P0-05)."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

import typer
from eventsourcing.utils import get_topic

from app.bootstrap import Core
from app.entrypoints.cli.context import state
from app.entrypoints.cli.options import Json
from app.entrypoints.cli.output import emit_json, out
from domain.market_regime import MarketRegime
from domain.sizing import ACTIONS, EPSILON, SizingDecision
from domain.sizing_record import SizingRecord
from domain.validation import decimal_value, symbol_value

app = typer.Typer(help="Position sizing (P0-05): Q-table agent, regimes, fallback, caps.")


@app.command("show")
def show(
    ctx: typer.Context,
    last: Annotated[
        int, typer.Option("--last", min=0, max=100_000, help="how many recent decisions")
    ] = 10,
    as_json: Json = False,
) -> None:
    """The Q-table summary, the current regime per symbol, and the last decisions."""
    core = state(ctx).core()
    agent = core.sizing().agent()
    table = agent.table if agent else {}
    trained = [k for k, row in table.items() if any(abs(q) > EPSILON for q in row)]
    data: dict[str, Any] = {
        "agent": {
            "actions": [{"size_multiplier": m, "leverage": lev} for m, lev in ACTIONS],
            "states_visited": len(table),
            "states_trained": len(trained),
            "trades_learned": len(agent.learned) if agent else 0,
            "table": table,
        },
        "regimes": _regimes(core),
        "last_decisions": _decisions(core, last),
    }
    if as_json:
        emit_json(data)
        return
    a = data["agent"]
    out.print(
        f"Q-table: {a['states_visited']} state(s) visited, {a['states_trained']} trained, "
        f"{a['trades_learned']} trade(s) learned from; untrained states take the neutral "
        "action (HIGH: the 0.3x / 1.0 fallback)"
    )
    for r in data["regimes"]:
        out.print(f"regime {r['symbol']:16} {r['regime']:6} volatility {r['volatility']:.5f}")
    for d in data["last_decisions"]:
        out.print(
            f"{d['at']} {d['symbol']} {d['state']['key']}: {d['size_multiplier']}x "
            f"lev {d['leverage']} notional {d['notional']}"
            f"{' FALLBACK' if d['fallback'] else ''}"
            f"{' caps ' + ','.join(d['caps_applied']) if d['caps_applied'] else ''}"
            f"{' by ' + str(d['model']) + ' v' + str(d['model_version']) if d['model'] else ''}"
        )


@app.command("decide")
def decide_now(
    ctx: typer.Context,
    symbol: Annotated[str, typer.Option("--symbol", help="e.g. BTC/USDT:USDT")],
    confidence: Annotated[str, typer.Option("--confidence", help="the signal's, 0 to 1")],
    notional: Annotated[str, typer.Option("--notional", help="the intent's notional")] = "1000",
    as_json: Json = False,
) -> None:
    """The decision the agent would take now for this intent (no order, nothing recorded
    but a regime change)."""
    level = float(decimal_value(confidence, "--confidence", minimum=Decimal(0), maximum=Decimal(1)))
    base = decimal_value(notional, "--notional", positive=True)
    symbol = symbol_value(symbol, "--symbol")
    sized = state(ctx).core().sizing().size(symbol=symbol, confidence=level, base_notional=base)
    data = _decision_dict(sized.decision) | {
        "symbol": symbol,
        "regime": sized.regime.regime,
        "regime_known": sized.regime.known,
        "regime_note": sized.regime.note,
        "volatility": sized.regime.volatility,
        "recent_pnl": sized.recent_pnl,
        "base_notional": base,
        "recorded": False,
    }
    if as_json:
        emit_json(data)
        return
    out.print(
        f"{symbol}: regime {data['regime']}{'' if sized.regime.known else ' (unknown)'}, "
        f"state {data['state']['key']} -> size {data['size_multiplier']}x, leverage "
        f"{data['leverage']}, notional {data['notional']}"
        f"{'  FALLBACK' if data['fallback'] else ''}"
        f"{'  caps: ' + ', '.join(data['caps_applied']) if data['caps_applied'] else ''}"
    )


def _decision_dict(d: SizingDecision) -> dict[str, Any]:
    return {
        "fallback": d.fallback,
        "size_multiplier": d.size_multiplier,
        "leverage": d.leverage,
        "notional": d.notional,
        "trained": d.trained,
        "caps_applied": list(d.caps_applied),
        "action_index": d.action_index,
        "state": {
            "confidence_bucket": d.state.confidence_bucket,
            "pnl_bucket": d.state.pnl_bucket,
            "regime": d.state.regime,
            "key": d.state.key,
        },
        "q_values": list(d.q_values),
    }


def _regimes(core: Core) -> list[dict[str, Any]]:
    topic = get_topic(MarketRegime.RegimeChanged)
    with core.engine.connect() as conn:
        rows = core.reader.latest(conn, topics=[topic], limit=10_000)
    current: dict[str, dict[str, Any]] = {}
    for _, stored in rows:  # newest first: the first seen per symbol is the current one
        e: Any = core.store.mapper.to_domain_event(stored)
        current.setdefault(
            e.symbol,
            {"symbol": e.symbol, "regime": e.new, "volatility": e.volatility, "since": e.timestamp},
        )
    return sorted(current.values(), key=lambda r: str(r["symbol"]))


def _decisions(core: Core, last: int) -> list[dict[str, Any]]:
    if last == 0:
        return []
    topic = get_topic(SizingRecord.SizingDecided)
    with core.engine.connect() as conn:
        rows = core.reader.latest(conn, topics=[topic], limit=last)
    found = []
    for _, stored in rows:
        e: Any = core.store.mapper.to_domain_event(stored)
        found.append(
            {
                "at": e.timestamp,
                "decision_id": e.decision_id,
                "symbol": e.symbol,
                "state": e.state,
                "regime_known": e.regime_known,
                "size_multiplier": e.size_multiplier,
                "leverage": e.leverage,
                "notional": e.notional,
                "fallback": e.fallback,
                "caps_applied": e.caps_applied,
                "confidence": e.confidence,
                "model": e.model,
                "model_version": e.model_version,
            }
        )
    return found
