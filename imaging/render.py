"""Public rendering API: validate once, then call kernels that trust their inputs.

``render(spec, ohlcv, ends)`` returns ``(N, C, H, W)`` float32 in [0, 1] (or uint8 0..255);
image ``i`` uses bars ``ends[i]-history+1 .. ends[i]`` only (causal; ``spec.history`` is the
window plus any moving-average/return look-back). Timeframe specs use
only higher-timeframe bars that have closed by the end of base bar ``ends[i]``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Protocol, cast

import numpy as np
import pandas as pd

from effnet_trading.errors import DataError, SpecError
from effnet_trading.imaging.data import (
    OHLCV_COLUMNS,
    infer_interval,
    last_closed_index,
    ohlcv_array,
    resample_ohlcv,
    validate_ohlcv,
)
from effnet_trading.imaging.spec import AnySpec, ImageSpec, StackSpec

__all__ = ["MODEL_INPUT_DTYPE", "render", "iter_render", "warmup", "valid_ends", "KERNELS"]

# Models train on, and are served, images quantised to uint8 (datasets store uint8 to save
# memory; serving the float render instead would differ by up to 1/510 per pixel: train/serve skew).
# Runtimes scale uint8 by 1/255 to float32.
MODEL_INPUT_DTYPE = np.uint8

Kernel = Callable[[ImageSpec, np.ndarray, np.ndarray], np.ndarray]


class _NativeUint8Kernel(Protocol):
    """A kernel of ``_NATIVE_UINT8``: also takes ``dtype=np.uint8`` and writes 0..255 itself."""

    def __call__(self, spec: ImageSpec, bars: np.ndarray, ends: np.ndarray, dtype: Any = ...) -> np.ndarray: ...


_KERNEL_PATHS = {
    "candles": ("_candles", "rasterize_candles"),
    "ohlc_bars": ("_candles", "rasterize_ohlc_bars"),
    "gasf": ("_fields", "gasf_images"),
    "gadf": ("_fields", "gadf_images"),
    "recurrence": ("_fields", "recurrence_images"),
}


class _KernelTable(dict):
    """Lazy kind -> kernel table: a kernel module is imported on first use of its kind."""

    def __missing__(self, kind: str) -> Kernel:
        import importlib

        if kind not in _KERNEL_PATHS:
            raise SpecError(f"no OHLCV renderer for kind {kind!r}; known: {sorted(_KERNEL_PATHS)}.")
        module, name = _KERNEL_PATHS[kind]
        fn = getattr(importlib.import_module(f"effnet_trading.imaging.{module}"), name)
        self[kind] = fn
        return fn


KERNELS: dict[str, Kernel] = _KernelTable()


def _as_frame(ohlcv) -> pd.DataFrame | None:
    if isinstance(ohlcv, pd.DataFrame):
        if list(ohlcv.columns[:5]) == list(OHLCV_COLUMNS) and "repairs" in ohlcv.attrs:
            return ohlcv  # already canonical (validated by load_ohlcv/validate_ohlcv)
        return validate_ohlcv(ohlcv)
    return None


def _as_array(ohlcv) -> np.ndarray:
    arr = np.asarray(ohlcv, dtype="float64")
    if arr.ndim != 2 or arr.shape[1] < 5:
        raise DataError(f"OHLCV array must be (T, 5) open, high, low, close, volume; got shape {arr.shape}.")
    return np.ascontiguousarray(arr[:, :5])


class _Prepared:
    """Per-member inputs: the bars each member renders from and the map base-end -> member-end."""

    def __init__(self, spec: ImageSpec, frame: pd.DataFrame | None, arr: np.ndarray):
        self.spec = spec
        if spec.timeframe is None:
            self.bars = arr
            self.map_end = lambda ends: ends
            return
        if frame is None:
            raise SpecError(
                f"spec with timeframe={spec.timeframe!r} needs timestamps: pass a DataFrame with a DatetimeIndex, not an array."
            )
        base = infer_interval(frame.index)
        hi = resample_ohlcv(frame, spec.timeframe, base_interval=base)
        self.bars = ohlcv_array(hi)
        decision = frame.index + base
        self._pos = last_closed_index(hi.index, spec.timeframe, decision)
        self.map_end = lambda ends: self._pos[ends]


def _prepare(spec: AnySpec, ohlcv) -> tuple[list[_Prepared], int]:
    if spec.kind == "lob_heatmap" or (isinstance(spec, StackSpec) and any(s.kind == "lob_heatmap" for s in spec.specs)):
        raise SpecError(
            "lob_heatmap renders order books, not OHLCV: use effnet_trading.imaging.render_lob(spec, book)."
        )
    frame = _as_frame(ohlcv)
    arr = ohlcv_array(frame) if frame is not None else _as_array(ohlcv)
    members = [_Prepared(s, frame, arr) for s in spec.specs]
    return members, len(arr)


def _first_valid(members: list[_Prepared], n_bars: int) -> int:
    first = 0
    for m in members:
        if m.spec.timeframe is None:
            first = max(first, m.spec.history - 1)
        else:
            ok = np.flatnonzero(m._pos >= m.spec.history - 1)
            first = max(first, int(ok[0]) if len(ok) else n_bars)
    return first


def warmup(spec: AnySpec, ohlcv) -> int:
    """Index of the first base bar that has enough history to be rendered."""
    members, n = _prepare(spec, ohlcv)
    return _first_valid(members, n)


def valid_ends(spec: AnySpec, ohlcv) -> np.ndarray:
    """All renderable base-bar positions, ``warmup .. T-1``."""
    members, n = _prepare(spec, ohlcv)
    return np.arange(_first_valid(members, n), n, dtype=np.int64)


def _check_ends(ends, first: int, n: int) -> np.ndarray:
    ends = np.asarray(ends, dtype=np.int64).reshape(-1)
    if len(ends) and (ends.min() < first or ends.max() >= n):
        raise DataError(
            f"ends must lie in [{first}, {n - 1}] (the first {first} bars are warm-up for the window); "
            f"got min {ends.min()}, max {ends.max()}. Use valid_ends(spec, ohlcv)."
        )
    return ends


# kernels that write uint8 0..255 themselves (``dtype=np.uint8``): no float32 image in between
_NATIVE_UINT8 = frozenset({"candles", "ohlc_bars"})


def _render_one(m: _Prepared, ends: np.ndarray, dtype) -> np.ndarray:
    kernel = KERNELS[m.spec.kind]
    if np.dtype(dtype) != np.uint8:
        return kernel(m.spec, m.bars, m.map_end(ends)).astype(dtype, copy=False)
    if m.spec.kind in _NATIVE_UINT8:
        return cast(_NativeUint8Kernel, kernel)(m.spec, m.bars, m.map_end(ends), dtype=np.uint8)
    out = kernel(m.spec, m.bars, m.map_end(ends))
    return np.rint(np.multiply(out, 255.0, out=out), out=out).astype(np.uint8)


def _render_members(members: list[_Prepared], ends: np.ndarray, dtype) -> np.ndarray:
    parts = [_render_one(m, ends, dtype) for m in members]
    return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)


def render(spec: AnySpec, ohlcv, ends=None, *, dtype=np.float32) -> np.ndarray:
    """Render images ending at ``ends`` (default: every renderable bar).

    Returns ``(N, C, H, W)`` float32 in [0, 1], or uint8 with ``dtype=np.uint8``.
    For long histories prefer ``iter_render`` which streams in chunks.
    """
    members, n = _prepare(spec, ohlcv)
    first = _first_valid(members, n)
    ends = np.arange(first, n, dtype=np.int64) if ends is None else _check_ends(ends, first, n)
    return _render_members(members, ends, dtype)


def iter_render(
    spec: AnySpec, ohlcv, ends=None, *, chunk: int = 2048, dtype=np.float32
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(ends_chunk, images_chunk)`` so memory stays flat on long histories."""
    members, n = _prepare(spec, ohlcv)
    first = _first_valid(members, n)
    ends = np.arange(first, n, dtype=np.int64) if ends is None else _check_ends(ends, first, n)
    for start in range(0, len(ends), chunk):
        part = ends[start : start + chunk]
        yield part, _render_members(members, part, dtype)
