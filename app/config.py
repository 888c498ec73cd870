"""Configuration from the environment (``TRADECORE_*``), overridable by CLI options."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from adapters.embedded_pg import default_home


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TRADECORE_", extra="ignore")

    database_url: str | None = Field(
        default=None,
        description=(
            "postgresql:// URL the application runs as (the app role, which cannot alter "
            "events); unset means the embedded server"
        ),
    )
    owner_database_url: str | None = Field(
        default=None,
        description=(
            "postgresql:// URL of the role that owns the schema, used only by "
            "`tradecore db upgrade|status`; unset: the embedded server's superuser, "
            "else database_url"
        ),
    )
    home: Path = Field(default_factory=default_home, description="embedded server and artifacts")
    gate_max_lag_events: int = Field(
        default=100,
        ge=0,
        description="the gate closes when the policy view is further behind the log than this",
    )
    poll_interval: float = Field(default=1.0, gt=0, description="consumers' fallback poll (s)")
    exchange: str = Field(
        default="paper", description="the venue: 'paper' or 'ccxt:<exchange id>' (ccxt:bybit)"
    )
    exchange_sandbox: bool = Field(default=False, description="use the venue's test network")
    flatten_deadline: float = Field(
        default=30.0, gt=0, description="seconds the flattener tries before FlattenIncomplete"
    )
    signal_symbols: str = Field(
        default="",
        description="comma-separated symbols the rule-based signal source trades; empty: off",
    )
    signal_notional: Decimal = Field(
        default=Decimal(100), gt=0, description="notional of each signal's trade"
    )
    signal_bar_seconds: float = Field(default=60.0, gt=0, description="the signal's bar length")
    regime_window: int = Field(
        default=20, ge=5, description="prices the volatility regime is measured over"
    )
    regime_low: float = Field(
        default=0.002, gt=0, description="realized volatility (per sample) below which: LOW"
    )
    regime_high: float = Field(
        default=0.01, gt=0, description="realized volatility (per sample) above which: HIGH"
    )
    artifact_dir: Path | None = Field(
        default=None, description="where model artifacts live (default: <home>/artifacts)"
    )
    signal_model: str = Field(default="signal", description="the model name consumers follow")
    reconcile_interval: float = Field(
        default=60.0, gt=0, description="seconds between the worker's reconciliations"
    )
    account: str = Field(
        default="main", min_length=1, description="the venue account this installation trades"
    )
    equity_interval: float = Field(
        default=1.0, gt=0, description="seconds between equity readings (the drawdown breaker)"
    )
    drawdown_hysteresis: Decimal = Field(
        default=Decimal("0.01"),
        ge=0,
        description="a soft breach recovers only above the soft threshold plus this much",
    )
    drawdown_glitch_bound: Decimal = Field(
        default=Decimal("0.03"),
        gt=0,
        lt=1,
        description="a reading moving more than this fraction is acted on only once confirmed",
    )
    breaker_blind_after: float | None = Field(
        default=None,
        gt=0,
        description=(
            "seconds without an accepted equity reading after which the gate refuses new "
            "entries (BREAKER_BLIND); default max(5, 3 x equity_interval)"
        ),
    )
    drawdown_daily_reset: bool = Field(
        default=False, description="start a new high-water mark each UTC day"
    )

    @property
    def signal_symbol_list(self) -> list[str]:
        return [s.strip() for s in self.signal_symbols.split(",") if s.strip()]

    @property
    def breaker_sight_bound(self) -> float:
        """Seconds an accepted equity reading stays fresh enough to open risk on."""
        if self.breaker_blind_after is not None:
            return self.breaker_blind_after
        return max(5.0, 3 * self.equity_interval)

    @property
    def embedded(self) -> bool:
        return not self.database_url
