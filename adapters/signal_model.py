"""The signal model (P0-06): a LightGBM classifier of the next bar's direction.

Training is deterministic (a fixed seed, one thread, deterministic mode), so the same data
and seed give a byte-identical artifact and identical predictions. The artifact is
LightGBM's own text format; its ``confidence`` is P(next close is up) for the last candle.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

import lightgbm as lgb
import numpy as np

from domain.market_data import FEATURE_NAMES, Candles, features, training_rows

PARAMS = {
    "objective": "binary",
    "learning_rate": 0.05,
    "num_leaves": 15,
    "min_data_in_leaf": 30,
    "feature_fraction": 0.9,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "deterministic": True,
    "force_row_wise": True,
    "num_threads": 1,
    "verbosity": -1,
}
ROUNDS = 100
HOLD_OUT = 0.2  # the chronologically last fifth is the test set


class ModelArtifactInvalid(Exception):
    """Bytes LightGBM cannot read as a model."""


@dataclass(frozen=True)
class TrainedModel:
    artifact: bytes
    metrics: dict[str, float]
    data_from: datetime
    data_to: datetime


def train(candles: Candles, *, seed: int = 7) -> TrainedModel:
    """Train on the first 80 % of the rows, measure on the rest, and keep the model trained
    on the first 80 % (what was measured is what ships)."""
    x, y = training_rows(candles)
    split = int(len(x) * (1 - HOLD_OUT))
    params = PARAMS | {"seed": seed, "bagging_seed": seed, "feature_fraction_seed": seed}
    booster = lgb.train(
        params,
        lgb.Dataset(x[:split], label=y[:split], feature_name=list(FEATURE_NAMES)),
        num_boost_round=ROUNDS,
    )
    p = np.clip(np.asarray(booster.predict(x[split:]), dtype=np.float64), 1e-9, 1 - 1e-9)
    truth = y[split:]
    metrics = {
        "accuracy": float(np.mean((p > 0.5) == (truth > 0.5))),
        "logloss": float(-np.mean(truth * np.log(p) + (1 - truth) * np.log(1 - p))),
        "train_rows": float(split),
        "test_rows": float(len(x) - split),
    }
    return TrainedModel(
        artifact=booster.model_to_string().encode("utf-8"),
        metrics=metrics,
        data_from=candles.first,
        data_to=candles.last,
    )


class SignalModel:
    def __init__(self, booster: lgb.Booster) -> None:
        self.booster = booster

    @classmethod
    def load(cls, artifact: bytes) -> SignalModel:
        """Raises ModelArtifactInvalid when the bytes are not a LightGBM model."""
        try:
            booster = lgb.Booster(model_str=artifact.decode("utf-8"))
        except (UnicodeDecodeError, lgb.basic.LightGBMError) as e:
            raise ModelArtifactInvalid(f"not a LightGBM model: {e}") from None
        if booster.num_feature() != len(FEATURE_NAMES):
            raise ModelArtifactInvalid(
                f"model has {booster.num_feature()} features, {len(FEATURE_NAMES)} expected"
            )
        return cls(booster)

    def confidence(self, candles: Candles) -> float:
        """P(the next close is above the last one), from the last candle's features."""
        row = features(candles)[-1:]
        value = float(np.asarray(self.booster.predict(row), dtype=np.float64)[0])
        return value if math.isfinite(value) else 0.5
