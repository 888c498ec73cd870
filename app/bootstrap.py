"""The one place that wires tradecore together (adapters, projections, services, gate)."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from uuid import UUID

import psycopg
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError as SAOperationalError
from sqlalchemy.exc import ProgrammingError as SAProgrammingError

from adapters import migrations
from adapters.artifacts import ArtifactStore
from adapters.clock import WALL, Clock, as_clock
from adapters.database import DatabaseAddress, first_line
from adapters.embedded_pg import EmbeddedPostgres
from adapters.errors import StoreBusy, StoreUnavailable
from adapters.eventstore import PostgresLogReader, TradecoreEventStore, open_event_store
from adapters.locks import advisory_lock, order_flow_lock
from adapters.notify import NotificationWaiter
from adapters.venues import build_venue
from app.commands.executor import Executor, TradeIntent
from app.commands.model_registry import ModelService
from app.commands.pretrade_controls import PreTradeCheck
from app.commands.projection_skips import ProjectionSkips
from app.commands.safety import SafetyCommands
from app.commands.sizing import Sized, SizingService
from app.config import Settings
from app.processes.drawdown_breaker import BreakerSettings, BreakerSight, DrawdownBreaker
from app.processes.emergency_trade_closer import EmergencyTradeCloser
from app.processes.flattener import Flattener
from app.processes.model_consumers import CONSUMERS, ConsumerRuntime, ModelScore
from app.processes.reconciliation import Reconciler
from app.processes.signal_engine import SignalEngine
from app.processes.sizing_learner import SizingLearner
from app.queries.gate import PolicyGate
from domain.errors import RefusedBySafetyRule
from domain.ids import ORDER_FLOW_LOCK
from domain.regime import RegimeThresholds
from domain.sizing_record import decision_id_for
from domain.venue import ExchangePort
from projections.dashboard import DashboardProjection
from projections.event_index import EventIndexProjection
from projections.model_status import ModelStatusProjection
from projections.policy_view import PolicyProjection
from projections.runner import ProjectionRunner
from projections.trade_store import TradeProjection, TradeStateStore

# Idle connections each pool keeps (the event store's and the read models'); a nested use
# opens one more and closes it when done. A one-shot command needs one of each, so it
# holds two at rest and crowds nobody out; the worker and the API, with several threads,
# keep more to avoid reconnecting.
COMMAND_POOL_SIZE = 1
SERVICE_POOL_SIZE = 4

# The longest (seconds) a catch-up of the read models waits for rows another transaction
# holds, for ever if that transaction's process is stopped: the flattener's before it closes
# the trades (so the breaker's readings wait that long at most; the closes are retried at the
# next check), the worker's catch-up duty and reconciliation (so its emergency supervision
# goes on), and a command's catch-up (before it reads, or as it closes). The held read
# model is caught up at a later pass.
READ_MODEL_LOCK_WAIT = 1.0


class Schema(Enum):
    AUTO = "auto"  # embedded: upgrade on first use; external: require head
    REQUIRE = "require"
    SKIP = "skip"  # db commands: look at the schema, do not touch it


def resolve_address(settings: Settings) -> tuple[DatabaseAddress, EmbeddedPostgres | None]:
    """Where the application connects (as the app role), starting the embedded server when
    no URL is set."""
    if settings.database_url:
        return DatabaseAddress.parse(settings.database_url), None
    embedded = EmbeddedPostgres(settings.home)
    embedded.ensure_running()
    return embedded.address, embedded


def owner_address(settings: Settings) -> tuple[DatabaseAddress, bool]:
    """Where migrations run, and whether it is the embedded server: the owner URL, else the
    embedded server's superuser, else the one configured URL (an installation that has not
    split its roles yet; the application will refuse to run as that owner)."""
    if settings.owner_database_url:
        return DatabaseAddress.parse(settings.owner_database_url), False
    if settings.database_url:
        return DatabaseAddress.parse(settings.database_url), False
    return EmbeddedPostgres(settings.home).ensure_running(), True


def upgrade_schema(owner: DatabaseAddress, *, app_login: bool) -> migrations.MigrationStatus:
    """Migrate to head as ``owner`` (idempotent); ``app_login``: also let the app role log
    in (the embedded server, whose socket is private). Raises StoreUnavailable."""
    owner.check()
    engine = owner.engine(pool_size=1)
    try:
        result = migrations.upgrade(engine)
        if app_login:
            migrations.enable_app_login(engine)
        return result
    except SAOperationalError as e:
        raise StoreUnavailable(first_line(e)) from None
    except SAProgrammingError as e:
        # Most often the app role's URL given where the owner's is needed.
        raise StoreUnavailable(
            f"cannot migrate as role {owner.user}: {first_line(e.orig or e)} (migrations run "
            "as the schema's owner: TRADECORE_OWNER_DATABASE_URL)"
        ) from None
    finally:
        engine.dispose()


def _ensure_embedded_schema(embedded: EmbeddedPostgres) -> None:
    """Connect as the app role once (the usual case: it can, at head, and that connection
    is the store check); otherwise migrate as the owner. On a fresh server the app role
    does not exist until the first migration. Raises StoreBusy, StoreUnavailable."""
    head = migrations.head_revision()
    try:
        with embedded.address.connect() as conn:
            found = conn.execute("SELECT version_num FROM public.alembic_version").fetchone()
        if found is not None and found[0] == head:
            return
    except StoreBusy:
        raise  # no free slot: the owner would not get one either, and must not be told so
    except (StoreUnavailable, psycopg.Error):
        pass  # no app role yet, or no schema: the owner makes both
    upgrade_schema(embedded.owner_address, app_login=True)


@dataclass
class Core:
    settings: Settings
    address: DatabaseAddress
    embedded: EmbeddedPostgres | None
    engine: Engine
    store: TradecoreEventStore
    reader: PostgresLogReader
    runner: ProjectionRunner
    gate: PolicyGate
    commands: SafetyCommands
    clock: Clock
    _closers: list[Callable[[], None]] = field(default_factory=list)
    _venue: ExchangePort | None = None

    def venue(self) -> ExchangePort:
        """The configured venue, built on first use (ccxt is slow to import)."""
        if self._venue is None:
            self._venue = self.new_venue()
        return self._venue

    def new_venue(self) -> ExchangePort:
        """A venue client of its own, for another thread (a ccxt client is not thread-safe)."""
        return build_venue(
            self.settings.exchange, self.engine, self.clock, sandbox=self.settings.exchange_sandbox
        )

    def flattener(
        self, progress: Callable[[str], None] = lambda _: None, venue: ExchangePort | None = None
    ) -> Flattener:
        address = self.address

        def lock(name: UUID, timeout: float) -> AbstractContextManager[bool]:
            return advisory_lock(address, name, timeout=timeout)

        def barrier(timeout: float) -> bool:
            with order_flow_lock(
                self.engine, ORDER_FLOW_LOCK, exclusive=True, timeout=timeout
            ) as held:
                return held

        venue = venue or self.venue()
        return Flattener(
            self.store,
            venue,
            self.clock,
            lock,
            deadline=self.settings.flatten_deadline,
            progress=progress,
            barrier=barrier,
            on_flat=EmergencyTradeCloser(
                self.store,
                venue,
                self.clock,
                functools.partial(self.open_trade_ids, lock_wait=READ_MODEL_LOCK_WAIT),
            ),
        )

    def drawdown_breaker(self, venue: ExchangePort | None = None) -> DrawdownBreaker:
        s = self.settings
        return DrawdownBreaker(
            self.store,
            self.commands,
            venue or self.venue(),
            self.clock,
            BreakerSettings(
                account=s.account,
                hysteresis=s.drawdown_hysteresis,
                glitch_bound=s.drawdown_glitch_bound,
                daily_reset=s.drawdown_daily_reset,
            ),
        )

    def executor(self) -> Executor:
        def order_flow(timeout: float) -> AbstractContextManager[bool]:
            return order_flow_lock(self.engine, ORDER_FLOW_LOCK, exclusive=False, timeout=timeout)

        sizing = self.sizing()

        def sizer(intent: TradeIntent, trade_id: UUID) -> Sized:
            confidence = float(intent.confidence) if intent.confidence is not None else None
            return sizing.size(
                symbol=intent.symbol,
                confidence=confidence,
                base_notional=intent.notional,
                decision_id=decision_id_for(trade_id),
                model=intent.model,
                model_version=intent.model_version,
            )

        pretrade = PreTradeCheck(
            self.engine, self.commands, self.clock, account=self.settings.account
        )
        return Executor(
            self.store,
            self.gate,
            self.venue(),
            self.clock,
            order_flow,
            sizer=sizer,
            pretrade=pretrade,
        )

    def sizing(self) -> SizingService:
        return SizingService(
            self.store,
            self.venue(),
            self.clock,
            self.trade_store(),
            self.commands.load_policy,
            RegimeThresholds(
                window=self.settings.regime_window,
                low=self.settings.regime_low,
                high=self.settings.regime_high,
            ),
        )

    def projection_skips(self) -> ProjectionSkips:
        return ProjectionSkips(self.runner, self.reader, self.commands, self.clock)

    def reconciler(self) -> Reconciler:
        def exclusive_flow(timeout: float) -> AbstractContextManager[bool]:
            return order_flow_lock(self.engine, ORDER_FLOW_LOCK, exclusive=True, timeout=timeout)

        return Reconciler(
            self.store,
            self.venue(),
            self.clock,
            functools.partial(self.open_trade_ids, lock_wait=READ_MODEL_LOCK_WAIT),
            exclusive_flow,
        )

    def signal_engine(
        self,
        fence: Callable[[], bool] = lambda: True,
        score: Callable[[str], ModelScore | None] = lambda _: None,
    ) -> SignalEngine | None:
        """The rule-based signal source, when symbols are configured for it; ``score`` is
        the promoted model's (without one, its entries are refused)."""
        symbols = self.settings.signal_symbol_list
        if not symbols:
            return None
        return SignalEngine(
            self.venue(),
            self.executor(),
            self.trade_store(),
            self.clock,
            symbols=symbols,
            notional=self.settings.signal_notional,
            bar_seconds=self.settings.signal_bar_seconds,
            fence=fence,
            score=score,
        )

    def artifacts(self) -> ArtifactStore:
        return ArtifactStore(self.settings.artifact_dir or self.settings.home / "artifacts")

    def models(self) -> ModelService:
        return ModelService(self.store, self.artifacts(), self.clock, self.engine, self.reader)

    def model_consumers(self) -> list[ConsumerRuntime]:
        """The modules that use the signal model, each following the registry."""
        models, artifacts = self.models(), self.artifacts()
        return [
            ConsumerRuntime(
                name,
                self.settings.signal_model,
                self.store,
                models,
                artifacts,
                _load_signal_model,
                self.clock,
            )
            for name in CONSUMERS
        ]

    def trade_store(self) -> TradeStateStore:
        return TradeStateStore(self.engine)

    def open_trade_ids(self, lock_wait: float | None = None) -> list[UUID]:
        """Open trades as of the log's head (the trade store caught up first, waiting at
        most ``lock_wait`` seconds for a lock another transaction holds; None: as long as it
        holds). Raises ProjectionBusy when ``lock_wait`` runs out."""
        self.runner.catch_up_projection(
            self.runner.projection(TradeProjection.default_name), lock_wait=lock_wait
        )
        return [t.trade_id for t in self.trade_store().list_open_trades()]

    def waiter(self) -> NotificationWaiter:
        waiter = NotificationWaiter(self.address)
        self._closers.append(waiter.close)
        return waiter

    def close(self) -> None:
        for close in reversed(self._closers):
            with contextlib.suppress(Exception):
                close()
        self.store.close()
        self.engine.dispose()

    def __enter__(self) -> Core:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def _load_signal_model(artifact: bytes) -> object:
    # LightGBM is imported on first load only: every CLI command would otherwise pay ~0.2 s.
    from adapters.signal_model import SignalModel  # noqa: PLC0415

    return SignalModel.load(artifact)


