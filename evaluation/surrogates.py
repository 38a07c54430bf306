"""Surrogate OHLCV series with the data's return distribution but no exploitable order (numpy/pandas).

Each bar is described relative to the previous close (log open/high/low/close ratios plus its
volume). A surrogate resamples whole bars, in blocks, and chains them from the first close, so
every surrogate bar is a real bar shape (valid high/low, fat tails kept) while the order between
blocks is random. ``demean=True`` removes the drift, so no strategy (long-biased ones included)
has a true edge on the surrogate: it is the null set of ``evaluate``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from effnet_trading.errors import DataError
from effnet_trading.imaging import OHLCV_COLUMNS, validate_ohlcv
from effnet_trading.model_zoo.metrics import block_indices

__all__ = ["SURROGATE_KINDS", "bar_ratios", "block_bootstrap", "random_walk_like", "make_surrogate"]

SURROGATE_KINDS = ("block_bootstrap", "block_shuffle", "random_walk")


def bar_ratios(ohlcv: pd.DataFrame) -> np.ndarray:
    """``(T-1, 5)``: log(open, high, low, close / previous close) and volume of bars 1..T-1."""
    frame = validate_ohlcv(ohlcv)
    a = frame.to_numpy(np.float64)
    prev = a[:-1, 3:4]
    return np.column_stack([np.log(a[1:, :4] / prev), a[1:, 4]])


def _chain(first: np.ndarray, ratios: np.ndarray, index: pd.DatetimeIndex) -> pd.DataFrame:
    """Rebuild bars from the first bar and per-bar ratios to the previous close."""
    closes = first[3] * np.exp(np.concatenate([[0.0], np.cumsum(ratios[:, 3])]))
    prices = closes[:-1, None] * np.exp(ratios[:, :4])
    out = np.vstack([first[None, :], np.column_stack([prices, ratios[:, 4]])])
    # exp/cumsum rounding may put close a hair above high: keep the bars valid
    out[:, 1] = np.maximum(out[:, 1], out[:, [0, 3]].max(1))
    out[:, 2] = np.minimum(out[:, 2], out[:, [0, 3]].min(1))
    frame = pd.DataFrame(out, index=index, columns=list(OHLCV_COLUMNS))
    return validate_ohlcv(frame)


def block_bootstrap(
    ohlcv: pd.DataFrame, *, block: int = 1, seed: int = 0, replace: bool = True, demean: bool = True
) -> pd.DataFrame:
    """Bars resampled in circular blocks of ``block`` bars (``replace=False``: the blocks are
    permuted, so the multiset of bars is exactly the original). Same index as the input."""
    frame = validate_ohlcv(ohlcv)
    if len(frame) < 3:
        raise DataError(f"a surrogate needs at least 3 bars, got {len(frame)}.")
    ratios = bar_ratios(frame)
    if demean:
        ratios[:, :4] -= ratios[:, 3].mean()
    m, b = len(ratios), max(1, int(block))
    rng = np.random.default_rng(seed)
    if replace:
        idx = block_indices(m, b, rng)
    else:
        blocks = [np.arange(s, min(s + b, m)) for s in range(0, m, b)]
        idx = np.concatenate([blocks[i] for i in rng.permutation(len(blocks))])
    return _chain(frame.to_numpy(np.float64)[0], ratios[idx], frame.index)


def random_walk_like(ohlcv: pd.DataFrame, *, seed: int = 0) -> pd.DataFrame:
    """Gaussian random walk with the data's close-to-close volatility (zero drift); bar ranges and
    volumes are the data's own, shuffled. Same index as the input."""
    frame = validate_ohlcv(ohlcv)
    ratios = bar_ratios(frame)
    rng = np.random.default_rng(seed)
    sigma = ratios[:, 3].std()
    shapes = ratios[rng.permutation(len(ratios))]
    r = rng.normal(0.0, sigma, len(ratios))
    # keep each bar's high/low excursions beyond its body, re-centred on the new open -> close move
    body_hi = np.maximum(shapes[:, 0], shapes[:, 3])
    body_lo = np.minimum(shapes[:, 0], shapes[:, 3])
    up, down = shapes[:, 1] - body_hi, body_lo - shapes[:, 2]
    new = np.column_stack([np.zeros_like(r), np.maximum(0, r) + up, np.minimum(0, r) - down, r, shapes[:, 4]])
    return _chain(frame.to_numpy(np.float64)[0], new, frame.index)


def make_surrogate(
    ohlcv: pd.DataFrame, kind: str = "block_bootstrap", *, block: int = 1, seed: int = 0
) -> pd.DataFrame:
    """Dispatch by ``kind`` in ``SURROGATE_KINDS``; all are zero-drift."""
    if kind == "block_bootstrap":
        return block_bootstrap(ohlcv, block=block, seed=seed, replace=True)
    if kind == "block_shuffle":
        return block_bootstrap(ohlcv, block=block, seed=seed, replace=False)
    if kind == "random_walk":
        return random_walk_like(ohlcv, seed=seed)
    raise DataError(f"surrogate kind {kind!r} is unknown; choose one of {list(SURROGATE_KINDS)}.")
