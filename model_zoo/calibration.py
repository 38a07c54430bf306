"""Calibration of class probabilities (numpy only, torch-free): expected calibration error,
reliability-diagram data, and temperature scaling fitted on a validation fold.

Temperature scaling divides the logits by one scalar ``T`` (Guo et al. 2017, "On Calibration of
Modern Neural Networks"). Because ``softmax(z / T)`` equals ``p ** (1 / T)`` renormalised when
``p = softmax(z)``, it is applied to probabilities here: the exported ONNX graph stays unchanged
and the ``Predictor`` rescales its output with the temperature stored in the model card.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from effnet_trading.errors import ModelCardError, TrainingError

__all__ = [
    "DEFAULT_BINS",
    "reliability_bins",
    "ece_from_bins",
    "expected_calibration_error",
    "calibration_report",
    "apply_temperature",
    "fit_temperature",
    "check_calibration",
    "probe_images",
    "check_calibration_probe",
]

DEFAULT_BINS = 15  # as Guo et al. 2017
_TINY = np.finfo(np.float64).tiny
_T_RANGE = (0.05, 20.0)


def _top(proba: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    proba = np.asarray(proba, np.float64)
    return proba.max(1), proba.argmax(1)


def reliability_bins(confidence: np.ndarray, correct: np.ndarray, n_bins: int = DEFAULT_BINS) -> dict[str, list]:
    """Reliability-diagram data over ``n_bins`` equal-width confidence bins on [0, 1].

    Bin ``b`` holds the samples with ``b / n_bins <= confidence < (b + 1) / n_bins`` (the last bin
    also holds confidence 1). Returns lists of length ``n_bins``: ``lower``, ``upper``, ``count``,
    ``confidence`` (mean top-class probability) and ``accuracy`` (share correct), both NaN for an
    empty bin.
    """
    conf = np.asarray(confidence, np.float64).reshape(-1)
    ok = np.asarray(correct, np.float64).reshape(-1)
    if len(conf) != len(ok):
        raise TrainingError(f"confidence has {len(conf)} values but correct has {len(ok)}; pass one per sample.")
    n_bins = int(n_bins)
    if n_bins < 1:
        raise TrainingError(f"n_bins={n_bins} must be >= 1 (e.g. {DEFAULT_BINS}).")
    idx = np.clip((conf * n_bins).astype(np.int64), 0, n_bins - 1)
    count = np.bincount(idx, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(idx, conf, minlength=n_bins) / count
        acc = np.bincount(idx, ok, minlength=n_bins) / count
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    return {
        "lower": edges[:-1].tolist(),
        "upper": edges[1:].tolist(),
        "count": count.tolist(),
        "confidence": mean_conf.tolist(),
        "accuracy": acc.tolist(),
    }


def ece_from_bins(bins: dict[str, list]) -> float:
    """ECE from ``reliability_bins`` output: count-weighted mean |accuracy - confidence| over the bins."""
    count = np.asarray(bins["count"], np.float64)
    if count.sum() == 0:
        return float("nan")
    gap = np.abs(np.nan_to_num(np.asarray(bins["accuracy"])) - np.nan_to_num(np.asarray(bins["confidence"])))
    return float(np.sum(count * gap) / count.sum())


def expected_calibration_error(y_true: np.ndarray, proba: np.ndarray, n_bins: int = DEFAULT_BINS) -> float:
    """Top-label ECE: ``sum_b (n_b / N) * |accuracy_b - confidence_b|`` over equal-width bins (0 = calibrated)."""
    conf, pred = _top(proba)
    return ece_from_bins(reliability_bins(conf, pred == np.asarray(y_true).reshape(-1), n_bins))


def calibration_report(
    y_true: np.ndarray,
    proba: np.ndarray,
    class_names: tuple[str, ...] | list[str] = ("sell", "hold", "buy"),
    n_bins: int = DEFAULT_BINS,
) -> dict[str, Any]:
    """``{"ece", "n_bins", "reliability": reliability_bins(...), "true_shares", "pred_shares"}`` (JSON-ready)."""
    y_true = np.asarray(y_true, np.int64).reshape(-1)
    conf, pred = _top(proba)
    bins = reliability_bins(conf, pred == y_true, n_bins)
    k, n = len(class_names), max(1, len(y_true))
    true_shares, pred_shares = np.bincount(y_true, minlength=k) / n, np.bincount(pred, minlength=k) / n
    return {
        "ece": ece_from_bins(bins),
        "n_bins": int(n_bins),
        "reliability": bins,
        "true_shares": {c: float(true_shares[i]) for i, c in enumerate(class_names)},
        "pred_shares": {c: float(pred_shares[i]) for i, c in enumerate(class_names)},
    }


def apply_temperature(proba: np.ndarray, temperature: float) -> np.ndarray:
    """``softmax(log(p) / T)`` row-wise, i.e. ``softmax(logits / T)``; keeps the dtype of ``proba``."""
    proba = np.asarray(proba)
    z = np.log(np.maximum(proba.astype(np.float64, copy=False), _TINY)) / float(temperature)
    z -= z.max(1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(1, keepdims=True)).astype(proba.dtype if proba.dtype.kind == "f" else np.float64, copy=False)


def _nll(logp: np.ndarray, y: np.ndarray, beta: float) -> float:
    z = logp * beta
    m = z.max(1, keepdims=True)
    lse = m[:, 0] + np.log(np.exp(z - m).sum(1))
    return float(np.mean(lse - z[np.arange(len(y)), y]))


def fit_temperature(y_true: np.ndarray, proba: np.ndarray) -> float:
    """The temperature ``T`` in [0.05, 20] minimising the mean NLL of ``softmax(log(p) / T)`` on ``(y, p)``.

    The NLL is convex in ``1 / T``, so a golden-section search on ``log T`` finds the minimum.
    """
    y = np.asarray(y_true, np.int64).reshape(-1)
    proba = np.asarray(proba, np.float64)
    if proba.ndim != 2 or len(proba) != len(y) or not len(y):
        raise TrainingError(
            f"fit_temperature needs (N, K) probabilities and N labels, N >= 1; got {proba.shape} and {len(y)}."
        )
    logp = np.log(np.maximum(proba, _TINY))
    lo, hi = math.log(_T_RANGE[0]), math.log(_T_RANGE[1])
    g = (math.sqrt(5) - 1) / 2
    a, b = hi - g * (hi - lo), lo + g * (hi - lo)
    fa, fb = _nll(logp, y, math.exp(-a)), _nll(logp, y, math.exp(-b))
    for _ in range(60):  # interval shrinks by 0.618 each step: 1e-12 of 6 units of log T
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - g * (hi - lo)
            fa = _nll(logp, y, math.exp(-a))
        else:
            lo, a, fa = a, b, fb
            b = lo + g * (hi - lo)
            fb = _nll(logp, y, math.exp(-b))
    return float(math.exp((lo + hi) / 2))


def check_calibration(calibration: dict[str, Any]) -> float:
    """The temperature of a card's ``calibration`` record; ModelCardError if the record is malformed."""
    fix = 're-train with `effnet-trading train --calibrate temperature` or remove the "calibration" key'
    if not isinstance(calibration, dict) or calibration.get("method") != "temperature":
        raise ModelCardError(
            f'card.json "calibration" is {calibration!r}; expected {{"method": "temperature", "temperature": T, ...}}: {fix}.'
        )
    t = calibration.get("temperature")
    if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) or t <= 0:
        raise ModelCardError(f'card.json "calibration" temperature {t!r} must be a finite number > 0: {fix}.')
    return float(t)