def prepare_schema(engine: Engine, *, mode: Schema) -> None:
    """Check the schema is at head (unless ``mode`` is SKIP) and that the role we run as
    cannot alter events. Raises StoreNotMigrated, StoreUnavailable, RefusedBySafetyRule."""
    try:
        if mode is not Schema.SKIP:
            migrations.require_head(engine)
        rewriter = migrations.history_rewriter(engine)
    except SAOperationalError as e:
        raise StoreUnavailable(f"cannot read the schema version: {first_line(e)}") from None
    if rewriter is not None:
        raise RefusedBySafetyRule(
            f"{rewriter}, so it could rewrite recorded events: tradecore runs as the "
            f"{migrations.APP_ROLE} role (TRADECORE_DATABASE_URL) and migrates as the owner "
            "(TRADECORE_OWNER_DATABASE_URL); see README, 'Who may change history'"
        )


def bootstrap(
    settings: Settings,
    *,
    schema: Schema = Schema.AUTO,
    clock: Clock | Callable[[], datetime] = WALL,
    pool_size: int = COMMAND_POOL_SIZE,
) -> Core:
    """Connect, check the schema, and build every component on ``clock`` (the wall clock
    live, a market clock in a replay). Raises StoreUnavailable."""
    clock = as_clock(clock)
    address, embedded = resolve_address(settings)
    if embedded is not None and schema is Schema.AUTO:
        _ensure_embedded_schema(embedded)
    else:
        address.check()
    engine = address.engine(pool_size=pool_size)
    try:
        prepare_schema(engine, mode=schema)
        store = open_event_store(address, pool_size=pool_size)
    except BaseException:
        engine.dispose()
        raise
    reader = PostgresLogReader()

    def probe() -> None:
        # Through the read models' pool (pre-pinged), not a connection of its own: a command
        # holds as few server connections as it can (see COMMAND_POOL_SIZE).
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except SAOperationalError as e:
            raise StoreUnavailable(f"cannot reach {address.display}: {first_line(e)}") from None

    commands = SafetyCommands(
        store,
        clock,
        probe=probe,
        account=settings.account,
        breaker_tuning=(settings.drawdown_hysteresis, settings.drawdown_glitch_bound),
    )
    runner = ProjectionRunner(
        engine,
        reader,
        store.mapper,
        [
            PolicyProjection(),
            EventIndexProjection(),
            TradeProjection(),
            ModelStatusProjection(),
            SizingLearner(store),
            DashboardProjection(),
        ],
        clock=clock,
        probe=address.check,
    )
    gate = PolicyGate(
        engine,
        reader,
        commands.load_policy,
        max_lag_events=settings.gate_max_lag_events,
        breaker_blind=BreakerSight(
            store, commands, clock, account=settings.account, bound=settings.breaker_sight_bound
        ),
    )
    return Core(
        settings=settings,
        address=address,
        embedded=embedded,
        engine=engine,
        store=store,
        reader=reader,
        runner=runner,
        gate=gate,
        commands=commands,
        clock=clock,
    )
