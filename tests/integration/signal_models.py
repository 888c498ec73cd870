"""Real LightGBM signal models for tests: trained once per seed on the bundled sample, and
registered (and promoted) in a core's model registry."""

from __future__ import annotations

from functools import cache

from adapters.data import sample_path
from adapters.signal_model import TrainedModel, train
from app.bootstrap import Core
from domain.market_data import parse_ohlcv_csv

NAME = "signal"


@cache
def trained(seed: int) -> TrainedModel:
    candles = parse_ohlcv_csv(sample_path().read_text(), source="sample_ohlcv.csv")
    return train(candles, seed=seed)


def register(core: Core, seed: int, name: str = NAME) -> int:
    """Register the model trained with ``seed``; returns its version."""
    model = trained(seed)
    return (
        core.models()
        .register(
            name,
            artifact=model.artifact,
            data_from=model.data_from,
            data_to=model.data_to,
            metrics=model.metrics,
            actor="test",
        )
        .version
    )


def promote(core: Core, version: int, name: str = NAME) -> None:
    core.models().promote(name, version, actor="test", reason=f"to v{version}")
