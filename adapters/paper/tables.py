"""The paper venue's own tables: the simulated outside world, not derived from our events.

They live in their own schema so that nothing in tradecore could mistake venue state for
its own (a real venue's state is only ever known by asking it).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    MetaData,
    Numeric,
    Table,
    Text,
)

PAPER_SCHEMA = "paper"
# NOTIFY channel on which the paper venue announces each mark move (payload: the symbol), so
# the worker reads equity at once instead of at its next poll: the venue "pushes" readings.
MARKS_CHANNEL = "tradecore_paper_marks"

metadata = MetaData(schema=PAPER_SCHEMA)

account = Table(
    "account",
    metadata,
    Column("id", Text, primary_key=True),
    Column("currency", Text, nullable=False),
    Column("wallet", Numeric, nullable=False),
    Column("position_mode", Text, nullable=False),  # one_way | hedge
    Column("leverage", Numeric, nullable=False),
    Column("taker_fee", Numeric, nullable=False),  # fraction of notional
    Column("slippage", Numeric, nullable=False),  # fraction of the mark, against the taker
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# Each symbol's leverage, as set through the port; a symbol never set has the account's
# default (``account.leverage``). Used for the margin of the symbol's positions.
leverage = Table(
    "leverage",
    metadata,
    Column("symbol", Text, primary_key=True),
    Column("leverage", Numeric, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

marks = Table(
    "marks",
    metadata,
    Column("symbol", Text, primary_key=True),
    Column("price", Numeric, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

positions = Table(
    "positions",
    metadata,
    Column("symbol", Text, primary_key=True),
    Column("side", Text, primary_key=True),  # long | short
    Column("quantity", Numeric, nullable=False),
    Column("entry_price", Numeric, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

orders = Table(
    "orders",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("client_order_id", Text, nullable=False, unique=True),
    Column("symbol", Text, nullable=False),
    Column("side", Text, nullable=False),
    Column("type", Text, nullable=False),  # market | limit | stop
    Column("quantity", Numeric, nullable=False),
    Column("filled", Numeric, nullable=False),
    Column("price", Numeric, nullable=True),
    Column("stop_price", Numeric, nullable=True),
    Column("average_price", Numeric, nullable=True),
    Column("status", Text, nullable=False),
    Column("reduce_only", Boolean, nullable=False),
    Column("position_side", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

fills = Table(
    "fills",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("order_id", BigInteger, ForeignKey(orders.c.id), nullable=False),
    Column("symbol", Text, nullable=False),
    Column("side", Text, nullable=False),
    Column("quantity", Numeric, nullable=False),
    Column("price", Numeric, nullable=False),
    Column("fee", Numeric, nullable=False),
    Column("realized_pnl", Numeric, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# The venue's access log of order requests, whatever their outcome (rejected ones too), so
# a drill can prove what reached the venue, e.g. that no order was sent twice.
requests = Table(
    "requests",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("client_order_id", Text, nullable=False),
    Column("symbol", Text, nullable=False),
    Column("side", Text, nullable=False),
    Column("quantity", Numeric, nullable=False),
    Column("reduce_only", Boolean, nullable=False),
    Column("outcome", Text, nullable=False),  # filled | resting | rejected: … | fault: …
    Column("received_at", DateTime(timezone=True), nullable=False),
)

# Fault injection, seeded and deterministic: the n-th request after `paper faults` draws
# from Random(f"{seed}:{n}"), whichever process sends it.
faults = Table(
    "faults",
    metadata,
    Column("id", Text, primary_key=True),
    Column("error_rate", Numeric, nullable=False),
    Column("timeout_rate", Numeric, nullable=False),
    Column("partial_fill_rate", Numeric, nullable=False),
    Column("rate_limit_rate", Numeric, nullable=False),
    Column("reject_rate", Numeric, nullable=False),
    Column("seed", BigInteger, nullable=False),
    Column("draws", BigInteger, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# Every mark the venue has had, oldest first: the price history a candle feed would give
# (what the volatility regime is measured on).
mark_history = Table(
    "mark_history",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("symbol", Text, nullable=False),
    Column("price", Numeric, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Index("ix_mark_history_symbol_id", "symbol", "id"),
)

# The venue's cash ledger: every deposit into and withdrawal from the wallet, as the venue's
# back office booked it (what `fetch_transfers` reports; the id is the venue's transfer id).
transfers = Table(
    "transfers",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("kind", Text, nullable=False),  # deposit | withdrawal
    Column("amount", Numeric, nullable=False),  # > 0
    Column("currency", Text, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Index("ix_transfers_at", "at"),
)
