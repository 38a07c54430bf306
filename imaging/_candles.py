"""Chart kernels: candlestick charts and Jiang-Kelly-Xiu OHLC bar images, vectorised numpy.

Layout shared by both kinds (``H x W`` pixels, row 0 at the top):

* With ``spec.volume`` the bottom fifth (``H // 5`` rows) is a volume panel; its top row is
  left blank as a separator, so volume bars are at most ``H // 5 - 1`` pixels tall, scaled
  to the window's largest volume. The price panel is the remaining top ``H - H // 5`` rows.
* Prices map linearly to rows: the window's highest high (or MA value) is row 0, the lowest
  low (or MA value) the panel's bottom row; a flat window sits in the middle row.
* ``spec.ma > 0`` draws the ``ma``-bar simple moving average of the close, computed
  causally from bars before the window too (so an image needs ``window + ma - 1`` bars,
  ``spec.history``), as a 1-pixel line joining the bars' centre columns.

Every drawn element is one vertical run of pixels per column (``lo[n, col] .. hi[n, col]``),
so each panel is written as ``lo <= row <= hi`` straight into the output (two int16
comparisons per pixel, ``_Canvas``) - no per-image loop, no gather, no float temporaries;
``dtype=np.uint8`` returns the 0..255 image the models take without a float32 round trip.

candles: column ``c`` belongs to bar ``c * window // W`` (each bar gets ``W // window`` or one
more column). A bar with >= 3 columns leaves its last column blank as a gap; the body
(open-close) fills the other columns, the wick (high-low) is the body's centre column.
``color="rgb"``: up bars (close >= open) green, down bars red, the MA line blue, on black;
``color="grey"``: up bars 1.0, down bars 0.5, MA line 1.0.

ohlc_bars (Jiang, Kelly & Xiu 2023, "(Re-)Imag(in)ing Price Trends"): one grey channel,
white on black, 3 columns per bar from the left (20 bars -> 60 columns): open tick in the
left column, high-low bar in the middle column, close tick in the right column; MA line
through the middle columns; volume bars in the middle columns. Extra columns stay black.
"""

from __future__ import annotations

import numpy as np

__all__ = ["rasterize_candles", "rasterize_ohlc_bars"]


def _gather(spec, bars: np.ndarray, ends: np.ndarray):
    """``(N, window, 5)`` window bars and ``(N, window)`` MA of the close (NaN-free) or None."""
    hist = spec.history
    offsets = np.arange(-hist + 1, 1, dtype=np.int64)
    wide = bars[ends[:, None] + offsets[None, :]]
    win = wide[:, hist - spec.window :]
    if spec.ma <= 0:
        return win, None
    close = wide[:, -(spec.window + spec.ma - 1) :, 3]
    csum = np.zeros((len(ends), close.shape[1] + 1))
    np.cumsum(close, axis=1, out=csum[:, 1:])
    ma = (csum[:, spec.ma :] - csum[:, : -spec.ma]) / spec.ma
    return win, ma


def _panels(spec) -> tuple[int, int]:
    """(price-panel rows, volume-panel rows)."""
    h = spec.size[0]
    hv = h // 5 if spec.volume else 0
    return h - hv, hv


