"""The read-model tables, described once. Alembic migrates them; a test checks no drift."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    Numeric,
    Table,
    Text,
    Uuid,
    text,
)

READ_MODEL_SCHEMA = "readmodel"

metadata = MetaData(schema=READ_MODEL_SCHEMA)

# One row per consumer: the log position it has processed, written in the same transaction
# as its effect. The row is locked while a batch is applied, so two runners of the same
# projection (a CLI catching up while the worker runs) serialise instead of doubling work.
projection_tracking = Table(
    "projection_tracking",
    metadata,
    Column("name", Text, primary_key=True),
    Column("position", BigInteger, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("last_error", Text, nullable=True),
    Column("replayed_since_start", BigInteger, nullable=False, server_default="0"),
    Column("started_at", DateTime(timezone=True), nullable=True),
    # The event it cannot apply (None while healthy), since when, and how many tries failed.
    Column("failing_event_id", BigInteger, nullable=True),
    Column("failing_topic", Text, nullable=True),
    Column("failing_since", DateTime(timezone=True), nullable=True),
    Column("failures", BigInteger, nullable=False, server_default="0"),
)

# The timestamp index of the log (the library has none): one row per event, so time ranges,
# aggregates and causal chains are found without decoding the whole log.
event_index = Table(
    "event_index",
    metadata,
    Column("notification_id", BigInteger, primary_key=True, autoincrement=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    Column("topic", Text, nullable=False),
    Column("originator_id", Uuid, nullable=False),
    Column("originator_version", BigInteger, nullable=False),
    Column("actor", Text, nullable=True),
    Column("correlation_id", Uuid, nullable=True),
    Column("causation_id", Uuid, nullable=True),
    Index("ix_event_index_recorded_at", "recorded_at"),
    Index("ix_event_index_originator", "originator_id", "originator_version"),
    Index("ix_event_index_correlation", "correlation_id"),
)

# What the worker reports about itself: liveness, the last store outage and the catch-up
# after it (the successors of the old disk buffer's events_written / events_replayed).
worker_status = Table(
    "worker_status",
    metadata,
    Column("name", Text, primary_key=True),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("heartbeat_at", DateTime(timezone=True), nullable=False),
    Column("outages", Integer, nullable=False, server_default="0"),
    Column("last_outage_at", DateTime(timezone=True), nullable=True),
    Column("last_outage_seconds", Numeric, nullable=True),
    Column("last_catch_up_events", BigInteger, nullable=True),
    Column("last_catch_up_seconds", Numeric, nullable=True),
)

policy_view = Table(
    "policy_view",
    metadata,
    Column("policy_id", Uuid, primary_key=True),
    Column("emergency_mode", Boolean, nullable=False),
    Column("allow_new_trades", Boolean, nullable=False),
    Column("emergency_reason", Text, nullable=True),
    Column("emergency_activated_at", DateTime(timezone=True), nullable=True),
    Column("max_leverage", Numeric, nullable=False),
    Column("max_position_notional", Numeric, nullable=False),
    Column("drawdown_soft_threshold", Numeric, nullable=False),
    Column("drawdown_hard_threshold", Numeric, nullable=False),
    Column("version", Integer, nullable=False),
    Column("updated_by", Text, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    # The pre-trade controls (domain.pretrade; units there) and the loss-streak stop.
    Column("price_collar", Numeric, nullable=False),
    Column("max_order_quantity", Numeric, nullable=False),
    Column("max_order_notional", Numeric, nullable=False),
    Column("max_orders_per_second", Integer, nullable=False),
    Column("duplicate_window_s", Numeric, nullable=False),
    Column("loss_streak_losses", Integer, nullable=False),
    Column("loss_streak_window_s", Integer, nullable=False),
    Column("loss_streak_cooldown_s", Integer, nullable=False),
    Column("loss_stop_until", DateTime(timezone=True), nullable=True),
    Column("loss_count_from", DateTime(timezone=True), nullable=True),
    Column("loss_stop_reason", Text, nullable=True),
)

emergency_view = Table(
    "emergency_view",
    metadata,
    Column("emergency_id", Uuid, primary_key=True),
    Column("active", Boolean, nullable=False),
    Column("activation_number", Integer, nullable=False),
    Column("reason", Text, nullable=True),
    Column("source", Text, nullable=True),
    Column("activated_at", DateTime(timezone=True), nullable=True),
    Column("activated_by", Text, nullable=True),
    Column("reset_at", DateTime(timezone=True), nullable=True),
    Column("reset_by", Text, nullable=True),
    Column("reset_reason", Text, nullable=True),
    Column("version", Integer, nullable=False),
    # What the flattener achieved for the current (or last) activation.
    Column("flat", Boolean, nullable=True),
    Column("positions_closed", Integer, nullable=True),
    Column("orders_canceled", Integer, nullable=True),
    Column("time_to_flat_ms", BigInteger, nullable=True),
    Column("flatten_attempts", Integer, nullable=True),
    Column("forced_reset", Boolean, nullable=True),
)


# The open-trade store of P0-04: a read model of the Trade aggregates (the old
# trade_state.json's questions, answered from the log).
trades = Table(
    "trades",
    metadata,
    Column("trade_id", Uuid, primary_key=True),
    Column("symbol", Text, nullable=False),
    Column("side", Text, nullable=False),
    Column("status", Text, nullable=False),  # pending | open | closed
    Column("intended_quantity", Numeric, nullable=False),
    Column("leverage", Numeric, nullable=False),
    Column("entry_quantity", Numeric, nullable=False),
    Column("entry_cost", Numeric, nullable=False),
    Column("exit_quantity", Numeric, nullable=False),
    Column("fees", Numeric, nullable=False),
    Column("stop_loss", Numeric, nullable=True),
    Column("take_profit", Numeric, nullable=True),
    Column("source", Text, nullable=False),
    Column("opened_at", DateTime(timezone=True), nullable=False),
    Column("closed_at", DateTime(timezone=True), nullable=True),
    Column("close_reason", Text, nullable=True),
    Column("realized_pnl", Numeric, nullable=True),
    Column("version", Integer, nullable=False),
    Column("legacy_id", Text, nullable=True),  # the old store's id, for imported trades
    Index("ix_trades_symbol_opened", "symbol", "opened_at"),
    Index("ix_trades_status", "status"),
)

trade_orders = Table(
    "trade_orders",
    metadata,
    Column("client_order_id", Text, primary_key=True),
    Column("trade_id", Uuid, nullable=False),
    Column("side", Text, nullable=False),
    Column("quantity", Numeric, nullable=False),
    Column("filled", Numeric, nullable=False),
    Column("reduce_only", Boolean, nullable=False),
    Column("outcome", Text, nullable=True),  # NULL: the venue has not confirmed it final
    Index("ix_trade_orders_trade", "trade_id"),
    Index(
        "ix_trade_orders_unresolved",
        "trade_id",
        postgresql_where=text("outcome IS NULL"),
    ),
)

# Which model version each consumer runs (P0-06): a read model of the ModelConsumer events.
model_consumers = Table(
    "model_consumers",
    metadata,
    Column("consumer", Text, primary_key=True),
    Column("model", Text, primary_key=True),
    Column("version", Integer, nullable=True),
    Column("loaded_at", DateTime(timezone=True), nullable=True),
    Column("last_error", Text, nullable=True),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# -- the dashboards' read models (the status API reads only these) -----------------------------

# The drawdown breaker of each account as its events left it (P0-07).
risk_view = Table(
    "risk_view",
    metadata,
    Column("account_id", Uuid, primary_key=True),
    Column("account", Text, nullable=True),
    Column("equity", Numeric, nullable=True),
    Column("peak", Numeric, nullable=False),
    Column("drawdown", Numeric, nullable=False),
    Column("state", Text, nullable=False),
    Column("pending", Boolean, nullable=False),
    Column("rejected_readings", BigInteger, nullable=False),
    Column("last_reading_at", DateTime(timezone=True), nullable=True),
    Column("last_accepted_at", DateTime(timezone=True), nullable=True),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# Every accepted equity reading, for the equity and drawdown chart.
equity_history = Table(
    "equity_history",
    metadata,
    Column("position", BigInteger, primary_key=True, autoincrement=False),
    Column("account_id", Uuid, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("equity", Numeric, nullable=False),
    Column("peak", Numeric, nullable=False),
    Column("drawdown", Numeric, nullable=False),
    Index("ix_equity_history_account_at", "account_id", "at"),
)

# One row per emergency activation.
incidents = Table(
    "incidents",
    metadata,
    Column("activation_number", Integer, primary_key=True, autoincrement=False),
    Column("incident_id", Uuid, nullable=False, unique=True),
    Column("source", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("activated_by", Text, nullable=False),
    Column("activated_at", DateTime(timezone=True), nullable=False),
    Column("flat", Boolean, nullable=True),
    Column("flat_at", DateTime(timezone=True), nullable=True),
    Column("time_to_flat_ms", BigInteger, nullable=True),
    Column("positions_closed", Integer, nullable=True),
    Column("orders_canceled", Integer, nullable=True),
    Column("reset_at", DateTime(timezone=True), nullable=True),
    Column("reset_by", Text, nullable=True),
    Column("reset_reason", Text, nullable=True),
)

# The version each model has promoted (what every consumer should be running).
model_promotions = Table(
    "model_promotions",
    metadata,
    Column("model", Text, primary_key=True),
    Column("version", Integer, nullable=False),
    Column("changed_at", DateTime(timezone=True), nullable=False),
    Column("actor", Text, nullable=False),
    Column("reason", Text, nullable=False),
)

# Facts the dashboard projection needs across events (the installation id of the latch).
dashboard_facts = Table(
    "dashboard_facts",
    metadata,
    Column("key", Text, primary_key=True),
    Column("value", Text, nullable=False),
)


# The opening orders each account admitted lately (the pre-trade rate and duplicate checks).
# Not a projection: written by the executor, in one transaction per order, under an advisory
# lock per account, so every process (the CLI, the worker) counts the same orders.
recent_orders = Table(
    "recent_orders",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("account", Text, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("symbol", Text, nullable=False),
    Column("side", Text, nullable=False),
    Column("quantity", Numeric, nullable=False),
    Index("ix_recent_orders_account_at", "account", "at"),
)
