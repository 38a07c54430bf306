"""Classification metrics that keep a model honest (numpy only): accuracy beside the
majority-class rate, macro-F1, log-loss, confusion matrix, collapse warning, block bootstrap."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import numpy as np

from effnet_trading.errors import TrainingError
from effnet_trading.model_zoo.calibration import calibration_report

__all__ = [
    "block_indices",
    "CollapseWarning",
    "confusion_matrix",
    "macro_f1",
    "accuracy",
    "log_loss",
    "classification_report",
    "format_report",
    "bootstrap_ci",
    "roc_auc",
    "multilabel_report",
]

_EPS = 1e-15


class CollapseWarning(UserWarning):
    """A classifier predicts (almost) one class only."""


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """``(K, K)`` int64 counts; rows are true classes, columns predicted classes."""
    idx = np.asarray(y_true, np.int64) * n_classes + np.asarray(y_pred, np.int64)
    return np.bincount(idx, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def _prf(cm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    tp = np.diag(cm).astype(float)
    pred, true = cm.sum(0).astype(float), cm.sum(1).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(pred > 0, tp / pred, 0.0)
        recall = np.where(true > 0, tp / true, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    return precision, recall, f1


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Share of exact matches."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    return float(np.mean(y_true == y_pred)) if len(y_true) else float("nan")


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int | None = None) -> float:
    """Unweighted mean F1 over the classes present in ``y_true`` or ``y_pred`` (as scikit-learn)."""
    y_true, y_pred = np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64)
    k = int(n_classes or max(y_true.max(initial=0), y_pred.max(initial=0)) + 1)
    cm = confusion_matrix(y_true, y_pred, k)
    present = (cm.sum(0) + cm.sum(1)) > 0
    return float(_prf(cm)[2][present].mean()) if present.any() else float("nan")


def log_loss(y_true: np.ndarray, proba: np.ndarray) -> float:
    """Mean negative log-likelihood of the true class (rows renormalised, clipped at 1e-15)."""
    proba = np.clip(np.asarray(proba, np.float64), _EPS, 1.0)
    proba = proba / proba.sum(1, keepdims=True)
    y_true = np.asarray(y_true, np.int64)
    return float(-np.mean(np.log(proba[np.arange(len(y_true)), y_true])))


def classification_report(
    y_true: np.ndarray,
    proba: np.ndarray,
    class_names: Sequence[str] = ("sell", "hold", "buy"),
    *,
    collapse_share: float = 0.9,
    warn: bool = True,
) -> dict:
    """Metrics of ``(N, K)`` probabilities against labels ``(N,)`` in ``0..K-1``, JSON-ready.

    Keys: n, accuracy, macro_f1, log_loss, majority_class, majority_rate (from y_true: the
    accuracy of always guessing the commonest class), edge (accuracy - majority_rate),
    confusion (rows true, cols predicted), per_class {name: precision/recall/f1/support},
    pred_shares {name: share}, true_shares {name: share}, collapsed (one class > ``collapse_share`` of
    predictions), warnings, ece (top-label expected calibration error, equal-width bins) and
    reliability (the bins of the reliability diagram, ``calibration.reliability_bins``).
    """
    y_true = np.asarray(y_true, np.int64).reshape(-1)
    proba = np.asarray(proba, np.float64)
    k = len(class_names)
    if proba.ndim != 2 or proba.shape != (len(y_true), k):
        raise TrainingError(
            f"proba must be (N, {k}) = ({len(y_true)}, {k}) for {len(y_true)} labels; got {proba.shape}."
        )
    if len(y_true) == 0:
        raise TrainingError("classification_report needs at least one sample; the evaluated span is empty.")
    if y_true.min() < 0 or y_true.max() >= k:
        raise TrainingError(
            f"labels must lie in 0..{k - 1} (unlabelled bars, -1, must be dropped first); got {y_true.min()}..{y_true.max()}."
        )
    y_pred = proba.argmax(1)
    cm = confusion_matrix(y_true, y_pred, k)
    precision, recall, f1 = _prf(cm)
    support = cm.sum(1)
    shares = cm.sum(0) / len(y_true)
    top = int(np.argmax(support))
    collapsed = bool(shares.max() > collapse_share)
    notes = []
    if collapsed:
        notes.append(
            f"model collapsed: {shares.max():.0%} of predictions are {class_names[int(shares.argmax())]!r} "
            f"(> {collapse_share:.0%}); accuracy {np.mean(y_true == y_pred):.3f} vs majority rate {support[top] / len(y_true):.3f}. "
            "Try class_weights='balanced', a lower lr, more data, or check that the images carry signal."
        )
        if warn:
            warnings.warn(notes[-1], CollapseWarning, stacklevel=2)
    acc = float(np.mean(y_true == y_pred))
    present = (cm.sum(0) + cm.sum(1)) > 0
    cal = calibration_report(y_true, proba, tuple(class_names))
    return {
        "n": int(len(y_true)),
        "accuracy": acc,
        "macro_f1": float(f1[present].mean()),
        "log_loss": log_loss(y_true, proba),
        "majority_class": class_names[top],
        "majority_rate": float(support[top] / len(y_true)),
        "edge": float(acc - support[top] / len(y_true)),
        "confusion": cm.tolist(),
        "per_class": {
            name: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, name in enumerate(class_names)
        },
        "pred_shares": {name: float(shares[i]) for i, name in enumerate(class_names)},
        "true_shares": cal["true_shares"],
        "collapsed": collapsed,
        "warnings": notes,
        "ece": cal["ece"],
        "reliability": cal["reliability"],
    }


def format_report(reports: dict[str, dict]) -> str:
    """A plain-text table: one row per named report (e.g. {"valid": ..., "test": ...})."""
    head = f"{'split':<10}{'n':>8}{'accuracy':>10}{'macro-F1':>10}{'log-loss':>10}{'ECE':>8}{'majority':>10}{'edge':>8}"
    rows = [head, "-" * len(head)]
    for name, r in reports.items():
        flag = "  COLLAPSED" if r.get("collapsed") else ""
        rows.append(
            f"{name:<10}{r['n']:>8d}{r['accuracy']:>10.4f}{r['macro_f1']:>10.4f}{r['log_loss']:>10.4f}{r.get('ece', float('nan')):>8.4f}"
            f"{r['majority_rate']:>10.4f}{r['edge']:>+8.4f}{flag}"
        )
    return "\n".join(rows)


def roc_auc(y_true: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve of ``score`` for binary ``y_true`` (Mann-Whitney U, ties count half); NaN
    when only one class is present."""
    y = np.asarray(y_true).reshape(-1) > 0
    s = np.asarray(score, np.float64).reshape(-1)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s))
    sorted_s = s[order]
    # average ranks over ties
    _, first, counts = np.unique(sorted_s, return_index=True, return_counts=True)
    avg = first + (counts + 1) / 2.0
    ranks[order] = np.repeat(avg, counts)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def multilabel_report(
    y_true: np.ndarray,
    proba: np.ndarray,
    label_names: Sequence[str],
    *,
    thresholds: Sequence[float] | float = 0.5,
) -> dict:
    """Per-label metrics of independent probabilities ``(N, K)`` against 0/1 targets ``(N, K)`` (labels may
    overlap: no argmax), JSON-ready.

    Per label: base_rate (share of positives), precision / recall / f1 at its threshold, auc, support,
    log_loss (binary) and base_log_loss (always predicting the base rate: the number to beat).
    Summary keys: n, macro_f1 and mean_auc (over labels with positives), log_loss and base_log_loss
    (means over labels), edge (base_log_loss - log_loss, > 0 = better than the base rates), warnings.
    """
    y = np.asarray(y_true, np.float64)
    p = np.clip(np.asarray(proba, np.float64), _EPS, 1 - 1e-12)
    k = len(label_names)
    if y.ndim != 2 or y.shape != p.shape or y.shape[1] != k:
        raise TrainingError(f"targets and proba must both be (N, {k}); got {y.shape} and {p.shape}.")
    if len(y) == 0:
        raise TrainingError("multilabel_report needs at least one sample; the evaluated span is empty.")
    thr = np.broadcast_to(np.asarray(thresholds, np.float64), (k,))
    per, notes = {}, []
    for j, name in enumerate(label_names):
        t, q = y[:, j] > 0.5, p[:, j]
        pred = q >= thr[j]
        tp, fp, fn = int((pred & t).sum()), int((pred & ~t).sum()), int((~pred & t).sum())
        prec = tp / (tp + fp) if tp + fp else 0.0
        rec = tp / (tp + fn) if tp + fn else 0.0
        base = float(t.mean())
        b = min(max(base, _EPS), 1 - 1e-12)
        per[name] = {
            "base_rate": base,
            "support": int(t.sum()),
            "threshold": float(thr[j]),
            "precision": float(prec),
            "recall": float(rec),
            "f1": float(2 * prec * rec / (prec + rec)) if prec + rec else 0.0,
            "auc": roc_auc(t, q),
            "log_loss": float(-np.mean(np.where(t, np.log(q), np.log1p(-q)))),
            "base_log_loss": float(-(base * np.log(b) + (1 - base) * np.log1p(-b))),
        }
        if not t.any():
            notes.append(f"{name}: no positives in this span; its precision/recall/AUC say nothing.")
    has = [v for v in per.values() if v["support"] > 0]
    ll = float(np.mean([v["log_loss"] for v in per.values()]))
    base_ll = float(np.mean([v["base_log_loss"] for v in per.values()]))
    return {
        "n": int(len(y)),
        "macro_f1": float(np.mean([v["f1"] for v in has])) if has else float("nan"),
        "mean_auc": float(np.nanmean([v["auc"] for v in has])) if has else float("nan"),
        "log_loss": ll,
        "base_log_loss": base_ll,
        "edge": base_ll - ll,
        "per_label": per,
        "warnings": notes,
    }


_METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {"accuracy": accuracy, "macro_f1": macro_f1}


def block_indices(m: int, block: int, rng: np.random.Generator) -> np.ndarray:
    """``(m,)`` int64 indices of one circular block-bootstrap resample of ``m`` items (blocks of ``block``)."""
    b = max(1, int(block))
    starts = rng.integers(0, m, size=-(-m // b))
    return ((starts[:, None] + np.arange(b)[None, :]) % m).reshape(-1)[:m]


def bootstrap_ci(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    metric: str | Callable[[np.ndarray, np.ndarray], float] = "accuracy",
    n: int = 1000,
    block: int | None = None,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, float]:
    """Percentile bootstrap interval of ``metric(y_true, y_pred)``: {estimate, low, high, std}.

    block: None resamples single samples (i.i.d.); an int resamples circular blocks of that
    many consecutive samples, which keeps the serial dependence of a time series (use about
    the label horizon or more, since neighbouring labels overlap).
    """
    fn = _METRICS[metric] if isinstance(metric, str) else metric
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    m = len(y_true)
    if m == 0 or len(y_pred) != m:
        raise TrainingError(f"bootstrap_ci needs equal, non-empty y_true/y_pred; got {m} and {len(y_pred)}.")
    rng = np.random.default_rng(seed)
    b = max(1, int(block or 1))
    stats = np.empty(int(n))
    for i in range(int(n)):
        idx = block_indices(m, b, rng)
        stats[i] = fn(y_true[idx], y_pred[idx])
    alpha = (1 - level) / 2
    lo, hi = np.quantile(stats, [alpha, 1 - alpha])
    return {
        "estimate": float(fn(y_true, y_pred)),
        "low": float(lo),
        "high": float(hi),
        "std": float(stats.std(ddof=1)),
        "n": int(n),
        "block": b,
    }
