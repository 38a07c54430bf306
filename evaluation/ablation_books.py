"""The ``orderbook`` ablation: candles vs candles + one order-book channel (``evaluation.ablation``).

Arm ``candles`` is the main run's model of the first of ``--models`` (its exported ONNX model,
re-scored through the runtime exactly as the main run scored it). Arm ``candles + book`` is the
same model trained per fold with the run's ``TrainConfig`` on the same training samples (the main
run's ``_Fold.training_set``), whose images carry one more channel: for the bar opening at ``t``,
``render_lob`` over the last ``window`` book snapshots ending at the last snapshot at or before the
bar's close ``t + bar`` (books read on a grid of one bar, so that snapshot holds every message
received up to the close, and nothing later), bids and asks merged into one channel (their
maximum; asks fill the rows above the decision mid, bids the rows below). It is scored with the
trained torch model (its ONNX card would describe a candles-only input). A bar without a snapshot
inside ``(t, t + bar]`` or without ``window`` snapshots before it gets an empty channel; their
share is recorded.
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from effnet_trading.errors import SpecError

__all__ = ["LOB_LEVELS", "book_channel", "book_bucket_bps", "orderbook_ablation"]

LOB_LEVELS = 20  # depth per side drawn in the book channel


def _closes(book, index: pd.DatetimeIndex, step: pd.Timedelta, window: int) -> tuple[np.ndarray, np.ndarray]:
    """(snapshot position at or before each bar's close, whether it lies in the bar and has ``window`` before it)."""
    stamps = np.asarray(book.timestamps).astype("datetime64[ns]").astype(np.int64)
    close = index.as_unit("ns").asi8 + step.value
    e = np.searchsorted(stamps, close, side="right") - 1
    ok = (e >= window - 1) & (stamps[np.maximum(e, 0)] > close - step.value)
    return e, ok


def book_bucket_bps(book, until, rows: int) -> float:
    """Rows of ``bucket_bps`` such that the median visible depth (best ``LOB_LEVELS`` levels per side) of the
    snapshots before ``until`` spans half the image height: the book's scale, read from the past only."""
    stamps = np.asarray(book.timestamps).astype("datetime64[ns]")
    lv = book.levels[stamps < np.datetime64(pd.Timestamp(until).tz_convert(None).as_unit("ns"))]
    deep = min(LOB_LEVELS, book.levels.shape[1]) - 1
    lv = lv[(lv[:, deep, 1] > 0) & (lv[:, deep, 3] > 0)]
    if not len(lv):
        raise SpecError(
            f"the order book has no snapshot with {deep + 1} levels per side before {until}; the book channel's "
            "price scale is read from the snapshots before the first test window. Pass books over the training span."
        )
    mid = 0.5 * (lv[:, 0, 0] + lv[:, 0, 2])
    return float(np.median((lv[:, deep, 2] - lv[:, deep, 0]) / mid) * 1e4 / (rows / 2))


def book_channel(book, index: pd.DatetimeIndex, step: pd.Timedelta, window: int, size, bucket_bps: float):
    """``(N, 1, H, W)`` uint8 book images for the bars opening at ``index`` and whether each bar has its book.

    Bar ``t``'s image is ``render_lob`` over ``window`` snapshots ending at the last one at or before
    ``t + step`` (module docstring); a bar without one gets zeros."""
    from effnet_trading.imaging import ImageSpec, render_lob

    spec = ImageSpec("lob_heatmap", window=window, size=tuple(size), levels=LOB_LEVELS, bucket_bps=bucket_bps)
    e, ok = _closes(book, index, step, window)
    out = np.zeros((len(index), 1, *spec.size), np.uint8)
    if ok.any():
        out[ok, 0] = render_lob(spec, book, e[ok], dtype=np.uint8).max(axis=1)
    return out, ok


def _paired_classification(y, pa, pb, cfg, block: int, seed: int) -> dict:
    """Accuracy and macro-F1 of both arms beside the majority rate, and ``b - a`` with a paired block bootstrap."""
    from effnet_trading.evaluation.stats import bootstrap_stat
    from effnet_trading.model_zoo.metrics import accuracy, macro_f1

    y, pa, pb = (np.asarray(v, np.int64) for v in (y, pa, pb))
    shares = lambda p: (np.bincount(p, minlength=3) / len(p)).tolist()  # noqa: E731
    out = {
        "n": int(len(y)),
        "majority_rate": float(np.bincount(y, minlength=3).max() / len(y)),
        "true_shares": shares(y),
        **{
            arm: {"accuracy": accuracy(y, p), "macro_f1": macro_f1(y, p, 3), "pred_shares": shares(p)}
            for arm, p in (("candles", pa), ("candles + book", pb))
        },
    }
    for name, f in (("accuracy", accuracy), ("macro_f1", lambda a, b: macro_f1(a, b, 3))):
        ci = bootstrap_stat(
            np.arange(len(y)),
            lambda i, f=f: f(y[i], pb[i]) - f(y[i], pa[i]),
            n=cfg.bootstrap,
            block=min(block, len(y)),
            seed=seed,
        )
        out[f"{name}_difference"] = {k: ci[k] for k in ("estimate", "low", "high")}
    return out


def orderbook_ablation(frame: pd.DataFrame, cfg, real: list[dict], model_root: Path, coverage: dict) -> dict:
    """Candles vs candles + book channel for ``cfg.models[0]`` on the main run's folds (module docstring)."""
    from effnet_trading.evaluation.ablation import _block, _compare, _sim, _span
    from effnet_trading.evaluation.evaluate import _dataset, _Fold, _score, _splits
    from effnet_trading.imaging import infer_interval
    from effnet_trading.imaging.lob import read_books
    from effnet_trading.model_zoo.train import train_model

    model, spec = cfg.models[0], cfg.spec
    step = infer_interval(frame.index)
    books, _ = read_books(cfg.books, levels=LOB_LEVELS, every_ms=int(step / pd.Timedelta(milliseconds=1)))
    ds = _dataset(frame, cfg)
    index = frame.index[ds.ends]
    # the book behind the most bars (a folder may hold other instruments or days)
    name = max(books, key=lambda b: int(_closes(books[b], index, step, spec.window)[1].sum()))
    first_test = min(pd.Timestamp(rec["test_span"][0]) for rec in real)
    bucket = book_bucket_bps(books[name], first_test + step, spec.size[0])
    channel, has_book = book_channel(books[name], index, step, spec.window, spec.size, bucket)
    ds_b = replace(ds, images=np.concatenate([np.asarray(ds.images), channel], axis=1))
    splits, holdout = _splits(ds, cfg)
    by_fold = {sp.fold: sp for sp in splits}
    free = replace(cfg, fees=0.0, slippage=0.0)
    arms: dict[str, list[np.ndarray]] = {}
    folds, ys, preds = [], [], {"candles": [], "candles + book": []}
    for rec in real:
        fold = _Fold(frame, ds, by_fold[rec["fold"]].test, rec["fold"], cfg, model_root, False, holdout)
        lo, hi = _span(frame, rec)
        if (fold.lo, fold.hi) != (lo, hi):
            raise SpecError(f"fold {rec['fold']}: its test window differs from the saved fold record; rerun evaluate.")
        sub, tcfg = fold.training_set(model, ds_b)
        run_dir = model_root / f"fold_{rec['fold']}" / model
        res = train_model(frame, tcfg, run_dir, dataset=sub)
        shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
        p_a = _score(Path(rec["strategies"][model]["model_dir"]), frame, lo, hi)
        p_b = pd.DataFrame(res.test_proba, index=p_a.index, columns=list(ds.class_names))
        span = frame.iloc[lo : hi + 1]
        row = {
            "fold": rec["fold"],
            "test_span": rec["test_span"],
            "book_share": {  # bars whose image has its book channel
                "train": float(has_book[fold.start : fold.stop].mean()),
                "test": float(has_book[fold.t0 : fold.t1].mean()),
            },
        }
        for arm, probs in (("candles", p_a), ("candles + book", p_b)):
            target = cfg.policy.replace(class_names=tuple(probs.columns)).positions(probs).to_numpy()
            for tag, c in (("", cfg), (" (no fees)", free)):
                r, row[arm + tag] = _sim(span, target, c, step)
                arms.setdefault(arm + tag, []).append(r)
            preds[arm].append(probs.to_numpy().argmax(1))
        ys.append(fold.y)
        folds.append(row)
    shortest = min(hi - lo + 1 for lo, hi in (_span(frame, rec) for rec in real))
    block = _block(frame, cfg)  # a day of bars, as the other ablations; for sub-second bars a day is longer than
    if block > shortest:  # the data: then a tenth of the shortest test window (and at least the label horizon)
        block = max(int(cfg.horizon), shortest // 10)
    pairs = [("candles + book", "candles"), ("candles + book (no fees)", "candles (no fees)")]
    cls = {
        "per_fold": [
            _paired_classification(y, a, b, cfg, block, cfg.seed + k)
            for k, (y, a, b) in enumerate(zip(ys, preds["candles"], preds["candles + book"]))
        ],
        "pooled": _paired_classification(
            np.concatenate(ys),
            np.concatenate(preds["candles"]),
            np.concatenate(preds["candles + book"]),
            cfg,
            block,
            cfg.seed + 9,
        ),
    }
    return {
        "what": f"{model} on candles vs candles + one order-book channel (book {name}; paired per fold)",
        "model": model,
        "book": name,
        "coverage": coverage,
        "channel": {"window": int(spec.window), "levels": LOB_LEVELS, "bucket_bps": bucket, "size": list(spec.size)},
        "block": int(block),
        "folds": folds,
        "classification": cls,
        "differences_bps_per_bar": _compare(arms, pairs, {}, cfg, block),
    }
