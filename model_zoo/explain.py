"""What the model looked at: occlusion maps from the ONNX ``Predictor`` (torch-free), Grad-CAM from
the torch checkpoint (``model_zoo.gradcam``), and both projected from pixels onto the bars they cover.

Maps are ``(N, H, W)`` float32 in [0, 1] (1 = the pixels that mattered most for the explained
class). ``bar_weights`` turns a map into one weight per bar of the window (oldest first, the
decision bar last): candles/ohlc_bars by image column (column c draws bar ``c * window // W``);
GASF/GADF/recurrence by row *and* column (pixel (i, j) relates bars i and j, through the same PAA
segments and nearest-neighbour resize the renderer uses), reduced by ``mean`` (default) or ``max``.
``max`` over a GASF row and column hands one hot pixel (i, j) to every bar of row i and column j, so it
spreads the weight almost evenly; ``mean`` keeps the contrast (measured in tests/test_explain.py).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from effnet_trading.errors import ModelCardError, SpecError
from effnet_trading.imaging._candles import _candle_columns
from effnet_trading.imaging._fields import paa_bounds
from effnet_trading.imaging.spec import AnySpec, ImageSpec, StackSpec

__all__ = [
    "Explanation",
    "occlusion_map",
    "bar_weights",
    "bar_share",
    "spearman",
    "explain",
    "METHODS",
]

METHODS = ("auto", "gradcam", "occlusion")
_ANGULAR = ("gasf", "gadf", "recurrence")
_COLUMNS = ("candles", "ohlc_bars")


@dataclass
class Explanation:
    """Maps for ``images`` (``(N, C, H, W)``), the class each map explains and the model's probabilities."""

    method: str  # "gradcam" or "occlusion"
    maps: np.ndarray  # (N, H, W) float32 in [0, 1]
    target: np.ndarray  # (N,) class index explained
    probs: np.ndarray  # (N, K) the model's probabilities (ONNX)
    bars: np.ndarray  # (N, window) per-bar weights, oldest first
    info: dict[str, Any] = field(default_factory=dict)  # how the maps were made (layer, patch, source)


