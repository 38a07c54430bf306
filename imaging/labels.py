"""Labels from future returns (numpy only): {0: sell, 1: hold, 2: buy}.

The label at bar t looks at ``close[t+horizon] / close[t]``: it is the *target*, never an
input. The last ``horizon`` bars have no label (-1). The volatility threshold uses only
returns up to t.
"""

from __future__ import annotations

import numpy as np

from effnet_trading.errors import DataError

__all__ = ["CLASS_NAMES", "forward_log_returns", "rolling_vol", "forward_return_labels"]

CLASS_NAMES = ("sell", "hold", "buy")


def forward_log_returns(close: np.ndarray, horizon: int) -> np.ndarray:
    """``log(close[t+h] / close[t])``; NaN for the last ``horizon`` bars."""
    close = np.asarray(close, dtype="float64")
    out = np.full(close.shape, np.nan)
    if horizon < 1:
        raise DataError(f"label horizon must be >= 1 bar, got {horizon}.")
    if len(close) > horizon:
        out[:-horizon] = np.log(close[horizon:] / close[:-horizon])
    return out


def rolling_vol(close: np.ndarray, window: int = 100) -> np.ndarray:
    """Causal rolling std of 1-bar log returns ending at t (expanding during warm-up)."""
    r = np.concatenate([[0.0], np.diff(np.log(np.asarray(close, dtype="float64")))])
    c1 = np.cumsum(r)
    c2 = np.cumsum(r * r)
    n = np.minimum(np.arange(1, len(r) + 1), window)
    s1 = c1 - np.concatenate([np.zeros(window), c1[:-window]])[: len(r)]
    s2 = c2 - np.concatenate([np.zeros(window), c2[:-window]])[: len(r)]
    var = np.maximum(s2 / n - (s1 / n) ** 2, 0.0) * n / np.maximum(n - 1, 1)
    vol = np.sqrt(var)
    vol[: min(2, len(vol))] = np.nan
    return vol


def forward_return_labels(
    close: np.ndarray,
    horizon: int,
    *,
    threshold: float | None = None,
    k: float = 0.5,
    vol_window: int = 100,
) -> tuple[np.ndarray, np.ndarray]:
    """Three-class labels by forward return: ``(labels int64 in {-1, 0, 1, 2}, fwd_log_return)``.

    threshold: fixed log-return band; if None, ``k * rolling_vol * sqrt(horizon)`` (causal).
    ``-1`` marks bars with no label (last ``horizon`` bars, or vol warm-up).
    """
    fwd = forward_log_returns(close, horizon)
    if threshold is None:
        band = k * rolling_vol(close, vol_window) * np.sqrt(horizon)
    else:
        band = np.full(fwd.shape, float(threshold))
    labels = np.where(fwd > band, 2, np.where(fwd < -band, 0, 1)).astype(np.int64)
    labels[~np.isfinite(fwd) | ~np.isfinite(band)] = -1
    return labels, fwd
