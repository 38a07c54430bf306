"""SignalModel: batched history scoring vs one-bar-at-a-time live scoring, errors, inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from effnet_trading.errors import DataError, SpecError
from effnet_trading.imaging import KINDS, ImageSpec, StackSpec, render
from effnet_trading.strategies import SignalModel, parse_bar


class ImageStatModel:
    """Deterministic stand-in for a network: softmax of image statistics (any spec, no ONNX)."""

    def __init__(self, spec, class_names=("sell", "hold", "buy")):
        self.spec = spec
        self.class_names = class_names
        self.input_shape = (spec.channels, *spec.size)
        self.calls: list[tuple[np.ndarray, np.ndarray | None]] = []

    def predict(self, images, closes=None):
        self.calls.append((images, closes))
        m = images.reshape(len(images), -1).astype(np.float64)
        if images.dtype == np.uint8:  # like Predictor: served images are uint8, scaled by 1/255
            m = m / 255.0
        z = np.stack([m.mean(1), m.std(1), 2.0 * m[:, ::7].mean(1)], 1)[:, : len(self.class_names)]
        e = np.exp(5.0 * z)
        return (e / e.sum(1, keepdims=True)).astype(np.float32)


def _live(sm: SignalModel, frame: pd.DataFrame) -> np.ndarray:
    rows = []
    for _, bar in frame.iterrows():
        out = sm.update(bar)
        rows.append(np.full(len(sm.class_names), np.nan) if out is None else out.to_numpy())
    return np.array(rows)


def test_predict_proba_tiny_model(tiny_model_dir, planted):
    sm = SignalModel(tiny_model_dir)
    frame = planted.iloc[:300]
    probs = sm.predict_proba(frame)
    assert list(probs.columns) == ["sell", "hold", "buy"]
    assert probs.index.equals(frame.index)
    assert sm.warmup == 31
    assert probs.iloc[:31].isna().all().all() and probs.iloc[31:].notna().all().all()
    np.testing.assert_allclose(probs.iloc[31:].sum(axis=1), 1.0, atol=1e-5)
    # independent reference: render everything at once, quantised as training datasets store
    # images (uint8), and call the predictor directly
    ref = sm.model.predict(render(sm.spec, frame, dtype=np.uint8))
    np.testing.assert_allclose(probs.iloc[31:].to_numpy(), ref, atol=1e-6)


def test_update_matches_batch_tiny_model(tiny_model_dir, planted):
    frame = planted.iloc[1000:1300]
    batch = SignalModel(tiny_model_dir).predict_proba(frame).to_numpy()
    live = _live(SignalModel(tiny_model_dir), frame)
    assert np.array_equal(np.isnan(batch), np.isnan(live))
    np.testing.assert_allclose(live, batch, atol=1e-6, equal_nan=True)


SPECS = {
    "gasf": ImageSpec("gasf", window=16, size=(16, 16)),
    "recurrence_returns": ImageSpec("recurrence", window=12, size=(8, 8), returns=True),
    "gadf_15m_returns": ImageSpec(
        "gadf", window=8, size=(8, 8), timeframe="15m", returns=True, fields=("open", "volume")
    ),
    "stack_5m_1h": StackSpec(
        (
            ImageSpec("gasf", window=10, size=(8, 8)),
            ImageSpec("recurrence", window=5, size=(8, 8), timeframe="1h", fields=("open",)),
        )
    ),
}


@pytest.mark.parametrize("offset", [0, 7])
@pytest.mark.parametrize("name", list(SPECS))
def test_update_matches_batch_exactly(planted, name, offset):
    """Including timeframe specs started mid-bucket (offset 7 on 5m bars): the buffer must be long
    enough that the partially covered first higher bar never enters a window."""
    spec = SPECS[name]
    frame = planted.iloc[offset : offset + 260 + (200 if "1h" in name else 0)]
    batch = SignalModel(ImageStatModel(spec)).predict_proba(frame).to_numpy()
    sm = SignalModel(ImageStatModel(spec))
    live = _live(sm, frame)
    assert len(frame) > sm.history  # the ring buffer has wrapped
    assert np.isfinite(batch[-1]).all()
    np.testing.assert_array_equal(live, batch)


@pytest.mark.parametrize("kind", [k for k in KINDS if k != "lob_heatmap"])
def test_update_matches_batch_every_kind(planted, kind):
    """Every OHLCV kind, with a moving average where the kind draws one (its lookback must fit the buffer)."""
    wide = kind in ("candles", "ohlc_bars")
    spec = ImageSpec(kind, window=12, size=(16, 36) if wide else (12, 12), ma=5 if wide else 0, timeframe="15m")
    frame = planted.iloc[4:204]
    batch = SignalModel(ImageStatModel(spec)).predict_proba(frame).to_numpy()
    live = _live(SignalModel(ImageStatModel(spec)), frame)
    assert np.isfinite(batch[-1]).all()
    np.testing.assert_array_equal(live, batch)


def _random_bars_with_gaps(n: int, seed: int) -> pd.DataFrame:
    """Random-walk 5m bars starting mid-hour, with ~3 % of bars and one whole 2-hour stretch missing."""
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.003, n)))
    open_ = np.r_[100.0, close[:-1]]
    frame = pd.DataFrame(
        {
            "open": open_,
            "high": np.maximum(open_, close) * (1 + rng.uniform(0, 0.002, n)),
            "low": np.minimum(open_, close) * (1 - rng.uniform(0, 0.002, n)),
            "close": close,
            "volume": rng.uniform(1, 5, n),
        },
        index=pd.date_range("2024-03-01 00:35", periods=n, freq="5min", tz="UTC", name="timestamp"),
    )
    keep = rng.random(n) > 0.03
    keep[200:224] = False  # two hours without data: empty 15m and 1h buckets
    keep[:2] = True
    return frame[keep]


@pytest.mark.parametrize("seed", [0, 1])
def test_incremental_timeframe_update_equals_the_full_resample(seed):
    """update() keeps per-timeframe partial bars instead of resampling its buffer: on random bars with
    gaps it must give exactly what predict_proba gets from resampling the whole history."""
    spec = StackSpec(
        (
            ImageSpec("gasf", window=6, size=(6, 6), returns=True),
            ImageSpec("gadf", window=5, size=(6, 6), timeframe="15m", fields=("open", "high")),
            ImageSpec("candles", window=3, size=(6, 6), timeframe="1h", ma=2, volume=False, color="grey"),
        )
    )
    frame = _random_bars_with_gaps(500, seed)
    batch = SignalModel(ImageStatModel(spec)).predict_proba(frame).to_numpy()
    sm = SignalModel(ImageStatModel(spec))
    live = _live(sm, frame)
    assert len(frame) > sm.history and np.isfinite(batch[-200:]).all()
    np.testing.assert_array_equal(live, batch)


def test_timeframe_buffer_without_margin_would_differ(planted):
    """The history margin matters: scoring from only window * ratio bars (a partial first higher
    bar inside the window) gives different numbers from the full history."""
    spec = ImageSpec("gasf", window=8, size=(8, 8), timeframe="15m", fields=("open",))  # a partial bar's open differs
    frame = planted.iloc[:400]
    sm = SignalModel(ImageStatModel(spec), base_interval="5m")
    assert sm.history >= (8 + 1) * 3 + 2
    t = 397  # 5m bar 397 is the 2nd bar of a 15m bucket (the series starts on a bucket boundary)
    assert frame.index[0].minute % 15 == 0 and t % 3 == 1
    full = sm.predict_proba(frame).to_numpy()[t]
    short = frame.iloc[t - 8 * 3 + 1 : t + 1]  # window * ratio bars: the oldest higher bar is partial
    cut = sm.predict_proba(short).to_numpy()[-1]
    assert np.isfinite(full).all() and np.isfinite(cut).all()
    assert not np.allclose(full, cut, equal_nan=True)


def test_chunking_does_not_change_results(planted):
    spec = SPECS["gasf"]
    frame = planted.iloc[:500]
    a = SignalModel(ImageStatModel(spec), chunk=7).predict_proba(frame)
    b = SignalModel(ImageStatModel(spec)).predict_proba(frame)
    np.testing.assert_array_equal(a.to_numpy(), b.to_numpy())


def test_closes_passed_to_model(planted):
    model = ImageStatModel(SPECS["gasf"])
    frame = planted.iloc[:100]
    SignalModel(model, chunk=30).predict_proba(frame)
    images = np.concatenate([c[0] for c in model.calls])
    closes = np.concatenate([c[1] for c in model.calls])
    assert closes.shape == (len(images), 16)
    # the window ending at bar 15 (first scored), and the last one ending at bar 99
    np.testing.assert_array_equal(closes[0], frame["close"].to_numpy()[:16])
    np.testing.assert_array_equal(closes[-1], frame["close"].to_numpy()[-16:])


def test_short_history_is_all_nan(planted):
    probs = SignalModel(ImageStatModel(SPECS["gasf"])).predict_proba(planted.iloc[:10])
    assert probs.shape == (10, 3) and probs.isna().all().all()


def test_accepts_aliased_columns_and_time_column(planted):
    raw = planted.iloc[:60].reset_index().rename(columns={"timestamp": "time", "open": "Open", "volume": "vol"})
    probs = SignalModel(ImageStatModel(SPECS["gasf"])).predict_proba(raw)
    ref = SignalModel(ImageStatModel(SPECS["gasf"])).predict_proba(planted.iloc[:60])
    np.testing.assert_array_equal(probs.to_numpy(), ref.to_numpy())


def test_update_accepts_mapping_and_one_row_frame(planted):
    spec = SPECS["gasf"]
    frame = planted.iloc[:40]
    a, b = SignalModel(ImageStatModel(spec)), SignalModel(ImageStatModel(spec))
    for i in range(len(frame)):
        bar = frame.iloc[i]
        ra = a.update({"timestamp": bar.name, **bar.to_dict()})
        rb = b.update(frame.iloc[i : i + 1])
        assert (ra is None) == (rb is None) == (i < 15)
        if ra is not None:
            assert ra.name == bar.name
            np.testing.assert_array_equal(ra.to_numpy(), rb.to_numpy())


def test_update_rejects_non_increasing_and_malformed(planted):
    sm = SignalModel(ImageStatModel(SPECS["gasf"]))
    sm.update(planted.iloc[0])
    sm.update(planted.iloc[1])
    with pytest.raises(DataError, match="not after the previous bar"):
        sm.update(planted.iloc[1])
    with pytest.raises(DataError, match="not after the previous bar"):
        sm.update(planted.iloc[0])
    bad = planted.iloc[2].copy()
    bad["high"] = bad["low"] - 1.0
    with pytest.raises(DataError, match="high < max"):
        sm.update(bad)
    with pytest.raises(DataError, match="missing field"):
        sm.update({"timestamp": planted.index[2], "open": 1.0, "close": 1.0})
    with pytest.raises(DataError, match="no timestamp"):
        sm.update({"open": 1.0, "high": 1.0, "low": 1.0, "close": 1.0, "volume": 0.0})
    with pytest.raises(DataError, match="NaN"):
        sm.update({"timestamp": planted.index[2], "open": 1.0, "high": np.nan, "low": 1.0, "close": 1.0, "volume": 0.0})
    with pytest.raises(DataError, match="one bar"):
        sm.update(planted.iloc[2:4])
    sm.reset()
    assert sm.update(planted.iloc[0]) is None  # after reset, earlier timestamps are fine again


def test_parse_bar_naive_timestamp_is_utc():
    ts, row = parse_bar({"timestamp": "2024-01-01 00:00", "open": 1, "high": 2, "low": 0.5, "close": 1.5, "volume": 3})
    assert str(ts.tz) == "UTC" and row.tolist() == [1, 2, 0.5, 1.5, 3]


def test_bad_model_object_and_timeframe_warmup():
    with pytest.raises(SpecError, match="lacks"):
        SignalModel(object())
    spec = ImageSpec("gasf", window=8, size=(8, 8), timeframe="15m")
    with pytest.raises(SpecError, match="base_interval"):
        SignalModel(ImageStatModel(spec)).warmup
    sm = SignalModel(ImageStatModel(spec), base_interval="5m")
    assert sm.warmup == 8 * 3 - 1


def test_failover_rule_member_gets_close_windows(tiny_model_dir, planted):
    """When the ONNX member fails, the rule-based fallback answers from the ``closes`` windows the
    SignalModel passes (L = spec window, ending at each scored bar) — batch and live alike."""
    from effnet_trading.model_zoo.failover import FailoverPredictor, RuleBasedPredictor
    from effnet_trading.model_zoo.runtime import Predictor

    class Broken:
        def __init__(self, inner):
            self.spec, self.class_names, self.input_shape, self.name = (
                inner.spec,
                inner.class_names,
                inner.input_shape,
                "broken",
            )

        def predict(self, images, closes=None):
            raise RuntimeError("device lost")

    inner = Predictor(tiny_model_dir)
    rule = RuleBasedPredictor("momentum", lookback=20)
    chain = FailoverPredictor([Broken(inner), rule], cooldown_s=1e9)
    frame = planted.iloc[:120]
    probs = SignalModel(chain).predict_proba(frame)
    close = frame["close"].to_numpy()
    windows = np.stack([close[e - 31 : e + 1] for e in range(31, 120)])
    np.testing.assert_allclose(
        probs.iloc[31:].to_numpy(), RuleBasedPredictor("momentum", lookback=20).predict(None, windows), atol=1e-7
    )
    live = _live(SignalModel(chain), frame)
    np.testing.assert_allclose(live, probs.to_numpy(), atol=1e-7)


@pytest.mark.parametrize(
    "spec",
    [ImageSpec("candles", window=16, size=(32, 32), ma=10), ImageSpec("gasf", window=16, size=(16, 16), returns=True)],
    ids=["candles_ma", "gasf_returns"],
)
def test_warmup_counts_moving_average_and_returns_lookback(planted, spec):
    """warmup is the first bar with a score: MA and return look-back count, not only the window."""
    from effnet_trading.imaging import warmup

    sm = SignalModel(ImageStatModel(spec))
    probs = sm.predict_proba(planted.iloc[:200])
    assert sm.warmup == warmup(spec, planted.iloc[:200]) == spec.history - 1
    assert probs.iloc[: sm.warmup].isna().all().all() and probs.iloc[sm.warmup :].notna().all().all()
