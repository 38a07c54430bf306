"""Chart patterns: generator geometry (noise-free samples), determinism, a compact model learning the
synthetic classes in CI time, detection merging, forward returns, scorer/backtest and the CLI."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from effnet_trading.applications.chart_patterns import (
    PatternTrainConfig,
    forward_returns,
    merge_detections,
    train_patterns,
)
from effnet_trading.applications.pattern_data import PATTERN_CLASSES, PatternConfig, make_patterns, pattern_dataset
from effnet_trading.errors import SpecError
from effnet_trading.imaging import ImageSpec

CLEAN = PatternConfig(window=64, noise=(0.0, 0.0), trend=(0.0, 0.0), occlude=0.0, seed=3)


def _extrema(x: np.ndarray, ends: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Local maxima and minima (plateaus count once, at their first bar); ``ends``: the first and last
    bars count too (as a peak or a trough by their neighbour)."""
    d = np.sign(np.diff(x))
    d[d == 0] = 1e-9
    for i in range(1, len(d)):  # carry the last direction over flat steps
        if abs(d[i]) < 1:
            d[i] = d[i - 1]
    turn = np.flatnonzero(np.diff(d) != 0) + 1
    peaks = turn[d[turn - 1] > 0]
    troughs = turn[d[turn - 1] < 0]
    if ends:
        first, last = np.array([0]), np.array([len(x) - 1])
        peaks = np.r_[first if d[0] < 0 else [], peaks, last if d[-1] > 0 else []].astype(int)
        troughs = np.r_[first if d[0] > 0 else [], troughs, last if d[-1] < 0 else []].astype(int)
    return peaks, troughs


@pytest.fixture(scope="module")
def clean():
    ps = make_patterns(13 * 12, CLEAN)
    out = {}
    for i, lab in enumerate(ps.labels):
        s, e = ps.spans[i]
        x = np.log(ps.bars[i, :, 3])
        out.setdefault(PATTERN_CLASSES[lab], []).append(x[s : e + 1] - x[s] if s >= 0 else x)
    return out


@pytest.mark.parametrize("name,sign", [("head_and_shoulders", 1), ("inverse_head_and_shoulders", -1)])
def test_head_and_shoulders_geometry(clean, name, sign):
    for x in clean[name]:
        x = sign * x
        peaks, troughs = _extrema(x)
        assert len(peaks) == 3, peaks
        left, head, right = x[peaks]
        height = head - x[0]
        assert head > max(left, right) + 0.1 * height  # the head is the highest peak
        assert abs(left - right) <= 0.16 * height  # shoulders of similar height
        neck = troughs[(troughs > peaks[0]) & (troughs < peaks[2])]
        assert len(neck) == 2 and x[neck].max() < min(left, right)  # a neckline below both shoulders
        assert x[-1] < x[neck].min()  # the last leg breaks the neckline


@pytest.mark.parametrize("name,sign", [("double_top", 1), ("double_bottom", -1)])
def test_double_top_geometry(clean, name, sign):
    for x in clean[name]:
        x = sign * x
        peaks, troughs = _extrema(x)
        assert len(peaks) == 2
        height = x[peaks].max() - x[0]
        assert abs(x[peaks[0]] - x[peaks[1]]) <= 0.06 * height  # two peaks within the tolerance
        mid = troughs[(troughs > peaks[0]) & (troughs < peaks[1])]
        assert len(mid) == 1 and x[mid[0]] < x[peaks].min() - 0.3 * height


@pytest.mark.parametrize(
    "name,highs,lows",
    [
        ("ascending_triangle", "flat", "up"),
        ("descending_triangle", "down", "flat"),
        ("symmetric_triangle", "down", "up"),
    ],
)
def test_triangle_geometry(clean, name, highs, lows):
    for x in clean[name]:
        peaks, troughs = _extrema(x, ends=True)
        height = x.max() - x.min()
        assert len(peaks) >= 2 and len(troughs) >= 2
        for idx, want in ((peaks, highs), (troughs, lows)):
            d = np.diff(x[idx])
            if want == "flat":
                assert np.ptp(x[idx]) <= 0.08 * height
            elif want == "up":
                assert (d > 0).all()
            else:
                assert (d < 0).all()
        # converging: the range between the lines shrinks
        assert x[peaks[-1]] - x[troughs[-1]] < x[peaks[0]] - x[troughs[0]]


