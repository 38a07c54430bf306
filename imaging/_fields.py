"""Field kernels: Gramian Angular Summation/Difference Fields and recurrence plots.

Conventions follow pyts exactly, so ``pyts.image`` is the reference implementation:

* PAA (piecewise aggregate approximation) to ``side = min(H, window)`` points first, with
  pyts' non-overlapping segmentation: bounds ``linspace(0, window, side + 1)`` truncated to
  int, segment ``j`` is the mean of ``x[bounds[j]:bounds[j+1]]`` (uneven segments when
  ``side`` does not divide ``window``).
* GASF/GADF: per-window min-max scaling of the PAA series to [-1, 1] (a flat window maps to
  -1, like sklearn's MinMaxScaler); the field ``cos(phi_i +/- phi_j)`` in [-1, 1] becomes the
  pixel ``(field + 1) / 2`` in [0, 1].
* Recurrence: ``|x_i - x_j|`` of the PAA series (no scaling, as pyts). ``threshold=None``
  gives grey levels scaled to [0, 1] by dividing by the window's largest distance;
  a float threshold gives pyts' binary plot ``|x_i - x_j| < threshold`` (raw series units).
* When ``size > window`` the ``window x window`` field is upsampled to ``(H, W)`` by
  nearest neighbour (pixel row ``r`` shows field row ``r * window // H``); likewise when
  ``W != H``.

One channel per entry of ``spec.fields`` (e.g. ``("open", "high", "low", "close", "volume")``
gives five channels); ``spec.returns`` encodes log returns ``log(p_t / p_{t-1})`` (volume:
``log1p`` differences) instead of levels.
"""

from __future__ import annotations

import numpy as np

from effnet_trading.imaging._windows import field_series, windows

__all__ = [
    "paa",
    "paa_bounds",
    "scale_minmax",
    "gasf",
    "gadf",
    "gasf_images",
    "gadf_images",
    "recurrence_images",
]


