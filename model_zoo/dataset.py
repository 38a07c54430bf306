"""Labelled image datasets: rendered windows (uint8) + forward-return labels, in bar order.

Images are rendered in batches with ``iter_render`` and stored as uint8 (4x less memory than
float32); with ``cache_dir`` (or automatically for large sets) they live in a memory-mapped
``.npy`` file. Only bars without a label (the last ``horizon`` bars, volatility warm-up) or
without enough history for the window are dropped, and the counts are reported.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from effnet_trading.errors import DataError, TrainingError
from effnet_trading.imaging import MODEL_INPUT_DTYPE, iter_render, ohlcv_array, validate_ohlcv, warmup
from effnet_trading.imaging.labels import CLASS_NAMES, forward_return_labels
from effnet_trading.imaging.spec import AnySpec
from effnet_trading.outputs import atomic_file

__all__ = ["ImageDataset", "AUTO_MEMMAP_BYTES"]

AUTO_MEMMAP_BYTES = 2 << 30  # above this many image bytes, images go to a memory-mapped temp file


def _cache_key(spec: AnySpec, frame: pd.DataFrame, ends: np.ndarray) -> str:
    h = hashlib.sha256(spec.to_json().encode())
    h.update(np.ascontiguousarray(ohlcv_array(frame)).tobytes())
    h.update(np.asarray(frame.index.asi8).tobytes())
    h.update(ends.tobytes())
    return h.hexdigest()[:20]


def _render_into(spec: AnySpec, frame: pd.DataFrame, ends: np.ndarray, out: np.ndarray, chunk: int) -> None:
    pos = 0
    for part, imgs in iter_render(spec, frame, ends, chunk=chunk, dtype=MODEL_INPUT_DTYPE):
        out[pos : pos + len(part)] = imgs
        pos += len(part)


@dataclass
class ImageDataset:
    """Images ``(N, C, H, W)`` uint8, labels ``(N,)`` int64 in {0,1,2}, bar positions ``ends``, timestamps ``index``.

    Multi-label datasets hold labels ``(N, K)`` float32 in {0, 1} (one column per ``class_names``
    entry, several may be 1): the training loop then fits one sigmoid per label (BCE)."""

    images: np.ndarray
    labels: np.ndarray
    ends: np.ndarray
    index: pd.DatetimeIndex
    fwd: np.ndarray
    spec: AnySpec
    horizon: int
    label: dict = field(default_factory=dict)
    dropped: dict = field(default_factory=dict)
    class_names: tuple[str, ...] = CLASS_NAMES

    @classmethod
    def build(
        cls,
        ohlcv: pd.DataFrame,
        spec: AnySpec,
        horizon: int,
        *,
        label_k: float = 0.5,
        threshold: float | None = None,
        ends: Sequence[int] | None = None,
        cache_dir: str | os.PathLike | None = None,
        chunk: int = 2048,
        vol_window: int = 100,
    ) -> ImageDataset:
        """Render every labelled, renderable bar (or the given ``ends``) and label it by forward return."""
        frame = validate_ohlcv(ohlcv)
        close = frame["close"].to_numpy(np.float64)
        labels, fwd = forward_return_labels(close, horizon, threshold=threshold, k=label_k, vol_window=vol_window)
        first = warmup(spec, frame)
        cand = np.arange(len(frame), dtype=np.int64) if ends is None else np.unique(np.asarray(ends, np.int64))
        if len(cand) and (cand.min() < 0 or cand.max() >= len(frame)):
            raise DataError(f"ends must be bar positions in [0, {len(frame) - 1}]; got {cand.min()}..{cand.max()}.")
        warm = cand < first
        unlabelled = ~warm & (labels[cand] < 0)
        keep = cand[~warm & ~unlabelled]
        if len(keep) == 0:
            raise TrainingError(
                f"no labelled images: {len(frame)} bars, window warm-up {first} bars, horizon {horizon}; "
                "pass more bars (at least window + horizon + a few hundred)."
            )
        shape = (len(keep), spec.channels, *spec.size)
        nbytes = int(np.prod(shape))
        if cache_dir is None and nbytes > AUTO_MEMMAP_BYTES:
            cache_dir = tempfile.mkdtemp(prefix="effnet-images-")
        if cache_dir is not None:
            images = cls._cached(spec, frame, keep, shape, Path(cache_dir), chunk)
        else:
            images = np.empty(shape, np.uint8)
            _render_into(spec, frame, keep, images, chunk)
        label = {
            "rule": "forward_return",
            "horizon": int(horizon),
            "k": float(label_k),
            "threshold": None if threshold is None else float(threshold),
            "vol_window": int(vol_window),
            "classes": list(CLASS_NAMES),
        }
        dropped = {"warmup": int(warm.sum()), "unlabelled": int(unlabelled.sum()), "kept": int(len(keep))}
        return cls(images, labels[keep], keep, frame.index[keep], fwd[keep], spec, int(horizon), label, dropped)

    @staticmethod
    def _cached(
        spec: AnySpec, frame: pd.DataFrame, ends: np.ndarray, shape: tuple, cache_dir: Path, chunk: int
    ) -> np.ndarray:
        """Render once into ``cache_dir/images-<key>.npy`` and open it memory-mapped (read-only)."""
        cache_dir.mkdir(parents=True, exist_ok=True)
        path = cache_dir / f"images-{_cache_key(spec, frame, ends)}.npy"
        if not path.exists():
            with atomic_file(path) as tmp:
                out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
                _render_into(spec, frame, ends, out, chunk)
                out.flush()
                del out
        images = np.load(path, mmap_mode="r")
        if images.shape != shape:
            raise DataError(
                f"image cache {path} has shape {images.shape}, expected {shape}; delete the file to re-render."
            )
        return images

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def multilabel(self) -> bool:
        """True for ``(N, K)`` 0/1 targets (independent labels), False for ``(N,)`` class indices."""
        return np.ndim(self.labels) == 2

    def class_balance(self, idx: np.ndarray | None = None) -> dict[str, float]:
        """Share of each class (over ``idx`` if given)."""
        y = self.labels if idx is None else self.labels[idx]
        if self.multilabel:  # share of positives per label (they need not sum to 1)
            return {n: float(v) for n, v in zip(self.class_names, y.mean(0) if len(y) else np.zeros(y.shape[1]))}
        counts = np.bincount(y, minlength=len(self.class_names))
        return {n: float(c / max(len(y), 1)) for n, c in zip(self.class_names, counts)}

    def channel_stats(self, idx: np.ndarray | None = None, chunk: int = 4096) -> tuple[list[float], list[float]]:
        """Per-channel mean/std of the images in [0, 1] (over ``idx``, e.g. the training part)."""
        idx = np.arange(len(self)) if idx is None else np.asarray(idx)
        c = self.images.shape[1]
        s1, s2, cnt = np.zeros(c), np.zeros(c), 0
        for start in range(0, len(idx), chunk):
            x = self.images[idx[start : start + chunk]].astype(np.float64) / 255.0
            s1 += x.sum((0, 2, 3))
            s2 += (x * x).sum((0, 2, 3))
            cnt += x.shape[0] * x.shape[2] * x.shape[3]
        mean = s1 / max(cnt, 1)
        std = np.sqrt(np.maximum(s2 / max(cnt, 1) - mean**2, 0.0))
        return mean.tolist(), np.maximum(std, 1e-3).tolist()

    def float_images(self, idx: np.ndarray) -> np.ndarray:
        """``(n, C, H, W)`` float32 in [0, 1] for the samples ``idx``."""
        return self.images[np.asarray(idx)].astype(np.float32) / np.float32(255.0)

    def batches(self, idx: np.ndarray, batch_size: int, *, shuffle: bool = False, seed: int = 0) -> Iterator[tuple]:
        """Yield ``(images float32 tensor (B,C,H,W) in [0,1], labels int64 tensor (B,))``; ``shuffle`` permutes ``idx`` with ``seed``."""
        import torch

        idx = np.asarray(idx)
        if shuffle:
            idx = idx[np.random.default_rng(seed).permutation(len(idx))]
        for start in range(0, len(idx), batch_size):
            part = idx[start : start + batch_size]
            yield torch.from_numpy(self.float_images(part)), torch.from_numpy(self.labels[part])

    def torch_dataset(self, idx: np.ndarray | None = None):
        """A ``torch.utils.data.Dataset`` over ``idx`` returning ``(float32 (C,H,W) in [0,1], label)``."""
        import torch
        from torch.utils.data import Dataset

        data, sel = self, np.arange(len(self)) if idx is None else np.asarray(idx)

        class _Images(Dataset):
            def __len__(self) -> int:
                return len(sel)

            def __getitem__(self, i: int):
                j = sel[i]
                return torch.from_numpy(data.images[j].astype(np.float32) / np.float32(255.0)), int(data.labels[j])

        return _Images()

    def info(self) -> dict:
        """JSON-ready summary: size, span, dropped bars, class balance, label rule."""
        return {
            "n": len(self),
            "span": [str(self.index[0]), str(self.index[-1])],
            "image_shape": list(self.images.shape[1:]),
            "dropped": dict(self.dropped),
            "class_balance": self.class_balance(),
            "label": dict(self.label),
            "spec": json.loads(self.spec.to_json()),
        }