@pytest.mark.parametrize("name,sign", [("bull_flag", 1), ("bear_flag", -1), ("bull_pennant", 1), ("bear_pennant", -1)])
def test_flag_and_pennant_geometry(clean, name, sign):
    for x in clean[name]:
        x = sign * x
        peaks, troughs = _extrema(x)
        pole = x[peaks[0]] - x[0]
        assert peaks[0] <= 0.4 * len(x) and pole > 0  # a steep pole first
        highs, lows = x[peaks], x[troughs[troughs > peaks[0]]]
        assert np.ptp(np.r_[highs, lows]) < 0.45 * pole  # the consolidation is small beside the pole
        assert (np.diff(highs) < 0).all()  # highs fall in both
        if "flag" in name:
            assert (np.diff(lows) < 0).all()  # parallel channel: lows fall too
        else:
            assert (np.diff(lows) > 0).all()  # pennant: lows rise


def test_cup_and_handle_geometry(clean):
    for x in clean["cup_and_handle"]:
        peaks, troughs = _extrema(x)
        bottom = troughs[0]
        rim = peaks[0]
        depth = x[0] - x[bottom]
        assert depth > 0 and abs(x[rim] - x[0]) <= 0.06 * depth  # two rims at about the same level
        cup = x[: rim + 1]
        low_fifth = np.mean(cup <= x[bottom] + 0.2 * depth)
        assert low_fifth >= 0.3  # rounded, not a V (a V spends 20 % of its bars in its lowest fifth)
        handle = x[rim:]
        assert 0.1 * depth < x[rim] - handle.min() < 0.4 * depth  # a shallow handle


def test_no_pattern_and_spans():
    ps = make_patterns(130, PatternConfig(window=32, seed=1, distractor=0.0))
    none = ps.labels == PATTERN_CLASSES.index("no_pattern")
    assert (ps.spans[none] == -1).all() and (ps.clean[none] == 0).all()
    jumps = make_patterns(130, PatternConfig(window=32, seed=1, distractor=1.0))
    assert (jumps.spans[none] == -1).all() and (np.abs(jumps.clean[none][:, -1]) > 0).all()  # a lone jump each
    s, e = ps.spans[~none].T
    assert (s >= 0).all() and (e <= 31).all() and (e - s >= 7).all()
    assert np.bincount(ps.labels, minlength=13).tolist() == [10] * 13  # balanced
    b = ps.bars
    assert (b[..., 1] >= np.maximum(b[..., 0], b[..., 3]) - 1e-9).all() and (b[..., 2] <= b[..., [0, 3]].min(-1)).all()


def test_generator_is_seeded_and_occludes():
    a = make_patterns(52, PatternConfig(window=32, seed=5, occlude=1.0))
    b = make_patterns(52, PatternConfig(window=32, seed=5, occlude=1.0))
    np.testing.assert_array_equal(a.bars, b.bars)
    c = make_patterns(52, PatternConfig(window=32, seed=6))
    assert not np.allclose(a.bars, c.bars)
    starts = a.spans[a.spans[:, 0] >= 0, 0]
    assert (starts == 0).mean() > 0.5  # occluded patterns begin before the window's left edge


def test_bootstrap_background_and_errors(sample_dir):
    close = pd.read_csv(sample_dir / "btcusdt_1h.csv")["close"].to_numpy(float)
    ps = make_patterns(26, PatternConfig(window=32), background=np.diff(np.log(close)))
    assert np.isfinite(ps.bars).all()
    with pytest.raises(SpecError, match="at least"):
        make_patterns(26, PatternConfig(window=32), background=np.zeros(10))
    with pytest.raises(SpecError, match="window"):
        pattern_dataset(ps, ImageSpec("candles", window=40, size=(16, 16)))


TINY = ImageSpec("candles", window=32, size=(32, 32), volume=False)


@pytest.fixture(scope="module")
def pattern_model(tmp_path_factory):
    cfg = PatternTrainConfig(
        PatternConfig(window=32, seed=0),
        TINY,
        n_train=910,
        n_shift=260,
        train={"epochs": 4, "lr": 4e-3, "batch_size": 64, "model_kwargs": {"widths": (16, 32, 48)}},
    )
    return train_patterns(cfg, tmp_path_factory.mktemp("patterns"))


def test_compact_model_learns_patterns_well_above_chance(pattern_model):
    m = pattern_model.metrics
    chance = 1 / len(PATTERN_CLASSES)
    assert m["test"]["accuracy"] > 3 * chance, m["test"]["accuracy"]
    assert m["shift_test"]["accuracy"] > 2 * chance
    assert len(m["test"]["confusion"]) == len(PATTERN_CLASSES)
    assert m["shift_test"]["generator"]["noise"] != list(PatternConfig().noise)  # other noise and lengths
    assert pattern_model.model_dir.joinpath("card.json").read_text().count("shift_test") == 1


