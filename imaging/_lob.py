"""Order-book heatmap kernel (trusted inputs; validation lives in ``imaging.lob``).

Input: ``book (T, L, 4)`` float64 snapshots, columns bid_px, bid_sz, ask_px, ask_sz, best
level first; a missing level has size 0. Image ``i`` shows snapshots ``ends[i]-window+1 ..
ends[i]``: column ``c`` is snapshot ``ends[i] - window + 1 + c * window // W`` (nearest, so
``W > window`` repeats snapshots and ``W < window`` skips some). Row ``r`` is the price bucket
``[mid * (1 + k * b), mid * (1 + (k + 1) * b))`` with ``k = H // 2 - 1 - r`` and
``b = bucket_bps / 1e4``, relative to the mid ``(bid_px[0] + ask_px[0]) / 2`` of the
decision snapshot ``ends[i]``: asks fill the rows above the middle, bids the rows below.
Levels outside the ``H`` buckets are not drawn. Intensity is ``log1p(summed size)`` per
pixel, divided by the image's largest value (bids and asks together) so it lies in [0, 1].
Channel 0 holds bids, channel 1 asks.
"""

from __future__ import annotations

import numpy as np

__all__ = ["lob_heatmap_images"]


def lob_heatmap_images(spec, book: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """``(T, L, 4)`` snapshots, ``(N,)`` ends -> ``(N, 2, H, W)`` float32 in [0, 1]."""
    h, w_px = spec.size
    n = len(ends)
    depth = min(spec.levels, book.shape[1])
    cols = (np.arange(w_px) * spec.window) // w_px - spec.window + 1
    snaps = book[ends[:, None] + cols[None, :], :depth]  # (N, W, L, 4)
    mid = 0.5 * (book[ends, 0, 0] + book[ends, 0, 2])
    acc = np.zeros(n * 2 * h * w_px, dtype=np.float64)
    base = (np.arange(n)[:, None, None] * 2 * h) * w_px + np.arange(w_px)[None, :, None]
    for side, (px, sz) in enumerate(((0, 1), (2, 3))):
        size = snaps[..., sz]
        with np.errstate(invalid="ignore"):
            rel = (snaps[..., px] / mid[:, None, None] - 1.0) * (1e4 / spec.bucket_bps)
            row = h // 2 - 1 - np.floor(rel)
            ok = (size > 0) & (row >= 0) & (row < h)
        flat = base + (side * h + np.where(ok, row, 0).astype(np.int64)) * w_px
        acc += np.bincount(flat[ok], weights=size[ok], minlength=acc.size)
    img = np.log1p(acc).reshape(n, 2, h, w_px)
    peak = img.max(axis=(1, 2, 3), keepdims=True)
    return (img / np.where(peak > 0, peak, 1.0)).astype(np.float32)