def _scale(win: np.ndarray, ma: np.ndarray | None, hp: int):
    """Price -> fractional row in the price panel: returns a function of a ``(N, k)`` price array."""
    lo = win[:, :, 2].min(axis=1)
    hi = win[:, :, 1].max(axis=1)
    if ma is not None:
        lo = np.minimum(lo, ma.min(axis=1))
        hi = np.maximum(hi, ma.max(axis=1))
    span = hi - lo
    flat = span <= 0
    inv = np.where(flat, 0.0, (hp - 1) / np.where(flat, 1.0, span))[:, None]
    mid = np.where(flat, (hp - 1) // 2, 0.0)[:, None]

    def rows(p: np.ndarray) -> np.ndarray:
        return (hi[:, None] - p) * inv + mid

    return rows


class _Canvas:
    """Writes vertical runs into uint8 panels with two comparisons and one subtraction per pixel.

    A column is lit on rows ``lo .. hi``. With ``ge = row >= lo`` (written straight into the
    output) and ``gt = row > hi`` (one reused scratch buffer), and ``hi >= lo - 1`` enforced,
    ``ge - gt`` is 1 exactly on the run and ``gt - ge`` (uint8, wrapping) is 255 there: the image
    is written once, already at its final uint8 level, with no gather and no float temporaries.
    """

    _BLOCK_BYTES = 1 << 18  # a block of images whose panel and scratch stay in the L2 cache

    def __init__(self, n: int, h: int, w: int):
        self._block = max(1, min(n, self._BLOCK_BYTES // max(1, h * w)))
        self._scratch = np.empty((self._block, h, w), dtype=np.bool_)
        self._rows = np.arange(h, dtype=np.int16)[None, :, None]

    def runs(self, lo: np.ndarray, hi: np.ndarray, out: np.ndarray, on: int = 1) -> np.ndarray:
        """``(N, W)`` first/last rows -> ``out`` ``(N, h, W)`` uint8: ``on`` (1 or 255) on rows ``lo .. hi``, 0 elsewhere."""
        h = out.shape[1]
        rows = self._rows[:, :h]
        # C order matters: the bounds come from column gathers (Fortran order), and comparing
        # against a Fortran-ordered operand was 4x slower than against a C-ordered copy
        lo = np.clip(lo, 0, h).astype(np.int16, order="C")
        hi = np.maximum(np.clip(hi, -1, h - 1), lo - 1).astype(np.int16, order="C")
        # block by block, so the three passes run in cache and the output is written to memory once
        for start in range(0, len(out), self._block):
            o = out[start : start + self._block]
            gt = self._scratch[: len(o), :h]
            np.greater_equal(rows, lo[start : start + len(o), None, :], out=o.view(np.bool_))
            np.greater(rows, hi[start : start + len(o), None, :], out=gt)
            if on == 1:
                np.subtract(o, gt.view(np.uint8), out=o)
            else:
                np.subtract(gt.view(np.uint8), o, out=o)
        return out


def _draw_thin(lo: np.ndarray, hi: np.ndarray, out: np.ndarray, value: int) -> None:
    """Set rows ``lo .. hi`` of each column of ``out`` ``(N, h, W)`` to ``value``, touching only those pixels.

    For thin elements (the moving-average line: a few pixels per column) scattering the lit
    pixels costs a fraction of a full-panel pass; the rest of ``out`` is left as it is.
    """
    h = out.shape[1]
    lo = np.clip(lo, 0, h)
    length = np.maximum(np.clip(hi, -1, h - 1) - lo + 1, 0).reshape(-1)
    n_idx, w_idx = np.divmod(np.repeat(np.arange(length.size), length), lo.shape[1])
    starts = np.cumsum(length) - length
    r = np.repeat(lo.reshape(-1) - starts, length) + np.arange(int(length.sum()))
    out[n_idx, r, w_idx] = value


def _levels(dtype) -> tuple[int, int, int]:
    """(code of a lit pixel, of a full-brightness grey pixel, of a half-brightness one) in the uint8 canvas.

    uint8 output draws the final levels (255, 255, 128 = rint(127.5)); float32 output draws codes
    1 (rgb) or 2/1 (grey) and scales them once at the end (``_finish``).
    """
    return (255, 255, 128) if np.dtype(dtype) == np.uint8 else (1, 2, 1)


def _finish(out: np.ndarray, dtype, full: int) -> np.ndarray:
    """The uint8 canvas as the output ``dtype``: itself for uint8, else float32 ``code / full`` in [0, 1]."""
    if np.dtype(dtype) == np.uint8:
        return out
    if full == 1:
        return out.astype(np.float32)
    return np.multiply(out, np.float32(1.0 / full), dtype=np.float32)


def _volume_runs(win: np.ndarray, cols: np.ndarray, on: np.ndarray, hv: int) -> tuple[np.ndarray, np.ndarray]:
    """Volume bars: ``(N, W)`` run bounds in volume-panel rows for columns ``on`` of bar ``cols``."""
    vol = win[:, :, 4]
    vmax = vol.max(axis=1, keepdims=True)
    height = np.rint(vol / np.where(vmax > 0, vmax, 1.0) * (hv - 1)).astype(np.int32)[:, cols]
    height = np.where(on[None, :], height, 0)
    return hv - height, np.full_like(height, hv - 1)


def _ma_runs(y: np.ndarray, centres: np.ndarray, w_px: int) -> tuple[np.ndarray, np.ndarray]:
    """MA line: bar-centre rows ``y (N, window)`` at columns ``centres`` -> ``(N, W)`` run bounds.

    Rows are linearly interpolated between centres (held flat outside them); each column
    spans from its row to the midpoints towards its neighbours, so the line is connected.
    """
    c = np.arange(w_px)
    j = np.clip(np.searchsorted(centres, c, side="right") - 1, 0, len(centres) - 2)
    x0, x1 = centres[j], centres[j + 1]
    t = np.clip((c - x0) / (x1 - x0), 0.0, 1.0)
    yc = y[:, j] * (1 - t) + y[:, j + 1] * t
    left = np.concatenate([yc[:, :1], yc[:, :-1]], axis=1)
    right = np.concatenate([yc[:, 1:], yc[:, -1:]], axis=1)
    lo = np.minimum(yc, np.minimum((yc + left) / 2, (yc + right) / 2))
    hi = np.maximum(yc, np.maximum((yc + left) / 2, (yc + right) / 2))
    return np.rint(lo).astype(np.int32), np.rint(hi).astype(np.int32)


def _candle_columns(window: int, w_px: int):
    """Per pixel column: bar index, is-body, is-wick; and each bar's centre column."""
    cols = (np.arange(w_px) * window) // w_px
    first = np.searchsorted(cols, np.arange(window))
    span = np.diff(np.append(first, w_px))
    body_w = np.where(span >= 3, span - 1, span)
    k = np.arange(w_px) - first[cols]
    body = k < body_w[cols]
    wick = k == (body_w[cols] - 1) // 2
    centres = first + (body_w - 1) // 2
    return cols, body, wick, centres


def rasterize_candles(spec, bars: np.ndarray, ends: np.ndarray, dtype=np.float32) -> np.ndarray:
    """Candlestick kernel: ``(T, 5)`` bars, ``(N,)`` ends -> ``(N, 3 or 1, H, W)`` float32 in [0, 1]
    (or uint8 ``rint(255 * value)`` with ``dtype=np.uint8``)."""
    h, w_px = spec.size
    hp, hv = _panels(spec)
    win, ma = _gather(spec, bars, ends)
    rows = _scale(win, ma, hp)
    cols, body, wick, centres = _candle_columns(spec.window, w_px)

    o, hi_, lo_, cl = (np.rint(rows(win[:, :, i])).astype(np.int32)[:, cols] for i in range(4))
    top = np.where(wick, hi_, np.minimum(o, cl))  # smaller row = higher price
    bot = np.where(wick, lo_, np.maximum(o, cl))
    top = np.where(body, top, hp)  # gap columns draw nothing
    up = (win[:, :, 3] >= win[:, :, 0])[:, cols]
    vol = _volume_runs(win, cols, body, hv) if hv > 1 else None
    canvas = _Canvas(len(ends), hp, w_px)
    on, full, half = _levels(dtype)
    if spec.color == "grey":  # up bars full brightness, down bars half
        out = np.zeros((len(ends), 1, h, w_px), dtype=np.uint8)
        shade = np.where(up, full, half).astype(np.uint8)[:, None, :]
        shaded = np.minimum if on == full else np.multiply  # lit pixels (on) take their column's shade
        price = canvas.runs(top, bot, out[:, 0, :hp], on)
        shaded(price, shade, out=price)
        if vol is not None:
            shaded(canvas.runs(*vol, out[:, 0, hp:], on), shade, out=out[:, 0, hp:])
        if ma is not None:  # the line is drawn over the bars at full brightness
            _draw_thin(*_ma_runs(rows(ma), centres, w_px), price, full)
        return _finish(out, dtype, full)
    out = np.zeros((len(ends), 3, h, w_px), dtype=np.uint8)
    for channel, side in ((0, ~up), (1, up)):  # red: down bars, green: up bars
        canvas.runs(np.where(side, top, hp), bot, out[:, channel, :hp], on)
        if vol is not None:
            canvas.runs(np.where(side, vol[0], hv), vol[1], out[:, channel, hp:], on)
    if ma is not None:
        _draw_thin(*_ma_runs(rows(ma), centres, w_px), out[:, 2, :hp], on)
    return _finish(out, dtype, 1)


def rasterize_ohlc_bars(spec, bars: np.ndarray, ends: np.ndarray, dtype=np.float32) -> np.ndarray:
    """JKX OHLC-bar kernel: ``(T, 5)`` bars, ``(N,)`` ends -> ``(N, 1, H, W)`` float32 in {0, 1} (uint8 {0, 255})."""
    h, w_px = spec.size
    hp, hv = _panels(spec)
    win, ma = _gather(spec, bars, ends)
    rows = _scale(win, ma, hp)
    n_cols = 3 * spec.window
    cols = np.minimum(np.arange(w_px) // 3, spec.window - 1)
    part = np.where(np.arange(w_px) < n_cols, np.arange(w_px) % 3, -1)  # 0 open, 1 bar, 2 close, -1 none

    o, hi_, lo_, cl = (np.rint(rows(win[:, :, i])).astype(np.int32)[:, cols] for i in range(4))
    top = np.select([part == 0, part == 1, part == 2], [o, hi_, cl], hp)
    bot = np.select([part == 0, part == 1, part == 2], [o, lo_, cl], -1)
    out = np.zeros((len(ends), 1, h, w_px), dtype=np.uint8)
    canvas = _Canvas(len(ends), hp, w_px)
    on = _levels(dtype)[0]
    canvas.runs(top, bot, out[:, 0, :hp], on)
    if hv > 1:
        canvas.runs(*_volume_runs(win, cols, part == 1, hv), out[:, 0, hp:], on)
    if ma is not None:
        centres = 3 * np.arange(spec.window) + 1
        lo_ma, hi_ma = _ma_runs(rows(ma), centres, w_px)
        inside = np.arange(w_px) < n_cols
        _draw_thin(np.where(inside, lo_ma, hp), hi_ma, out[:, 0, :hp], on)
    return _finish(out, dtype, 1)