def probe_images(input_shape: tuple[int, int, int], n: int = 4, seed: int = 0) -> np.ndarray:
    """``(n, C, H, W)`` float32 uniform images from ``default_rng(seed)``: the fixed probe whose calibrated
    probabilities a card records, so ``zoo verify`` can tell whether its temperature was changed."""
    return np.random.default_rng(seed).random((n, *input_shape), dtype=np.float32)


def check_calibration_probe(predictor, atol: float = 1e-4) -> tuple[bool, str] | None:
    """Re-compute the card's recorded probe probabilities with ``predictor`` (its temperature applied).

    None for an uncalibrated card; else ``(ok, line)``. A temperature edited in card.json after
    export (or a record without its probe) fails: the calibrated output no longer matches.
    """
    cal = predictor.card.calibration
    if not cal:
        return None
    t = check_calibration(cal)
    want = np.asarray((cal.get("check") or {}).get("probs", []), np.float64)
    probe = probe_images(tuple(predictor.card.input_shape))
    if want.shape != (len(probe), len(predictor.card.class_names)):
        return False, (
            f'calibration: card.json records no probe probabilities for temperature {t:g} ("check" is missing or '
            "malformed); the record was not written by export. Re-train with --calibrate temperature."
        )
    err = float(np.max(np.abs(predictor.predict(probe).astype(np.float64) - want)))
    if err > atol:
        return False, (
            f"calibration: with temperature {t:g} from card.json the probe probabilities differ by {err:.1e} "
            f"(> {atol:.0e}) from those recorded at export: the temperature (or the model) was changed after "
            "export. Restore card.json or re-train with --calibrate temperature."
        )
    return (
        True,
        f"calibration: temperature {t:g} reproduces the probe probabilities recorded at export (max |dp| {err:.1e})",
    )
