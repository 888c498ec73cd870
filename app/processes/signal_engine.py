"""The signal engine: samples each configured symbol's mark once a bar, asks the rule-based
source (``domain.signals``) for a signal, and turns one into intents for the executor.

The rule is the entry trigger; the confidence an entry is sized on is the promoted model's
(P0-06): P(up) for a long, 1 - P(up) for a short, from the version the registry promotes at
that moment (``score``), and the intent names that model and version so the sizing decision
records them. With no model to ask (none promoted, none loadable, or it cannot score the
symbol) the engine fails closed: the entry is refused with ``NO_MODEL`` and recorded, while
exits on the opposite signal still go out (they only reduce risk).

A long signal on a symbol closes its open short trades (reason ``signal``) and opens a long
one unless a long is already open; a short signal likewise. Intents carry the signal's key
(rule, symbol, bar, side), so a bar replayed after a restart is the same trade, never a
second one. The price history is kept in memory: after a restart the rule warms up again
for ``slow`` bars before it can signal (a later issue feeds it the venue's candles).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

from app.commands.executor import Execution, Executor, TradeIntent
from app.processes.model_consumers import ModelScore
from domain.signals import MovingAverageCrossover, Signal, evaluate
from domain.venue import ExchangePort
from projections.trade_store import TradeStateStore

log = logging.getLogger(__name__)


class SignalEngine:
    def __init__(
        self,
        venue: ExchangePort,
        executor: Executor,
        trades: TradeStateStore,
        clock: Callable[[], datetime],
        *,
        symbols: Sequence[str],
        notional: Decimal,
        bar_seconds: float,
        rule: MovingAverageCrossover | None = None,
        fence: Callable[[], bool] = lambda: True,
        score: Callable[[str], ModelScore | None] = lambda _: None,
    ) -> None:
        """``fence`` is asked right before a signal is acted on: False means this process
        may no longer be the account's one active worker, so it sends nothing. ``score``
        gives a symbol's score by the promoted model (None: no model; entries refused)."""
        self.venue = venue
        self.executor = executor
        self.trades = trades
        self.clock = clock
        self.symbols = list(symbols)
        self.notional = notional
        self.bar_seconds = bar_seconds
        self.rule = rule or MovingAverageCrossover()
        self.fence = fence
        self.closes: dict[str, deque[Decimal]] = {
            s: deque(maxlen=self.rule.slow + 1) for s in self.symbols
        }
        self._last_bar: int | None = None
        self.score = score

    def step(self) -> list[Execution]:
        """Sample once per bar; returns what the executor did for the signals of this bar."""
        bar = int(self.clock().timestamp() // self.bar_seconds)
        if bar == self._last_bar:
            return []
        self._last_bar = bar
        bar_time = datetime.fromtimestamp(bar * self.bar_seconds, UTC)
        executions: list[Execution] = []
        for symbol in self.symbols:
            self.closes[symbol].append(self.venue.fetch_mark_price(symbol))
            if len(self.closes[symbol]) <= self.rule.slow:
                continue
            signal = evaluate(self.rule, symbol, list(self.closes[symbol]), bar_time)
            if signal is None:
                continue
            if not self.fence():
                log.error("WORKER LOCK NOT HELD: signal %s %s not acted on", symbol, signal.side)
                continue
            executions += self._act(signal)
        return executions

    def _act(self, signal: Signal) -> list[Execution]:
        log.info(
            "signal %s %s (%.2f): %s", signal.symbol, signal.side, signal.confidence, signal.reason
        )
        done: list[Execution] = []
        open_trades = [t for t in self.trades.list_open_trades() if t.symbol == signal.symbol]
        for trade in open_trades:
            if trade.side != signal.side and trade.quantity > 0:
                done.append(self.executor.close(trade.trade_id, reason="signal", actor="signal"))
        if any(t.side == signal.side for t in open_trades):
            return done
        intent = TradeIntent(
            symbol=signal.symbol,
            side=signal.side,
            notional=self.notional,
            actor="signal",
            reason=signal.reason,
            key=signal.key,
        )
        score = self.score(signal.symbol)
        if score is None:
            done.append(
                self.executor.refuse(
                    intent, "NO_MODEL", f"no promoted model can score {signal.symbol}"
                )
            )
            return done
        p = score.p_up if signal.side == "long" else 1 - score.p_up
        log.info(
            "%s scored %.4f for %s by %s v%s",
            signal.symbol,
            p,
            signal.side,
            score.model,
            score.version,
        )
        confidence = Decimal(str(round(min(max(p, 0.0), 1.0), 4)))
        done.append(
            self.executor.open(
                replace(
                    intent,
                    confidence=confidence,
                    model=score.model,
                    model_version=score.version,
                )
            )
        )
        return done