def test_model_folder_is_a_scorer_and_backtests(pattern_model, sample_dir):
    from effnet_trading.applications.chart_patterns import scan_patterns
    from effnet_trading.applications.signals import DetectionScorer
    from effnet_trading.imaging import load_ohlcv
    from effnet_trading.plugins.backtest import run_backtest
    from effnet_trading.strategies import Policy, SignalModel

    frame = load_ohlcv(sample_dir / "btcusdt_1h.csv").iloc[:400]
    model = SignalModel(pattern_model.model_dir)
    assert model.class_names == PATTERN_CLASSES
    probs, det = scan_patterns(frame, model, min_prob=0.3)
    assert probs.shape == (400, len(PATTERN_CLASSES)) and probs.iloc[:31].isna().all().all()
    assert {"start", "end", "detected_at", "class", "probability"} <= set(det.columns)
    scorer = DetectionScorer(model, long=["inverse_head_and_shoulders", "double_bottom"], short=["head_and_shoulders"])
    p = scorer.predict_proba(frame)
    np.testing.assert_allclose(p.dropna().sum(1), 1.0, atol=1e-6)
    np.testing.assert_allclose(
        p["buy"].dropna(), probs[["inverse_head_and_shoulders", "double_bottom"]].dropna().sum(1), atol=1e-9
    )
    policy = Policy(threshold=0.3, long_only=True, class_names=scorer.class_names)
    for engine in ("vectorbt", "backtrader"):
        out = run_backtest(frame, scorer, engine=engine, policy=policy)
        assert len(out.equity) == len(frame)


def test_merge_detections_merges_runs():
    idx = pd.date_range("2024-01-01", periods=12, freq="h", tz="UTC")
    cls = ["a", "no_pattern"]
    p = np.tile([0.1, 0.9], (12, 1))
    p[3:6] = [0.8, 0.2]  # one run of "a" (bars 3-5)
    p[7] = [0.7, 0.3]  # gap of 1 bar: merged with max_gap=2
    p[0] = np.nan
    det = merge_detections(pd.DataFrame(p, idx, cls), window=4, min_prob=0.6, max_gap=2)
    assert len(det) == 1
    row = det.iloc[0]
    assert row["start"] == idx[0] and row["end"] == idx[7] and row["detected_at"] == idx[3]
    assert row["probability"] == pytest.approx(0.8) and row["n_bars"] == 4
    det = merge_detections(pd.DataFrame(p, idx, cls), window=4, min_prob=0.6, max_gap=1)
    assert len(det) == 2


def test_forward_returns_against_a_loop():
    idx = pd.date_range("2024-01-01", periods=200, freq="h", tz="UTC")
    close = np.exp(np.cumsum(np.random.default_rng(0).normal(0, 0.01, 200))) * 100
    frame = pd.DataFrame({"open": close, "high": close, "low": close, "close": close, "volume": 1.0}, index=idx)
    det = pd.DataFrame({"detected_at": idx[[10, 50, 120]], "class": ["x", "x", "y"]})
    out = forward_returns(frame, det, horizons=(5,))
    x = out[out["class"] == "x"].iloc[0]
    want = [np.log(close[t + 5] / close[t]) for t in (10, 50)]
    assert x["n"] == 2 and x["mean"] == pytest.approx(np.mean(want))
    allbars = out[out["class"] == "all bars"].iloc[0]
    assert allbars["n"] == 195 and allbars["low"] <= allbars["mean"] <= allbars["high"]
    assert out[out["class"] == "y"].iloc[0]["n"] == 1


def test_patterns_cli_train_and_scan(tmp_path, sample_dir, pattern_model):
    from click.testing import CliRunner

    from effnet_trading.plugins.cli import main

    r = CliRunner().invoke(
        main,
        ["patterns", "train", "--out", str(tmp_path / "run"), "--window", "32", "--size", "32", "--n", "130",
         "--n-shift", "26", "--epochs", "1", "--batch-size", "32", "--no-progress"],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert (tmp_path / "run" / "model" / "card.json").is_file() and "shift_test" in r.output
    out, csv = tmp_path / "scan", tmp_path / "bars.csv"
    pd.read_csv(sample_dir / "btcusdt_1h.csv").iloc[:600].to_csv(csv, index=False)
    args = ["patterns", "scan", "--data", str(csv), "--model", str(pattern_model.model_dir)]
    r = CliRunner().invoke(main, [*args, "--out", str(out), "--min-prob", "0.1", "--top", "2"])
    assert r.exit_code == 0, r.output
    det = pd.read_csv(out / "detections.csv")
    assert len(det) > 0 and (out / "forward_returns.csv").is_file()
    assert sorted(p.stem for p in (out / "gallery").glob("*.png")) == sorted(set(det["class"]))
    r = CliRunner().invoke(main, ["patterns", "scan", "--data", str(sample_dir / "btcusdt_1h.csv"), "--model",
                                  str(tmp_path), "--out", str(tmp_path / "x")])  # fmt: skip
    assert r.exit_code == 1 and "card.json" in r.output
