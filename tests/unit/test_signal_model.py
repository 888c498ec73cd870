"""The signal model: OHLCV parsing that names the bad line, features, and deterministic
LightGBM training on the shipped synthetic sample."""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest

from adapters.data import sample_path
from adapters.signal_model import ModelArtifactInvalid, SignalModel, TrainedModel, train
from domain.market_data import (
    FEATURE_NAMES,
    CandleDataInvalid,
    Candles,
    features,
    labels,
    parse_ohlcv_csv,
)


@cache
def sample() -> Candles:
    return parse_ohlcv_csv(sample_path().read_text(), source="sample_ohlcv.csv")


@cache
def trained(seed: int) -> TrainedModel:
    return train(sample(), seed=seed)


def test_the_shipped_sample_parses_into_aligned_candles() -> None:
    candles = sample()
    assert len(candles) == 3000 and candles.first < candles.last
    assert candles.close.shape == candles.volume.shape == (3000,)


def test_features_have_a_warm_up_and_labels_look_one_bar_ahead() -> None:
    candles = sample()
    x, y = features(candles), labels(candles)
    assert x.shape == (3000, len(FEATURE_NAMES))
    assert np.isnan(x[0, 0]) and not np.isnan(x[12, 2]) and np.isnan(x[11, 3])
    assert np.isnan(y[-1]) and y[0] == float(candles.close[1] > candles.close[0])


def test_training_twice_with_one_seed_gives_the_same_model_and_predictions() -> None:
    again = train(sample(), seed=7)
    assert again.artifact == trained(7).artifact
    one, two = SignalModel.load(again.artifact), SignalModel.load(trained(7).artifact)
    assert one.confidence(sample()) == two.confidence(sample())
    assert 0.0 <= one.confidence(sample()) <= 1.0
    assert {"accuracy", "logloss", "train_rows", "test_rows"} <= trained(7).metrics.keys()


def test_bytes_that_are_not_a_model_are_refused() -> None:
    with pytest.raises(ModelArtifactInvalid):
        SignalModel.load(b"not a model")
    with pytest.raises(ModelArtifactInvalid):
        SignalModel.load(b"\xff\xfe")


def rows(count: int) -> list[str]:
    return sample_path().read_text().splitlines()[: count + 1]


@pytest.mark.parametrize(
    ("line", "column", "value", "message"),
    [
        (7, 4, "abc", "line 7: close: not a number"),
        (9, 5, "-1", "line 9: prices must be positive and volume not negative"),
        (12, 2, "1", "line 12: high/low do not contain open and close"),
        (5, 0, "yesterday", "line 5: timestamp: not a time"),
        (6, 1, "nan", "line 6: open: must be finite"),
    ],
)
def test_a_bad_row_is_refused_naming_the_file_and_line(
    line: int, column: int, value: str, message: str
) -> None:
    lines = rows(100)
    fields = lines[line - 1].split(",")
    fields[column] = value
    lines[line - 1] = ",".join(fields)
    with pytest.raises(CandleDataInvalid, match=f"data.csv: {message}"):
        parse_ohlcv_csv("\n".join(lines), source="data.csv")


def test_missing_columns_unordered_time_and_too_few_rows_are_refused() -> None:
    with pytest.raises(CandleDataInvalid, match="line 1: missing column"):
        parse_ohlcv_csv("time,open,high,low,close\n", source="d.csv")
    lines = rows(100)
    lines[10], lines[11] = lines[11], lines[10]
    with pytest.raises(CandleDataInvalid, match=r"line 12: timestamp .* is not after"):
        parse_ohlcv_csv("\n".join(lines), source="d.csv")
    with pytest.raises(CandleDataInvalid, match="too few candles"):
        parse_ohlcv_csv("\n".join(rows(10)), source="d.csv")


def test_a_field_past_the_csv_size_limit_is_refused_naming_the_line() -> None:
    text = "timestamp,open,high,low,close,volume\n" + "1," + "9" * 200_000 + ",1,1,1,1\n"
    with pytest.raises(CandleDataInvalid, match=r"^data\.csv: line 2: field larger"):
        parse_ohlcv_csv(text, source="data.csv")


def test_the_ccxt_json_array_reads_as_the_same_candles_as_its_csv() -> None:
    import json  # noqa: PLC0415

    from domain.market_data import parse_ohlcv  # noqa: PLC0415

    csv_candles = sample()
    rows = [
        [int(t.timestamp() * 1000), o, h, low, c, v]
        for t, o, h, low, c, v in zip(
            csv_candles.timestamps,
            csv_candles.open.tolist(),
            csv_candles.high.tolist(),
            csv_candles.low.tolist(),
            csv_candles.close.tolist(),
            csv_candles.volume.tolist(),
            strict=True,
        )
    ]
    from_json = parse_ohlcv(json.dumps(rows), source="ccxt.json")
    assert from_json.timestamps == csv_candles.timestamps
    assert (from_json.close == csv_candles.close).all()
    rows[70][1] = None
    with pytest.raises(CandleDataInvalid, match=r"bad\.json: line 1, candle 71: open"):
        parse_ohlcv(json.dumps(rows), source="bad.json")
