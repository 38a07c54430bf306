"""Chart patterns: train a classifier on synthetic patterns, scan real bars for detections, and measure
whether detections predict anything.

``train_patterns`` renders ``make_patterns`` windows, trains with the zoo's own loop
(``model_zoo.train.train_and_export``) and exports a model folder with a card; the card's metrics hold
per-class precision / recall / F1, the confusion matrix and the class frequencies on held-out generated
windows and on a shift-test set drawn with other noise and length ranges. ``scan_patterns`` scores real
bars causally (the image at bar t uses bars <= t, as ``SignalModel`` renders it) and merges runs of
same-class detections. ``forward_returns`` compares returns after each detected class with the
unconditional ones, with bootstrap intervals.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from effnet_trading.applications.pattern_data import PatternConfig, make_patterns, pattern_dataset, shifted
from effnet_trading.errors import SpecError
from effnet_trading.imaging import ImageSpec

__all__ = [
    "PatternTrainConfig",
    "train_patterns",
    "scan_patterns",
    "merge_detections",
    "forward_returns",
    "NO_PATTERN",
    "per_class_table",
]

NO_PATTERN = "no_pattern"
DETECTION_COLUMNS = ("start", "end", "detected_at", "peak_at", "class", "probability", "n_bars")


@dataclass
class PatternTrainConfig:
    """A pattern-classifier run: generator settings, sample counts and the zoo ``TrainConfig`` fields.

    n_train: generated windows (split 65/15/20 into train/valid/test by the zoo loop); n_shift: the
    shift-test windows. train: extra ``TrainConfig`` fields (model, epochs, lr, batch_size, ...).
    """

    patterns: PatternConfig = field(default_factory=PatternConfig)
    spec: ImageSpec = field(default_factory=lambda: ImageSpec("candles", window=64, size=(64, 64), volume=False))
    n_train: int = 6_500
    n_shift: int = 1_300
    train: dict[str, Any] = field(default_factory=dict)

    def train_config(self):
        """The zoo ``TrainConfig`` this run trains with (classes are balanced: no class weights)."""
        from effnet_trading.model_zoo.train import TrainConfig

        base = {"model": "small_cnn", "epochs": 8, "class_weights": None, "patience": 3, "test_size": 0.2}
        return TrainConfig(**(base | dict(self.train) | {"spec": self.spec, "horizon": 1, "embargo": 0, "folds": 1}))


def _shift_metrics(res, cfg: PatternTrainConfig, background) -> dict:
    """The trained model on the shift-test set (other noise / length / height ranges, other seed)."""
    from effnet_trading.model_zoo.metrics import classification_report

    shift_cfg = shifted(cfg.patterns)
    ds = pattern_dataset(make_patterns(cfg.n_shift, shift_cfg, background=background), cfg.spec)
    report = classification_report(ds.labels, res.predict(ds), ds.class_names, warn=False)
    return {"shift_test": report | {"generator": shift_cfg.to_dict()}}


def train_patterns(
    cfg: PatternTrainConfig, out_dir: str | os.PathLike, *, background: np.ndarray | None = None, progress: bool = False
):
    """Generate, train (zoo loop), export ``out_dir/model`` with a card; returns the zoo ``TrainResult``.

    background: real log-returns to bootstrap backgrounds from (None: GARCH-like backgrounds).
    """
    from effnet_trading.model_zoo.train import train_and_export

    if cfg.spec.history > cfg.patterns.window:
        raise SpecError(
            f"spec window {cfg.spec.window} (history {cfg.spec.history}) exceeds the pattern window "
            f"{cfg.patterns.window}; use the same window for both."
        )
    tcfg = cfg.train_config()
    tcfg.progress = progress
    ds = pattern_dataset(make_patterns(cfg.n_train, cfg.patterns, background=background), cfg.spec)
    ds.label["background"] = "GARCH-like" if background is None else f"block bootstrap of {len(background)} returns"
    return train_and_export(
        None, tcfg, out_dir, dataset=ds, extra_metrics=lambda res: _shift_metrics(res, cfg, background)
    )


def merge_detections(
    probs: pd.DataFrame, window: int, *, min_prob: float = 0.5, max_gap: int | None = None
) -> pd.DataFrame:
    """Per-bar class probabilities -> detections: bars whose top class is a pattern with probability >=
    ``min_prob``; runs of the same class with gaps <= ``max_gap`` bars (default window // 4) are merged.

    Columns: start, end (timestamps of the merged span: the first window's first bar .. the last
    window's last bar), detected_at (first bar the pattern was seen: the causal decision time),
    peak_at (bar of the highest probability), class, probability (highest), n_bars (bars detected).
    """
    max_gap = max(1, window // 4) if max_gap is None else int(max_gap)
    p = probs.to_numpy(np.float64)
    names = np.asarray(probs.columns, dtype=object)
    ok = np.isfinite(p).all(1)
    top = np.where(ok, np.nan_to_num(p).argmax(1), -1)
    conf = np.where(ok, np.nan_to_num(p).max(1), 0.0)
    hit = ok & (conf >= min_prob) & (names[np.maximum(top, 0)] != NO_PATTERN)
    rows, idx = [], probs.index
    run: list[int] = []

    def close_run() -> None:
        if not run:
            return
        peak = run[int(np.argmax(conf[run]))]
        first = max(run[0] - window + 1, 0)
        rows.append((idx[first], idx[run[-1]], idx[run[0]], idx[peak], names[top[peak]], float(conf[peak]), len(run)))

    for i in np.flatnonzero(hit):
        if run and (top[i] != top[run[-1]] or i - run[-1] > max_gap):
            close_run()
            run = []
        run.append(int(i))
    close_run()
    return pd.DataFrame(rows, columns=list(DETECTION_COLUMNS))


def scan_patterns(ohlcv: pd.DataFrame, model, *, min_prob: float = 0.5, max_gap: int | None = None):
    """Score every bar with a pattern model (folder, Predictor or Scorer; causal windows) and merge the
    detections. Returns ``(probs DataFrame, detections DataFrame)``."""
    from effnet_trading.strategies import as_scorer
    from effnet_trading.strategies.signal import canonical_ohlcv

    scorer = as_scorer(model, what="scan_patterns")
    frame = canonical_ohlcv(ohlcv)
    probs = scorer.predict_proba(frame)
    if NO_PATTERN not in probs.columns:
        raise SpecError(
            f"model classes {list(probs.columns)} have no {NO_PATTERN!r} class: pass a chart-pattern model "
            "(from `effnet-trading patterns train`)."
        )
    return probs, merge_detections(probs, int(scorer.warmup) + 1, min_prob=min_prob, max_gap=max_gap)


def _mean(a: np.ndarray, _: np.ndarray) -> float:
    return float(np.mean(a))


def _interval(x: np.ndarray, block: int, seed: int) -> dict[str, float]:
    from effnet_trading.model_zoo.metrics import bootstrap_ci

    ci = bootstrap_ci(x, x, _mean, n=500, block=block, seed=seed)
    return {"mean": ci["estimate"], "low": ci["low"], "high": ci["high"]}


def forward_returns(ohlcv: pd.DataFrame, detections: pd.DataFrame, horizons=(6, 24), *, seed: int = 0) -> pd.DataFrame:
    """Log return from the close of each detection's ``detected_at`` bar to ``h`` bars later, per class,
    beside the unconditional h-bar return of every bar: n, mean with a 95 % bootstrap interval
    (detections resampled singly; all bars in blocks of h, since overlapping returns are correlated),
    median and share of positive returns. One row per (class, horizon), ``class="all bars"`` first."""
    from effnet_trading.strategies.signal import canonical_ohlcv

    frame = canonical_ohlcv(ohlcv)
    logc = np.log(frame["close"].to_numpy(np.float64))
    pos = frame.index.get_indexer(pd.DatetimeIndex(detections["detected_at"])) if len(detections) else np.zeros(0, int)
    rows = []
    for h in horizons:
        h = int(h)
        fwd = np.full(len(logc), np.nan)
        fwd[:-h] = logc[h:] - logc[:-h]
        groups = [("all bars", fwd[np.isfinite(fwd)], h)]
        for name in sorted(set(detections["class"])) if len(detections) else []:
            sel = pos[(detections["class"] == name).to_numpy()]
            groups.append((name, fwd[sel[sel >= 0]][np.isfinite(fwd[sel[sel >= 0]])], 1))
        for name, x, block in groups:
            row = {"class": name, "horizon": h, "n": int(len(x))}
            if len(x) >= 2:
                row |= _interval(x, block, seed) | {"median": float(np.median(x)), "share_up": float(np.mean(x > 0))}
            rows.append(row)
    return pd.DataFrame(rows)


def write_detections(detections: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Detections as CSV (ISO timestamps)."""
    path = Path(path)
    detections.to_csv(path, index=False, date_format="%Y-%m-%dT%H:%M:%SZ")
    return path


def per_class_table(reports: dict[str, dict]) -> pd.DataFrame:
    """One row per class: its frequency (support share) and precision / recall / F1 in each named
    ``classification_report`` (e.g. {"test": ..., "shift": ...})."""
    cols = {}
    for split, r in reports.items():
        for name, v in r["per_class"].items():
            row = cols.setdefault(name, {})
            row[f"{split}_share"] = v["support"] / r["n"]
            for k in ("precision", "recall", "f1"):
                row[f"{split}_{k}"] = v[k]
    return pd.DataFrame.from_dict(cols, orient="index")
