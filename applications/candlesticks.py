"""Candlestick patterns, multi-label: TA-Lib reference labels, an image model with one sigmoid per
pattern, per-bar probabilities and a geometric quality score per detection.

``candle_labels`` runs TA-Lib's candlestick functions (signed output at each bar, named as TA-Lib
names them, e.g. ``CDLENGULFING``: +100 bullish, -100 bearish, 0 none; a few give +-200 for confirmed
patterns). TA-Lib looks at trailing bars only, so the label at bar t uses bars <= t (tested by
perturbing later bars). ``candle_dataset`` pairs each bar's image of the last ``window`` bars with the
0/1 targets ``output != 0``; ``train_candles`` trains it with the zoo's loop (BCE, one sigmoid per
pattern) on a time split and exports a model folder whose card records each pattern's base rate and a
decision threshold tuned on the validation part. ``candle_quality`` is the documented quality measure.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from effnet_trading.errors import SpecError, TrainingError, require
from effnet_trading.imaging import MODEL_INPUT_DTYPE, ImageSpec, StackSpec, iter_render, warmup
from effnet_trading.imaging.spec import AnySpec

__all__ = [
    "CANDLE_PATTERNS",
    "BULLISH",
    "BEARISH",
    "candle_labels",
    "candle_quality",
    "candle_dataset",
    "CandleTrainConfig",
    "train_candles",
    "scan_candles",
    "tune_thresholds",
    "format_pattern_table",
    "candle_spec",
]

# TA-Lib functions used (names as TA-Lib spells them); see docs/applications.md for what each means
CANDLE_PATTERNS: tuple[str, ...] = (
    "CDLDOJI",
    "CDLDRAGONFLYDOJI",
    "CDLGRAVESTONEDOJI",
    "CDLLONGLEGGEDDOJI",
    "CDLSPINNINGTOP",
    "CDLHIGHWAVE",
    "CDLMARUBOZU",
    "CDLLONGLINE",
    "CDLSHORTLINE",
    "CDLBELTHOLD",
    "CDLENGULFING",
    "CDLHARAMI",
    "CDLHAMMER",
    "CDLHANGINGMAN",
    "CDLSHOOTINGSTAR",
    "CDLINVERTEDHAMMER",
    "CDLPIERCING",
    "CDLDARKCLOUDCOVER",
    "CDLMORNINGSTAR",
    "CDLEVENINGSTAR",
    "CDL3WHITESOLDIERS",
    "CDL3BLACKCROWS",
)
# patterns whose meaning is one-sided (for DetectionScorer long=/short=); two-sided ones carry the sign
BULLISH = ("CDLHAMMER", "CDLINVERTEDHAMMER", "CDLPIERCING", "CDLMORNINGSTAR", "CDL3WHITESOLDIERS")
BEARISH = ("CDLHANGINGMAN", "CDLSHOOTINGSTAR", "CDLDARKCLOUDCOVER", "CDLEVENINGSTAR", "CDL3BLACKCROWS")

_LOOKBACK = 15  # bars TA-Lib needs before its first output for these functions (averages over 10 bars + 3-bar patterns)


def _frame(ohlcv) -> pd.DataFrame:
    from effnet_trading.strategies.signal import canonical_ohlcv

    return canonical_ohlcv(ohlcv)


def candle_spec(window: int = 16, size=(32, 48), zoom: int = 3, kind: str = "ohlc_bars") -> AnySpec:
    """The candlestick model's input: ``kind`` bars of the last ``window`` bars (the context TA-Lib's
    averages see) plus, with ``zoom`` > 0, a grey candle channel of the last ``zoom`` bars drawn over the
    whole width. Why the zoom: the pooled CNNs cannot tell *where* in a wide window a small shape is, and a
    label is about the last bar(s); zoomed, their bodies and shadows fill the image (measured: doji AUC
    0.42 without, 0.85 with it, same training)."""
    size = (int(size), int(size)) if isinstance(size, int) else tuple(size)
    base = ImageSpec(kind, window=window, size=size, volume=False, **({"color": "grey"} if kind == "candles" else {}))
    if not zoom:
        return base
    return StackSpec((base, ImageSpec("candles", window=zoom, size=size, volume=False, color="grey")))


def candle_labels(ohlcv, patterns: tuple[str, ...] = CANDLE_PATTERNS) -> pd.DataFrame:
    """``(T, len(patterns))`` int32 DataFrame on the bars' index: TA-Lib's signed output per function."""
    talib = require("talib", "apps")
    frame = _frame(ohlcv)
    bad = [p for p in patterns if not hasattr(talib, p) or not p.startswith("CDL")]
    if bad:
        raise SpecError(f"{bad} are not TA-Lib candlestick functions; use names like {list(CANDLE_PATTERNS[:3])}.")
    o, h, lo, c = (frame[k].to_numpy(np.float64) for k in ("open", "high", "low", "close"))
    return pd.DataFrame({p: getattr(talib, p)(o, h, lo, c).astype(np.int32) for p in patterns}, index=frame.index)


def candle_quality(ohlcv, lookback: int = 10) -> pd.DataFrame:
    """A geometric quality measure per bar (causal): ``body`` = |close - open| / (high - low),
    ``upper`` / ``lower`` = upper / lower shadow over the range, and ``range_rel`` = the bar's range over
    the mean range of the ``lookback`` bars before it (> 1: a bigger bar than usual, so a more telling one)."""
    frame = _frame(ohlcv)
    o, h, lo, c = (frame[k].to_numpy(np.float64) for k in ("open", "high", "low", "close"))
    rng = np.maximum(h - lo, 1e-12)
    prev = pd.Series(h - lo).rolling(lookback).mean().shift(1).to_numpy()
    return pd.DataFrame(
        {
            "body": np.abs(c - o) / rng,
            "upper": (h - np.maximum(o, c)) / rng,
            "lower": (np.minimum(o, c) - lo) / rng,
            "range_rel": (h - lo) / np.where(prev > 0, prev, np.nan),
        },
        index=frame.index,
    )


def candle_dataset(ohlcv, spec: AnySpec, patterns: tuple[str, ...] = CANDLE_PATTERNS, *, last: int | None = None):
    """A multi-label ``model_zoo.dataset.ImageDataset``: the image of the bars ending at t and the 0/1
    targets ``TA-Lib output != 0`` at t, for every bar past warm-up (or the ``last`` ones)."""
    from effnet_trading.model_zoo.dataset import ImageDataset

    frame = _frame(ohlcv)
    labels = candle_labels(frame, patterns)
    first = max(warmup(spec, frame), _LOOKBACK)
    ends = np.arange(first, len(frame), dtype=np.int64)
    if last is not None:
        ends = ends[-int(last) :]
    if len(ends) < 100:
        raise TrainingError(f"{len(ends)} bars past warm-up ({first} bars); pass at least a few thousand bars.")
    images = np.empty((len(ends), spec.channels, *spec.size), np.uint8)
    pos = 0
    for part, imgs in iter_render(spec, frame, ends, dtype=MODEL_INPUT_DTYPE):
        images[pos : pos + len(part)] = imgs
        pos += len(part)
    y = (labels.to_numpy()[ends] != 0).astype(np.float32)
    label = {"rule": "talib_candlestick", "target": "TA-Lib output != 0 at the image's last bar", "multilabel": True}
    return ImageDataset(
        images=images,
        labels=y,
        ends=ends,
        index=frame.index[ends],
        fwd=np.zeros(len(ends)),
        spec=spec,
        horizon=1,
        label=label | {"patterns": list(patterns)},
        dropped={"warmup": int(first), "unlabelled": 0, "kept": int(len(ends))},
        class_names=tuple(patterns),
    )


def tune_thresholds(y: np.ndarray, proba: np.ndarray, grid=np.linspace(0.05, 0.95, 19)) -> np.ndarray:
    """Per label, the threshold of ``grid`` with the best F1 on (validation) targets ``y``. 0.5 without
    positives, or when no threshold beats the F1 of always saying yes (2b / (1 + b) at base rate b): a
    threshold that fires on every bar detects nothing."""
    out = np.full(y.shape[1], 0.5)
    for j in range(y.shape[1]):
        t = y[:, j] > 0.5
        if not t.any():
            continue
        pred = proba[:, j][:, None] >= grid[None, :]
        tp = (pred & t[:, None]).sum(0)
        f1 = 2 * tp / np.maximum(pred.sum(0) + t.sum(), 1)
        floor = 2 * t.mean() / (1 + t.mean())
        if f1.max() > floor + 0.01:
            out[j] = float(grid[int(np.argmax(f1))])
    return out


@dataclass
class CandleTrainConfig:
    """A candlestick run: image spec, patterns, bars used and the zoo ``TrainConfig`` fields (``train``)."""

    spec: AnySpec = field(default_factory=candle_spec)
    patterns: tuple[str, ...] = CANDLE_PATTERNS
    last: int | None = None  # train on the last N bars only
    train: dict[str, Any] = field(default_factory=dict)

    def train_config(self):
        from effnet_trading.model_zoo.train import TrainConfig

        base = {"model": "small_cnn", "epochs": 6, "class_weights": None, "patience": 2, "test_size": 0.2}
        return TrainConfig(**(base | dict(self.train) | {"spec": self.spec, "horizon": 1, "embargo": 0, "folds": 1}))


def _tuned(res) -> dict:
    """Thresholds tuned for F1 on the validation part, and the test metrics at those thresholds."""
    from effnet_trading.model_zoo.metrics import multilabel_report

    ds, sp = res.dataset, res.split
    if sp.valid is None or not len(sp.valid):
        return {}
    thr = tune_thresholds(ds.labels[sp.valid], res.predict(ds, sp.valid))
    test = multilabel_report(ds.labels[sp.test], res.test_proba, ds.class_names, thresholds=thr)
    return {"thresholds": dict(zip(ds.class_names, thr.tolist())), "test_tuned": test}


def train_candles(ohlcv, cfg: CandleTrainConfig, out_dir: str | os.PathLike, *, progress: bool = False):
    """Label with TA-Lib, train the multi-label model (zoo loop, time split: train / valid / test in bar
    order), export ``out_dir/model``; returns the zoo ``TrainResult`` (metrics: per-pattern precision,
    recall, F1, AUC and base rate at 0.5 and at validation-tuned thresholds)."""
    from effnet_trading.model_zoo.train import train_and_export

    tcfg = cfg.train_config()
    tcfg.progress = progress
    ds = candle_dataset(ohlcv, cfg.spec, tuple(cfg.patterns), last=cfg.last)
    return train_and_export(None, tcfg, out_dir, dataset=ds, extra_metrics=_tuned)


def scan_candles(ohlcv, model, *, thresholds: dict[str, float] | float | None = None):
    """Per-bar probabilities (one column per TA-Lib name) and detections: bars where a pattern's
    probability reaches its threshold (the card's validation-tuned ones by default, else 0.5), with the
    quality measure of that bar. Returns ``(probs, detections)``; detections columns: timestamp,
    pattern, probability, body, upper, lower, range_rel."""
    from effnet_trading.strategies import as_scorer

    scorer = as_scorer(model, what="scan_candles")
    frame = _frame(ohlcv)
    probs = scorer.predict_proba(frame)
    if thresholds is None:
        card = getattr(getattr(scorer, "model", None), "card", None)
        thresholds = dict(getattr(card, "metrics", {}).get("thresholds", {})) or 0.5
    thr = {c: float(thresholds) for c in probs.columns} if not isinstance(thresholds, dict) else thresholds
    quality = candle_quality(frame)
    rows = []
    for c in probs.columns:
        hit = probs[c].to_numpy() >= thr.get(c, 0.5)
        sub = pd.DataFrame({"timestamp": probs.index[hit], "pattern": c, "probability": probs[c].to_numpy()[hit]})
        rows.append(pd.concat([sub.reset_index(drop=True), quality[hit].reset_index(drop=True)], axis=1))
    det = pd.concat(rows, ignore_index=True).sort_values(["timestamp", "pattern"], ignore_index=True)
    return probs, det


def format_pattern_table(test: dict, tuned: dict | None = None) -> str:
    """Per pattern: base rate, AUC, P/R/F1 at 0.5 and (if given) at the validation-tuned threshold."""
    head = f"{'pattern':<20}{'base':>7}{'AUC':>7}{'P@.5':>7}{'R@.5':>7}{'F1@.5':>7}"
    head += f"{'thr':>6}{'P':>7}{'R':>7}{'F1':>7}" if tuned else ""
    rows = [head]
    for name, v in test["per_label"].items():
        row = (
            f"{name:<20}{v['base_rate']:>7.3f}{v['auc']:>7.3f}{v['precision']:>7.3f}{v['recall']:>7.3f}{v['f1']:>7.3f}"
        )
        if tuned:
            t = tuned["per_label"][name]
            row += f"{t['threshold']:>6.2f}{t['precision']:>7.3f}{t['recall']:>7.3f}{t['f1']:>7.3f}"
        rows.append(row)
    return "\n".join(rows)
