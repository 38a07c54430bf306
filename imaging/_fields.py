"""Field kernels: Gramian Angular Summation/Difference Fields and recurrence plots.

Conventions follow pyts: piecewise aggregate approximation (PAA) to the image size first,
then per-window min-max scaling to [-1, 1]; fields live in [-1, 1] and are mapped to
[0, 1] pixels by (x + 1) / 2.
"""
from __future__ import annotations

import numpy as np

from effnet_trading.imaging._windows import field_series, windows

__all__ = ["paa", "scale_minmax", "gasf", "gadf", "gasf_images", "gadf_images", "recurrence_images"]


def paa(x: np.ndarray, output_size: int) -> np.ndarray:
    """``(N, n)`` -> ``(N, output_size)`` piecewise means (segments as pyts' PAA, non-overlapping)."""
    n = x.shape[1]
    if output_size >= n:
        return x
    bounds = np.linspace(0, n, output_size + 1)
    start = np.floor(bounds[:-1]).astype(np.int64)
    stop = np.ceil(bounds[1:]).astype(np.int64)
    csum = np.concatenate([np.zeros((x.shape[0], 1)), np.cumsum(x, axis=1)], axis=1)
    return (csum[:, stop] - csum[:, start]) / (stop - start)


def scale_minmax(x: np.ndarray) -> np.ndarray:
    """Per-row min-max scaling to [-1, 1]; a flat row maps to -1 (pyts behaviour)."""
    lo = x.min(axis=1, keepdims=True)
    span = x.max(axis=1, keepdims=True) - lo
    return np.where(span > 0, 2.0 * (x - lo) / np.where(span > 0, span, 1.0) - 1.0, -1.0)


def gasf(x_cos: np.ndarray) -> np.ndarray:
    """``(N, n)`` scaled series -> ``(N, n, n)`` cos(phi_i + phi_j) in [-1, 1]."""
    x_sin = np.sqrt(np.clip(1.0 - x_cos**2, 0.0, 1.0))
    return x_cos[:, :, None] * x_cos[:, None, :] - x_sin[:, :, None] * x_sin[:, None, :]


def gadf(x_cos: np.ndarray) -> np.ndarray:
    """``(N, n)`` scaled series -> ``(N, n, n)`` sin(phi_i - phi_j) in [-1, 1]."""
    x_sin = np.sqrt(np.clip(1.0 - x_cos**2, 0.0, 1.0))
    return x_sin[:, :, None] * x_cos[:, None, :] - x_cos[:, :, None] * x_sin[:, None, :]


def _series_windows(spec, bars: np.ndarray, ends: np.ndarray, name: str) -> np.ndarray:
    series = field_series(bars, name)
    if spec.returns:
        logp = np.log(np.maximum(series, 1e-12)) if name != "volume" else np.log1p(series)
        ret = np.concatenate([[0.0], np.diff(logp)])
        return windows(ret, ends, spec.window)
    return windows(series, ends, spec.window)


def _resize_nearest(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    n = img.shape[-1]
    h, w = size
    if (h, w) == (n, n):
        return img
    ri = np.minimum((np.arange(h) * n) // h, n - 1)
    ci = np.minimum((np.arange(w) * n) // w, n - 1)
    return img[..., ri[:, None], ci[None, :]]


def _field_images(spec, bars, ends, field_fn) -> np.ndarray:
    side = min(spec.size[0], spec.window)
    chans = []
    for name in spec.fields:
        x = scale_minmax(paa(_series_windows(spec, bars, ends, name), side))
        chans.append(_resize_nearest(field_fn(x), spec.size))
    out = np.stack(chans, axis=1)
    return ((out + 1.0) * 0.5).astype(np.float32)


def gasf_images(spec, bars: np.ndarray, ends: np.ndarray) -> np.ndarray:
    return _field_images(spec, bars, ends, gasf)


def gadf_images(spec, bars: np.ndarray, ends: np.ndarray) -> np.ndarray:
    return _field_images(spec, bars, ends, gadf)


def recurrence_images(spec, bars: np.ndarray, ends: np.ndarray) -> np.ndarray:
    side = min(spec.size[0], spec.window)
    chans = []
    for name in spec.fields:
        x = paa(_series_windows(spec, bars, ends, name), side)
        d = np.abs(x[:, :, None] - x[:, None, :])
        if spec.threshold is not None:
            img = (d <= spec.threshold).astype(np.float64)
        else:
            dmax = d.max(axis=(1, 2), keepdims=True)
            img = d / np.where(dmax > 0, dmax, 1.0)
        chans.append(_resize_nearest(img, spec.size))
    return np.stack(chans, axis=1).astype(np.float32)
