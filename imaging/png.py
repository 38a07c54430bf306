"""PNG pictures for people (reports, README, ``effnet-trading render --png``); never used by models.

``to_png(images, path)`` writes what a model sees: 3 channels as RGB (for a spec: only an
RGB candles spec), one channel through a
colour map (``cmap``; charts in grey), several channels as a grid of tiles (stacks, multi-field
fields, order-book bids|asks), each pixel enlarged ``scale`` times by nearest neighbour.
``to_png(spec, path, data=ohlcv, end=-1)`` renders the image ending at bar ``end`` first;
``view="mplfinance"`` draws the same candlestick window with mplfinance instead (extra ``plot``).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from effnet_trading.errors import SpecError, require
from effnet_trading.imaging.spec import AnySpec, ImageSpec, StackSpec

__all__ = ["to_png", "channel_grid"]

_CHART_KINDS = ("candles", "ohlc_bars")


def channel_grid(image: np.ndarray, *, columns: int | None = None, gap: int = 1) -> np.ndarray:
    """``(C, H, W)`` -> one ``(rows*(H+gap)-gap, cols*(W+gap)-gap)`` mosaic of the channels (gaps = NaN)."""
    c, h, w = image.shape
    cols = columns or int(np.ceil(np.sqrt(c)))
    rows = -(-c // cols)
    out = np.full((rows * (h + gap) - gap, cols * (w + gap) - gap), np.nan, dtype=np.float32)
    for k in range(c):
        r, q = divmod(k, cols)
        out[r * (h + gap) : r * (h + gap) + h, q * (w + gap) : q * (w + gap) + w] = image[k]
    return out


def _as_chw(images: np.ndarray) -> np.ndarray:
    arr = np.asarray(images)
    if arr.dtype == np.uint8:
        arr = arr.astype(np.float32) / 255.0
    if arr.ndim == 4:
        arr = arr[-1]  # the most recent image of a batch
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise SpecError(f"to_png expects (N, C, H, W), (C, H, W) or (H, W) images, got shape {np.shape(images)}.")
    return arr.astype(np.float32)


def _save_array(image: np.ndarray, path: Path, cmap: str, scale: int, grey: bool, as_rgb: bool) -> None:
    mimage = require("matplotlib.image", "plot")
    from matplotlib import colormaps

    chw = _as_chw(image)
    if as_rgb and chw.shape[0] == 3:
        rgb = np.transpose(chw, (1, 2, 0))
    else:
        tile = chw[0] if chw.shape[0] == 1 else channel_grid(chw, columns=2 if chw.shape[0] == 2 else None)
        cm = colormaps["gray" if grey else cmap].with_extremes(bad="white")
        rgb = cm(np.ma.masked_invalid(np.clip(tile, 0.0, 1.0)))[..., :3]
    rgb = np.repeat(np.repeat(rgb, scale, axis=0), scale, axis=1)
    mimage.imsave(path, np.clip(rgb, 0.0, 1.0))


def _mplfinance_png(spec: ImageSpec, frame, end: int, path: Path, dpi: int) -> None:
    mpf = require("mplfinance", "plot")
    require("matplotlib", "plot").use("Agg")
    from effnet_trading.imaging.data import validate_ohlcv

    frame = validate_ohlcv(frame) if "repairs" not in frame.attrs else frame
    stop = end + 1
    hist = frame.iloc[max(0, stop - spec.history) : stop]
    bars = hist.iloc[-spec.window :].rename(columns=str.capitalize)
    bars.index = bars.index.tz_localize(None)
    extra = {}
    if spec.ma > 0:  # causal MA from the bars before the window too, as the model view draws it
        ma = hist["close"].rolling(spec.ma).mean().iloc[-spec.window :].to_numpy()
        extra["addplot"] = [mpf.make_addplot(ma, color="tab:blue", width=1.0)]
    h, w = spec.size
    fig_w, fig_h = max(w, 64) * 4 / dpi, max(h, 64) * 4 / dpi
    mpf.plot(
        bars,
        type="candle",
        volume=spec.volume,
        style="charles",
        figsize=(fig_w, fig_h),
        savefig=dict(fname=str(path), dpi=dpi),
        **extra,
    )


def to_png(
    source: np.ndarray | AnySpec,
    path: str | os.PathLike,
    data=None,
    *,
    end: int = -1,
    view: str = "model",
    cmap: str = "viridis",
    scale: int = 4,
    dpi: int = 100,
) -> Path:
    """Write a PNG of images ``(N, C, H, W)`` (the last one) or of ``spec`` rendered on ``data`` at bar ``end``.

    ``view="model"`` shows the tensor itself; ``view="mplfinance"`` (candles/ohlc_bars specs
    with data) draws the same window as an mplfinance candlestick chart. Returns the path.
    """
    path = Path(path)
    if view not in ("model", "mplfinance"):
        raise SpecError(f"to_png view {view!r} must be 'model' or 'mplfinance'.")
    if isinstance(source, (ImageSpec, StackSpec)):
        if data is None:
            raise SpecError("to_png(spec, path) needs data=<OHLCV frame or order book> to render the picture from.")
        n = len(data)
        end = end + n if end < 0 else end
        if view == "mplfinance":
            if not (isinstance(source, ImageSpec) and source.kind in _CHART_KINDS):
                raise SpecError(
                    f"view='mplfinance' draws candles/ohlc_bars specs, not {source.kind!r}; use view='model'."
                )
            _mplfinance_png(source, data, end, path, dpi)
            return path
        if all(s.kind == "lob_heatmap" for s in source.specs):
            from effnet_trading.imaging.lob import render_lob

            images = render_lob(source, data, [end])
        else:
            from effnet_trading.imaging.render import render

            images = render(source, data, [end])
        grey = all(s.kind in _CHART_KINDS for s in source.specs)
        rgb = isinstance(source, ImageSpec) and source.kind == "candles" and source.color == "rgb"
        _save_array(images, path, cmap, scale, grey, as_rgb=rgb)
        return path
    if view != "model":
        raise SpecError("view='mplfinance' needs a spec and data, not an image array.")
    _save_array(np.asarray(source), path, cmap, scale, grey=False, as_rgb=True)
    return path