def paa_bounds(n: int, output_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Segment ``[start, stop)`` indices of pyts' non-overlapping PAA of ``n`` points to ``output_size``."""
    bounds = np.linspace(0, n, output_size + 1).astype(np.int64)
    return bounds[:-1], bounds[1:]


def paa(x: np.ndarray, output_size: int) -> np.ndarray:
    """``(N, n)`` -> ``(N, output_size)`` segment means, segmented exactly as pyts' PAA."""
    n = x.shape[1]
    if output_size >= n:
        return x
    start, stop = paa_bounds(n, output_size)
    csum = np.zeros((x.shape[0], n + 1), dtype=np.float64)
    np.cumsum(x, axis=1, out=csum[:, 1:])
    return (csum[:, stop] - csum[:, start]) / (stop - start)


def scale_minmax(x: np.ndarray) -> np.ndarray:
    """Per-row min-max scaling to [-1, 1]; a flat row maps to -1 (pyts/sklearn behaviour)."""
    lo = x.min(axis=1, keepdims=True)
    span = x.max(axis=1, keepdims=True) - lo
    return np.where(span > 0, 2.0 * (x - lo) / np.where(span > 0, span, 1.0) - 1.0, -1.0)


def _sin(x_cos: np.ndarray) -> np.ndarray:
    return np.sqrt(np.clip(1.0 - x_cos * x_cos, 0.0, 1.0))


def gasf(x_cos: np.ndarray) -> np.ndarray:
    """``(N, n)`` scaled series -> ``(N, n, n)`` cos(phi_i + phi_j) in [-1, 1]."""
    x_sin = _sin(x_cos)
    return x_cos[:, :, None] * x_cos[:, None, :] - x_sin[:, :, None] * x_sin[:, None, :]


def gadf(x_cos: np.ndarray) -> np.ndarray:
    """``(N, n)`` scaled series -> ``(N, n, n)`` sin(phi_i - phi_j) in [-1, 1]."""
    x_sin = _sin(x_cos)
    return x_sin[:, :, None] * x_cos[:, None, :] - x_cos[:, :, None] * x_sin[:, None, :]


def _series_windows(spec, bars: np.ndarray, ends: np.ndarray, name: str) -> np.ndarray:
    """``(N, window)`` float64 values (or log returns) of one field ending at each end."""
    series = field_series(bars, name)
    if not spec.returns:
        return windows(series, ends, spec.window)
    # returns need the bar before the window: render's warm-up guarantees ends >= window
    level = np.log1p(series) if name == "volume" else np.log(series)
    wide = windows(level, ends, spec.window + 1)
    return np.diff(wide, axis=1)


def _pixel_index(size: tuple[int, int], n: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Nearest-neighbour row/column indices from an ``n x n`` field to ``size``; None if identity."""
    h, w = size
    if (h, w) == (n, n):
        return None
    return np.minimum((np.arange(h) * n) // h, n - 1), np.minimum((np.arange(w) * n) // w, n - 1)


def _field_pixels(x_cos: np.ndarray, method: str, out: np.ndarray | None = None) -> np.ndarray:
    """``(N, n)`` scaled series -> ``(N, n, n)`` float32 pixels ``(field + 1) / 2`` via one batched matmul.

    GASF pixel = 0.5 cos_i cos_j - 0.5 sin_i sin_j + 0.5, i.e. ``[cos, sin, 1] @ [0.5cos, -0.5sin, 0.5]^T``;
    GADF pixel = 0.5 sin_i cos_j - 0.5 cos_i sin_j + 0.5.
    """
    c = x_cos.astype(np.float32)
    s = _sin(c)
    one = np.ones_like(c)
    if method == "s":
        left = np.stack([c, s, one], axis=2)
        right = np.stack([0.5 * c, -0.5 * s, 0.5 * one], axis=1)
    else:
        left = np.stack([s, c, one], axis=2)
        right = np.stack([0.5 * c, -0.5 * s, 0.5 * one], axis=1)
    out = np.matmul(left, right, out=out)  # written straight into the caller's channel
    return np.clip(out, 0.0, 1.0, out=out)


def _angular_images(spec, bars: np.ndarray, ends: np.ndarray, method: str) -> np.ndarray:
    side = min(spec.size[0], spec.window)
    index = _pixel_index(spec.size, side)
    out = np.empty((len(ends), len(spec.fields)) + tuple(spec.size), dtype=np.float32)
    for c, name in enumerate(spec.fields):  # loop over channels, never over images
        x_cos = scale_minmax(paa(_series_windows(spec, bars, ends, name), side))
        if index is None:
            _field_pixels(x_cos, method, out=out[:, c])
        else:
            out[:, c] = _field_pixels(x_cos, method)[:, index[0][:, None], index[1][None, :]]
    return out


def gasf_images(spec, bars: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """GASF kernel: ``(T, 5)`` bars, ``(N,)`` ends -> ``(N, len(fields), H, W)`` float32 in [0, 1]."""
    return _angular_images(spec, bars, ends, "s")


def gadf_images(spec, bars: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """GADF kernel: ``(T, 5)`` bars, ``(N,)`` ends -> ``(N, len(fields), H, W)`` float32 in [0, 1]."""
    return _angular_images(spec, bars, ends, "d")


def recurrence_images(spec, bars: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Recurrence kernel: ``(N, len(fields), H, W)`` float32 in [0, 1] (see module docstring for scaling)."""
    side = min(spec.size[0], spec.window)
    index = _pixel_index(spec.size, side)
    out = np.empty((len(ends), len(spec.fields)) + tuple(spec.size), dtype=np.float32)
    for c, name in enumerate(spec.fields):
        x = paa(_series_windows(spec, bars, ends, name), side)
        if spec.threshold is not None:  # float64 so the cut-off agrees with pyts bit for bit
            img = np.abs(x[:, :, None] - x[:, None, :]) < spec.threshold
        else:
            span = x.max(axis=1) - x.min(axis=1)  # the largest |x_i - x_j|: no full-size reduction
            scale = (1.0 / np.where(span > 0, span, 1.0)).astype(np.float32)
            x32 = (x - x.min(axis=1, keepdims=True)).astype(np.float32)
            img = np.subtract(x32[:, :, None], x32[:, None, :])
            np.abs(img, out=img)
            img *= scale[:, None, None]
            np.minimum(img, 1.0, out=img)  # float32 rounding may land a hair above 1
        out[:, c] = img if index is None else img[:, index[0][:, None], index[1][None, :]]
    return out
