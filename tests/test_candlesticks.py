"""Candlestick patterns: TA-Lib labels are causal and aligned, the multi-label head beats the base rates
on the frequent patterns, metrics are multi-label (no argmax), the scorer backtests, the CLI runs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import talib

from effnet_trading.applications.candlesticks import (
    CANDLE_PATTERNS,
    CandleTrainConfig,
    candle_dataset,
    candle_labels,
    candle_quality,
    candle_spec,
    train_candles,
    tune_thresholds,
)
from effnet_trading.errors import SpecError
from effnet_trading.imaging import load_ohlcv
from effnet_trading.model_zoo.metrics import multilabel_report, roc_auc

SPEC = candle_spec(12, (24, 36), zoom=3)


@pytest.fixture(scope="module")
def bars(sample_dir) -> pd.DataFrame:
    return load_ohlcv(sample_dir / "btcusdt_1h.csv")


def test_labels_are_talib_outputs(bars):
    lab = candle_labels(bars.iloc[:2000])
    assert list(lab.columns) == list(CANDLE_PATTERNS) and lab.index.equals(bars.index[:2000])
    f = bars.iloc[:2000]
    want = talib.CDLENGULFING(f["open"].to_numpy(), f["high"].to_numpy(), f["low"].to_numpy(), f["close"].to_numpy())
    np.testing.assert_array_equal(lab["CDLENGULFING"].to_numpy(), want)
    assert set(np.unique(lab.to_numpy())) <= {-200, -100, -80, 0, 80, 100, 200}  # 80: TA-Lib's weaker engulfing
    with pytest.raises(SpecError, match="TA-Lib candlestick"):
        candle_labels(f, ("SMA",))


def test_label_at_t_ignores_later_bars(bars):
    """Causal alignment: perturbing every bar after t never changes any label at or before t."""
    f = bars.iloc[:600]
    base = candle_labels(f).to_numpy()
    rng = np.random.default_rng(0)
    for t in (40, 200, 451):
        g = f.copy()
        k = len(g) - t - 1
        scale = np.exp(rng.normal(0, 0.05, (k, 1)))
        body = g.iloc[t + 1 :][["open", "close"]].to_numpy() * scale
        g.iloc[t + 1 :, g.columns.get_loc("open")] = body[:, 0]
        g.iloc[t + 1 :, g.columns.get_loc("close")] = body[:, 1]
        g.iloc[t + 1 :, g.columns.get_loc("high")] = body.max(1) * (1 + rng.uniform(0, 0.01, k))
        g.iloc[t + 1 :, g.columns.get_loc("low")] = body.min(1) * (1 - rng.uniform(0, 0.01, k))
        new = candle_labels(g).to_numpy()
        np.testing.assert_array_equal(new[: t + 1], base[: t + 1])
        assert (new[t + 1 :] != base[t + 1 :]).any()  # the perturbation did change something later


def test_dataset_targets_align_with_image_end(bars):
    f = bars.iloc[:800]
    ds = candle_dataset(f, SPEC)
    lab = candle_labels(f)
    assert ds.multilabel and ds.labels.shape == (len(ds), len(CANDLE_PATTERNS))
    np.testing.assert_array_equal(ds.labels, (lab.to_numpy()[ds.ends] != 0).astype(np.float32))
    assert ds.index.equals(f.index[ds.ends]) and ds.ends[0] >= SPEC.window - 1
    rates = ds.class_balance()
    assert rates["CDLSPINNINGTOP"] == pytest.approx(float(ds.labels[:, CANDLE_PATTERNS.index("CDLSPINNINGTOP")].mean()))


def test_quality_measure(bars):
    q = candle_quality(bars.iloc[:100])
    f = bars.iloc[:100]
    rng = f["high"] - f["low"]
    np.testing.assert_allclose(q["body"] + q["upper"] + q["lower"], 1.0, atol=1e-9)
    np.testing.assert_allclose(q["range_rel"].iloc[20], rng.iloc[20] / rng.iloc[10:20].mean())
    assert q["range_rel"].iloc[:10].isna().all()


def test_roc_auc_and_multilabel_report_against_sklearn():
    from sklearn.metrics import f1_score, roc_auc_score

    rng = np.random.default_rng(1)
    y = (rng.random((500, 3)) < [0.3, 0.05, 0.5]).astype(float)
    p = np.clip(y * 0.3 + rng.random((500, 3)) * 0.7, 0, 1)
    p[:50, 0] = 0.5  # ties
    for j in range(3):
        assert roc_auc(y[:, j], p[:, j]) == pytest.approx(roc_auc_score(y[:, j], p[:, j]))
    r = multilabel_report(y, p, ["a", "b", "c"], thresholds=[0.5, 0.6, 0.4])
    assert r["per_label"]["b"]["f1"] == pytest.approx(f1_score(y[:, 1], p[:, 1] >= 0.6))
    assert r["per_label"]["a"]["base_rate"] == pytest.approx(y[:, 0].mean())
    both = (y[:, 0] > 0) & (y[:, 2] > 0)
    assert both.any()  # overlapping labels are scored as such: no argmax anywhere
    assert np.isnan(roc_auc(np.zeros(5), np.arange(5)))
    thr = tune_thresholds(y, p)
    assert thr.shape == (3,) and ((thr > 0) & (thr < 1)).all()


@pytest.fixture(scope="module")
def candle_model(bars, tmp_path_factory):
    cfg = CandleTrainConfig(
        spec=SPEC,
        last=2000,
        train={"epochs": 4, "lr": 3e-3, "batch_size": 64, "model_kwargs": {"widths": (16, 32, 48)}},
    )
    return train_candles(bars, cfg, tmp_path_factory.mktemp("candles"))


def test_multilabel_head_beats_base_rate_on_frequent_patterns(candle_model):
    test = candle_model.metrics["test"]
    per = test["per_label"]
    frequent = [k for k, v in per.items() if v["base_rate"] >= 0.1]
    assert len(frequent) >= 6
    learned = [k for k in frequent if per[k]["auc"] > 0.7 and per[k]["log_loss"] < per[k]["base_log_loss"]]
    assert len(learned) >= 4, {k: (per[k]["auc"], per[k]["log_loss"], per[k]["base_log_loss"]) for k in frequent}
    assert np.mean([per[k]["auc"] for k in frequent]) > 0.65  # every frequent pattern counted, not argmax
    frequent_ll = np.mean([per[k]["log_loss"] - per[k]["base_log_loss"] for k in frequent])
    assert frequent_ll < 0  # over the frequent patterns together, log-loss below their base rates'
    tuned = candle_model.metrics["test_tuned"]["per_label"]
    floor = {k: 2 * per[k]["base_rate"] / (1 + per[k]["base_rate"]) for k in learned}  # F1 of always saying yes
    assert all(tuned[k]["f1"] > floor[k] for k in learned), {k: (tuned[k]["f1"], floor[k]) for k in learned}
    assert candle_model.metrics["thresholds"].keys() == set(CANDLE_PATTERNS)
    card = candle_model.model_dir / "card.json"
    assert '"output": "sigmoid"' in card.read_text()


def test_candle_scorer_and_backtest(candle_model, bars):
    from effnet_trading.applications.candlesticks import BEARISH, BULLISH, scan_candles
    from effnet_trading.applications.signals import DetectionScorer
    from effnet_trading.plugins.backtest import run_backtest
    from effnet_trading.strategies import Policy, SignalModel

    frame = bars.iloc[-300:]
    model = SignalModel(candle_model.model_dir)
    probs, det = scan_candles(frame, model)
    assert list(probs.columns) == list(CANDLE_PATTERNS)
    row = probs.dropna().to_numpy()
    assert (row >= 0).all() and (row <= 1).all() and not np.allclose(row.sum(1), 1.0)  # independent sigmoids
    assert {"timestamp", "pattern", "probability", "body", "range_rel"} <= set(det.columns)
    scorer = DetectionScorer(model, long=BULLISH, short=BEARISH)
    assert scorer.combine == "max"
    p = scorer.predict_proba(frame).dropna()
    np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-9)
    out = run_backtest(frame, scorer, engine="vectorbt", policy=Policy(threshold=0.2, class_names=scorer.class_names))
    assert len(out.equity) == len(frame)


def test_candles_cli(tmp_path, sample_dir, candle_model):
    from click.testing import CliRunner

    from effnet_trading.plugins.cli import main

    csv = tmp_path / "bars.csv"
    pd.read_csv(sample_dir / "btcusdt_1h.csv").iloc[:600].to_csv(csv, index=False)
    run = CliRunner().invoke
    r = run(main, ["candles", "label", "--data", str(csv), "--out", str(tmp_path / "labels.csv")])
    assert r.exit_code == 0, r.output
    lab = pd.read_csv(tmp_path / "labels.csv")
    assert list(lab.columns) == ["timestamp", *CANDLE_PATTERNS] and len(lab) == 600
    r = run(main, ["candles", "train", "--data", str(csv), "--out", str(tmp_path / "run"), "--window", "12",
                   "--size", "24x36", "--zoom", "2", "--last", "300", "--epochs", "1", "--no-progress"])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "CDLENGULFING" in r.output and (tmp_path / "run" / "model" / "card.json").is_file()
    r = run(main, ["candles", "scan", "--data", str(csv), "--model", str(candle_model.model_dir), "--out",
                   str(tmp_path / "scan"), "--top", "1"])  # fmt: skip
    assert r.exit_code == 0, r.output
    probs = pd.read_csv(tmp_path / "scan" / "probabilities.csv")
    assert list(probs.columns) == ["timestamp", *CANDLE_PATTERNS]
    assert len(list((tmp_path / "scan" / "gallery").glob("*.png"))) >= 1
    r = run(main, ["candles", "label", "--data", str(csv), "--out", str(tmp_path / "x.csv"), "--patterns", "SMA"])
    assert r.exit_code == 1 and "TA-Lib candlestick" in r.output
