"""Model consumers (P0-06): every module that uses a model follows the registry.

Each loads the promoted version on start and again whenever a promotion or rollback changes
it, and records ``ModelLoaded`` or ``ModelLoadFailed``. After a failure it keeps the model it
had and says so; on a start where the promoted version cannot load, it falls back to the
most recently promoted version that does, so once a model has been promoted a consumer never
runs with none (while any promoted version can load).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from adapters.artifacts import ArtifactStore
from adapters.eventstore import TradecoreEventStore
from adapters.repository import WRITER, ConcurrencyExhausted, Repository
from app.commands.model_registry import ModelService
from domain.model_consumer import ModelConsumer, consumer_id
from domain.model_registry import ModelRegistry

log = logging.getLogger(__name__)

CONSUMERS = ("signal_engine", "position_monitor", "insights_logger")

Loader = Callable[[bytes], Any]


class ConsumerRuntime:
    def __init__(
        self,
        consumer: str,
        model: str,
        store: TradecoreEventStore,
        models: ModelService,
        artifacts: ArtifactStore,
        loader: Loader,
        clock: Callable[[], datetime],
    ) -> None:
        self.consumer, self.model = consumer, model
        self.store, self.models, self.artifacts = store, models, artifacts
        self.loader, self.clock = loader, clock
        self.current: Any = None
        self.version: int | None = None
        self._failed: int | None = None  # a version that failed: not retried until it changes

    def sync(self) -> bool:
        """Follow the registry; True when the model in use changed."""
        return self.follow(self.registry())

    def registry(self) -> ModelRegistry | None:
        """The registry of the model it follows, as committed (None: never registered)."""
        return self.models.registry(self.model)

    def follow(self, registry: ModelRegistry | None) -> bool:
        """Follow ``registry`` (this consumer's model's, as just loaded: consumers of one
        model in one process share one load); True when the model in use changed."""
        target = registry.promoted if registry else None
        if registry is None or target is None or target in (self.version, self._failed):
            return False
        try:
            self.current = self.loader(self.artifacts.get(registry.sha256_of(target)))
        except Exception as e:  # noqa: BLE001 - any failure leaves the old model in use
            self._failed, error = target, f"{type(e).__name__}: {e}"
            self._record(
                lambda c: c.load_failed(version=target, error=error, timestamp=self.clock())
            )
            log.error(
                "%s could not load %s v%s (%s); keeps %s",
                self.consumer,
                self.model,
                target,
                e,
                f"v{self.version}" if self.version else "no model",
            )
            if self.current is None:
                self._fall_back(target)
            return False
        self.version, self._failed = target, None
        self._record(lambda c: c.loaded(version=target, timestamp=self.clock()))
        log.warning("%s using %s v%s", self.consumer, self.model, target)
        return True

    def _fall_back(self, failed: int) -> None:
        """With nothing loaded, run the most recently promoted version that does load."""
        registry = self.models.registry(self.model)
        candidates = [] if registry is None else list(dict.fromkeys(reversed(registry.promotions)))
        for version in [v for v in candidates if v != failed]:
            assert registry is not None
            try:
                self.current = self.loader(self.artifacts.get(registry.sha256_of(version)))
            except Exception:  # noqa: BLE001, S112 - try the one before
                continue
            self.version = version
            self._record(partial(_loaded, version=version, timestamp=self.clock()))
            log.warning(
                "%s using %s v%s (fallback: v%s cannot load)",
                self.consumer,
                self.model,
                version,
                failed,
            )
            return
        log.error("%s has no loadable version of %s", self.consumer, self.model)

    def _aggregate(self) -> ModelConsumer | None:
        return Repository(self.store).find(ModelConsumer, consumer_id(self.consumer, self.model))

    def _record(self, change: Callable[[ModelConsumer], None]) -> None:
        def attempt() -> None:
            state = self._aggregate() or ModelConsumer.start(
                consumer=self.consumer, model=self.model, timestamp=self.clock()
            )
            change(state)
            Repository(self.store).save(state)

        try:
            WRITER.run(attempt, what=f"{self.consumer}'s model state")
        except ConcurrencyExhausted:
            log.error("%s: could not record its model state", self.consumer)


def _loaded(consumer: ModelConsumer, *, version: int, timestamp: datetime) -> None:
    consumer.loaded(version=version, timestamp=timestamp)


CANDLES = 100  # enough history for every feature


@dataclass(frozen=True)
class ModelScore:
    """P(the next close is up), in [0, 1], and the model version that said so."""

    model: str
    version: int
    p_up: float


def promoted_score(runtime: ConsumerRuntime, venue: Any, symbol: str) -> ModelScore | None:
    """The score of ``symbol`` by the promoted model: the runtime follows the registry
    first, so a promotion recorded before this call is the version that answers. None when
    no version is loaded or it cannot score (no candles). Raises what the store raises."""
    runtime.sync()
    p_up = model_confidence(runtime, venue, symbol)
    if p_up is None or runtime.version is None:
        return None
    return ModelScore(runtime.model, runtime.version, p_up)


def model_confidence(runtime: ConsumerRuntime, venue: Any, symbol: str) -> float | None:
    """P(the next close is up) for ``symbol`` from the consumer's model, or None when it
    has no model yet or the venue cannot give candles."""
    if runtime.current is None:
        return None
    try:
        candles = venue.fetch_candles(symbol, CANDLES)
    except Exception:
        log.warning("%s: no candles for %s", runtime.consumer, symbol, exc_info=True)
        return None
    if len(candles) == 0:
        return None
    return float(runtime.current.confidence(candles))


class ModelWatch:
    """The position monitor and the insights logger: at an interval, score every open
    trade (and every traded symbol) with the model each runs, and log it."""

    def __init__(
        self,
        monitor: ConsumerRuntime,
        insights: ConsumerRuntime,
        venue: Any,
        open_trades: Callable[[], list[Any]],
        symbols: list[str],
    ) -> None:
        self.monitor, self.insights = monitor, insights
        self.venue, self.open_trades, self.symbols = venue, open_trades, symbols

    def run_once(self) -> None:
        trades = self.open_trades()
        for trade in trades:
            p = model_confidence(self.monitor, self.venue, trade.symbol)
            if p is not None:
                favour = p if trade.side == "long" else 1 - p
                log.info(
                    "position_monitor: trade %s %s %s scored %.3f by %s v%s",
                    trade.trade_id,
                    trade.side,
                    trade.symbol,
                    favour,
                    self.monitor.model,
                    self.monitor.version,
                )
        for symbol in sorted({*self.symbols, *(t.symbol for t in trades)}):
            p = model_confidence(self.insights, self.venue, symbol)
            if p is not None:
                log.info(
                    "insights_logger: %s P(up next bar) %.3f (%s v%s)",
                    symbol,
                    p,
                    self.insights.model,
                    self.insights.version,
                )
