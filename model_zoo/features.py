"""Frozen CNN features -> gradient-boosted trees (a strong, cheap baseline on top of any backbone).

``extract_features`` runs a model's pooled ``forward_features`` over rendered images in
batches; ``fit_gbm_on_features`` fits LightGBM (extra ``[train]``) or sklearn's
HistGradientBoostingClassifier on them and reports validation metrics beside the
majority-class rate, so a collapsed or no-skill fit is visible at once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from effnet_trading.errors import DataError, SpecError, require

__all__ = ["extract_features", "fit_gbm_on_features", "make_gbm_classifier"]


def _as_float_images(images: np.ndarray) -> np.ndarray:
    """``(N, C, H, W)`` uint8 (0..255) or float in [0, 1] -> float32 in [0, 1]."""
    images = np.asarray(images)
    if images.ndim != 4:
        raise DataError(
            f"images must be (N, C, H, W); got shape {images.shape}. Render them with effnet_trading.imaging.render."
        )
    if images.dtype == np.uint8:
        return images.astype(np.float32) / np.float32(255.0)
    return images.astype(np.float32, copy=False)


def _batched(
    fn: Callable[[torch.Tensor], torch.Tensor],
    images: np.ndarray,
    batch_size: int,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> np.ndarray:
    """Run ``fn`` on ``(x - mean) / std`` in batches without gradients; returns ``(N, ...)`` float32 numpy."""
    c = np.asarray(images).shape[1] if np.asarray(images).ndim == 4 else 0
    m = torch.tensor(mean if mean is not None else [0.0] * c, dtype=torch.float32).view(1, -1, 1, 1)
    s = torch.tensor(std if std is not None else [1.0] * c, dtype=torch.float32).view(1, -1, 1, 1)
    out = []
    with torch.no_grad():
        for i in range(0, len(images), batch_size):
            x = torch.from_numpy(_as_float_images(images[i : i + batch_size]))
            out.append(fn((x - m) / s).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0,), np.float32)


def extract_features(
    model: nn.Module,
    images: np.ndarray,
    batch_size: int = 256,
    index: Sequence | pd.Index | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> pd.DataFrame:
    """Pooled ``model.forward_features`` of ``(N, C, H, W)`` images -> DataFrame ``(N, F)``, columns ``f0..f{F-1}``.

    Images are uint8 (0..255) or float in [0, 1]; pass the training ``mean``/``std`` to normalise
    as the model saw its inputs. ``index`` labels the rows (e.g. bar timestamps); default 0..N-1.
    """
    if not hasattr(model, "forward_features"):
        raise SpecError(f"{type(model).__name__} has no forward_features; use a registry model (create_model(...)).")
    if index is not None and len(index) != len(images):
        raise DataError(f"index has {len(index)} labels for {len(images)} images; pass one label per image.")
    if len(images) == 0:
        raise DataError("no images to extract features from.")
    was_training = model.training
    model.eval()
    try:
        feats = _batched(lambda x: model.forward_features(x).flatten(1), images, batch_size, mean, std)
    finally:
        model.train(was_training)
    return pd.DataFrame(
        feats, index=pd.Index(index) if index is not None else None, columns=[f"f{i}" for i in range(feats.shape[1])]
    )


def make_gbm_classifier(kind: str = "lightgbm", seed: int = 0, **params: Any):
    """Unfitted gradient-boosted-trees classifier (balanced class weights, shallow trees);
    ``params`` override the defaults. kind: "lightgbm" or "sklearn" (HistGradientBoosting)."""
    if kind == "lightgbm":
        lgb = require("lightgbm", "train")
        base = {
            "n_estimators": 300,
            "learning_rate": 0.05,
            "num_leaves": 15,
            "min_child_samples": 20,
            "subsample": 0.8,
            "subsample_freq": 1,
            "colsample_bytree": 0.8,
            "class_weight": "balanced",
            "random_state": seed,
            "n_jobs": 2,
            "verbose": -1,
        }
        return lgb.LGBMClassifier(**(base | params))
    if kind == "sklearn":
        require("sklearn", "train")
        from sklearn.ensemble import HistGradientBoostingClassifier

        base = {
            "max_iter": 300,
            "learning_rate": 0.05,
            "max_leaf_nodes": 15,
            "class_weight": "balanced",
            "early_stopping": False,
            "random_state": seed,
        }
        return HistGradientBoostingClassifier(**(base | params))
    raise SpecError(f"kind={kind!r} is unknown; use 'lightgbm' (pip install \"effnet-trading[train]\") or 'sklearn'.")


def _xy(x, y, what: str) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y)
    if x.ndim != 2 or len(x) != len(y) or len(x) == 0:
        raise DataError(f"{what}: features must be (N, F) with one label per row; got {x.shape} and {len(y)} labels.")
    if not np.isfinite(x).all():
        raise DataError(f"{what}: features contain NaN/inf; drop those rows first (np.isfinite(X).all(1)).")
    return x, y.astype(np.int64)


def fit_gbm_on_features(
    train_X, train_y, valid_X, valid_y, kind: str = "lightgbm", seed: int = 0, **params
) -> tuple[Any, dict[str, float]]:
    """Fit gradient-boosted trees on frozen features; returns ``(fitted, metrics)``.

    metrics: ``accuracy``, ``balanced_accuracy``, ``log_loss`` and ``majority_rate`` (share of the
    most common class in ``valid_y``, the no-skill accuracy) on the validation rows, plus
    ``n_train``/``n_valid``. ``params`` override the classifier's defaults.
    """
    xt, yt = _xy(train_X, train_y, "train")
    xv, yv = _xy(valid_X, valid_y, "valid")
    if len(np.unique(yt)) < 2:
        raise DataError(f"train labels hold a single class {np.unique(yt).tolist()}; a classifier needs at least two.")
    model = make_gbm_classifier(kind, seed, **params).fit(xt, yt)
    from sklearn.metrics import balanced_accuracy_score, log_loss

    proba = model.predict_proba(xv)
    pred = np.asarray(model.classes_)[proba.argmax(1)]
    metrics = {
        "accuracy": float(np.mean(pred == yv)),
        "balanced_accuracy": float(balanced_accuracy_score(yv, pred)),
        "log_loss": float(log_loss(yv, proba, labels=model.classes_)),
        "majority_rate": float(np.bincount(yv).max() / len(yv)),
        "n_train": int(len(yt)),
        "n_valid": int(len(yv)),
    }
    return model, metrics