def occlusion_map(
    predict: Callable[[np.ndarray], np.ndarray],
    images: np.ndarray,
    target: np.ndarray | None = None,
    *,
    patch: int | None = None,
    stride: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Probability drop of the ``target`` class when a ``patch`` x ``patch`` square is set to the image's
    per-channel mean, averaged over the patches covering each pixel; ``(maps (N, H, W), probs (N, K))``.

    predict: ``(N, C, H, W) -> (N, K)`` probabilities (e.g. ``Predictor.predict``). Model-agnostic;
    negative drops (the patch made the class *more* likely) count as 0."""
    images = np.asarray(images, dtype=np.float32)
    n, c, h, w = images.shape
    patch = int(patch or max(2, min(h, w) // 8))
    stride = int(stride or max(1, patch // 2))
    if not 1 <= patch <= min(h, w) or stride < 1:
        raise SpecError(f"occlusion patch {patch} / stride {stride} must be 1..{min(h, w)} / >= 1 pixels.")
    probs = np.asarray(predict(images), dtype=np.float64)
    target = probs.argmax(1) if target is None else np.asarray(target, dtype=np.int64)
    ys = sorted(set(range(0, h - patch + 1, stride)) | {h - patch})
    xs = sorted(set(range(0, w - patch + 1, stride)) | {w - patch})
    cover = np.zeros((h, w))
    for y in ys:
        for x in xs:
            cover[y : y + patch, x : x + patch] += 1
    maps = np.zeros((n, h, w), dtype=np.float32)
    for i in range(n):  # one predict call per image: all its occluded copies in one batch
        base = images[i].mean(axis=(1, 2), keepdims=True)
        batch = np.repeat(images[i : i + 1], len(ys) * len(xs), axis=0)
        k = 0
        for y in ys:
            for x in xs:
                batch[k, :, y : y + patch, x : x + patch] = base
                k += 1
        drop = np.clip(probs[i, target[i]] - np.asarray(predict(batch))[:, target[i]], 0.0, None)
        heat, k = np.zeros((h, w)), 0
        for y in ys:
            for x in xs:
                heat[y : y + patch, x : x + patch] += drop[k]
                k += 1
        maps[i] = heat / cover
    return _normalise(maps), probs.astype(np.float32)


def _normalise(maps: np.ndarray) -> np.ndarray:
    """Scale each map to max 1 (an all-zero map stays zero)."""
    top = maps.reshape(len(maps), -1).max(1)
    return (maps / np.where(top > 0, top, 1.0)[:, None, None]).astype(np.float32)


def _bar_spec(spec: AnySpec) -> ImageSpec:
    """The ImageSpec whose pixel layout maps onto bars (a stack's first member)."""
    return spec.specs[0] if isinstance(spec, StackSpec) else spec


def _pixel_bars(spec: ImageSpec, n_px: int) -> np.ndarray:
    """``(n_px, window)`` bool: which bars each pixel row/column of an angular image covers."""
    side = min(n_px, spec.window)
    field_idx = np.minimum((np.arange(n_px) * side) // n_px, side - 1)  # the renderer's nearest-neighbour resize
    start, stop = paa_bounds(spec.window, side)  # and its PAA segments
    bars = np.arange(spec.window)
    return (bars[None, :] >= start[field_idx, None]) & (bars[None, :] < stop[field_idx, None])


def bar_weights(spec: AnySpec, maps: np.ndarray, how: str = "mean") -> np.ndarray:
    """``(N, H, W)`` maps -> ``(N, window)`` weight per bar of the window (oldest first), by ``how`` in max|mean."""
    spec = _bar_spec(spec)
    if how not in ("max", "mean"):
        raise SpecError(f"bar_weights how={how!r} must be 'max' or 'mean'.")
    maps = np.asarray(maps, dtype=np.float64)
    n, h, w = maps.shape
    red = np.max if how == "max" else np.mean
    if spec.kind in _COLUMNS:
        cols = _candle_columns(spec.window, w)[0]
        prof = red(maps, axis=1)  # (N, W): one value per pixel column
        return np.stack([red(prof[:, cols == b], axis=1) for b in range(spec.window)], axis=1).astype(np.float32)
    if spec.kind in _ANGULAR:
        rows, cols = _pixel_bars(spec, h), _pixel_bars(spec, w)
        row_prof, col_prof = red(maps, axis=2), red(maps, axis=1)  # (N, H), (N, W)
        out = np.empty((n, spec.window))
        for b in range(spec.window):
            both = np.concatenate([row_prof[:, rows[:, b]], col_prof[:, cols[:, b]]], axis=1)
            out[:, b] = red(both, axis=1)
        return out.astype(np.float32)
    raise SpecError(
        f"explain maps pixels onto bars for {list(_COLUMNS + _ANGULAR)} images, not {spec.kind!r} "
        "(order-book columns are snapshots, not bars)."
    )


def bar_share(weights: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Share of each row's total weight on the ``mask`` bars, divided by the mask's share of the bars
    (1 = no more than a uniform map; 2 = twice the weight a uniform map puts there). ``(N,)``."""
    weights = np.asarray(weights, dtype=np.float64)
    mask = np.broadcast_to(np.asarray(mask, dtype=bool), weights.shape)
    total = weights.sum(1)
    share = np.where(total > 0, (weights * mask).sum(1) / np.where(total > 0, total, 1.0), 0.0)
    return share / (mask.sum(1) / mask.shape[1])


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation of two 1-d arrays (average ranks for ties)."""
    import pandas as pd

    ra, rb = pd.Series(np.ravel(a)).rank().to_numpy(), pd.Series(np.ravel(b)).rank().to_numpy()
    if ra.std() == 0 or rb.std() == 0:
        return 0.0
    return float(np.corrcoef(ra, rb)[0, 1])


def explain(
    model_dir: str | os.PathLike,
    images: np.ndarray,
    *,
    method: str = "auto",
    target: np.ndarray | None = None,
    how: str = "mean",
    patch: int | None = None,
) -> Explanation:
    """Maps for ``images`` (``(N, C, H, W)`` float32 in [0, 1], rendered with the card's spec).

    method: ``gradcam`` (needs the train run's checkpoint beside the model folder and torch),
    ``occlusion`` (the ONNX model only), ``auto`` (Grad-CAM where the checkpoint is there, else occlusion).
    target: class index per image; None explains the predicted class."""
    from effnet_trading.model_zoo.card import load_card
    from effnet_trading.model_zoo.runtime import Predictor

    if method not in METHODS:
        raise SpecError(f"explain method {method!r} is unknown; use one of {list(METHODS)}.")
    model_dir = Path(model_dir)
    card = load_card(model_dir)
    pred = Predictor(model_dir, "cpu")
    if method == "auto":
        method = "gradcam" if _has_checkpoint(model_dir) else "occlusion"
    if method == "occlusion":
        maps, probs = occlusion_map(pred.predict, images, target, patch=patch)
        tgt = probs.argmax(1) if target is None else np.asarray(target)
        info = {
            "source": f"{model_dir / 'model.onnx'} (ONNX Runtime)",
            "patch": patch or max(2, min(images.shape[2:]) // 8),
        }
    else:
        if not _has_checkpoint(model_dir):
            raise ModelCardError(
                f"Grad-CAM needs the torch checkpoint of the training run: {model_dir.parent / 'checkpoints'} "
                "does not exist (the train command writes it beside the model folder). Use method='occlusion' "
                "(--method occlusion), which needs only the ONNX model."
            )
        from effnet_trading.model_zoo.gradcam import gradcam_map, load_checkpoint_model

        net, source = load_checkpoint_model(model_dir, card, check_with=pred, images=images[:8])
        maps, tgt, layer = gradcam_map(net, images, target)
        probs = pred.predict(images)
        info = {"source": source, "layer": layer}
    return Explanation(method, maps, np.asarray(tgt), probs, bar_weights(card.spec, maps, how), info | {"bars": how})


def _has_checkpoint(model_dir: Path) -> bool:
    return any((model_dir.parent / "checkpoints").glob("fold_*/epoch_*.pt"))
