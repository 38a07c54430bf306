"""Shared window helpers for kernels (trusted inputs)."""

from __future__ import annotations

import numpy as np

FIELD_INDEX = {"open": 0, "high": 1, "low": 2, "close": 3, "volume": 4}


def windows(series: np.ndarray, ends: np.ndarray, window: int) -> np.ndarray:
    """``(T,)`` series -> ``(N, window)`` rows ``series[e-window+1 : e+1]`` for each end ``e``."""
    offsets = np.arange(-window + 1, 1, dtype=np.int64)
    return series[ends[:, None] + offsets[None, :]]


def field_series(bars: np.ndarray, name: str) -> np.ndarray:
    """A named price series from ``(T, 5)`` bars; 'typical' is (high + low + close) / 3."""
    if name == "typical":
        return bars[:, 1:4].mean(axis=1)
    return bars[:, FIELD_INDEX[name]]
