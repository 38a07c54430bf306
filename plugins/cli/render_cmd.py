"""``effnet-trading render``: render one image from a CSV and save it as PNG and/or NPY."""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from effnet_trading.plugins.cli._data_options import data_read_options

__all__ = ["render"]


@click.command("render")
@data_read_options
@click.option(
    "--data",
    "data_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    help="OHLCV CSV (.csv or .csv.gz; timestamp column auto-detected).",
)
@click.option(
    "--kind",
    default="candles",
    show_default=True,
    type=click.Choice(["candles", "ohlc_bars", "gasf", "gadf", "recurrence"]),
)
@click.option("--window", default=32, show_default=True, help="Bars per image.")
@click.option("--size", default="64", show_default=True, help="Pixels: N for NxN or HxW, e.g. 64x60.")
@click.option("--end", default=-1, show_default=True, help="Decision bar (position; negative counts from the end).")
@click.option("--ma", default=0, show_default=True, help="Moving-average length for candles/ohlc_bars (0 = none).")
@click.option("--volume/--no-volume", default=True, show_default=True, help="Volume panel (candles/ohlc_bars).")
@click.option("--color", default="rgb", show_default=True, type=click.Choice(["rgb", "grey"]))
@click.option("--fields", default="close", show_default=True, help="Comma-separated series for field kinds.")
@click.option("--timeframe", default=None, help="Resample first, e.g. 15m or 1h (only closed bars are used).")
@click.option(
    "--spec",
    "spec_json",
    default=None,
    type=click.Path(exists=True, dir_okay=False),
    help="ImageSpec/StackSpec JSON file; overrides the spec flags.",
)
@click.option("--png", "png_path", default=None, type=click.Path(dir_okay=False), help="Write a picture here.")
@click.option(
    "--view",
    default="model",
    show_default=True,
    type=click.Choice(["model", "mplfinance"]),
    help="PNG of the model's tensor, or an mplfinance chart of the same window.",
)
@click.option(
    "--npy",
    "npy_path",
    default=None,
    type=click.Path(dir_okay=False),
    help="Write the (1, C, H, W) float32 tensor here.",
)
@click.option("--overwrite", is_flag=True, help="Replace --png/--npy files that already exist (refused otherwise).")
def render(
    date_format,
    tz,
    data_path,
    kind,
    window,
    size,
    end,
    ma,
    volume,
    color,
    fields,
    timeframe,
    spec_json,
    png_path,
    view,
    npy_path,
    overwrite,
):
    """Render the image a model would see at one bar, as PNG and/or .npy (written atomically; an existing
    file is replaced only with --overwrite)."""
    from effnet_trading.errors import OutputError
    from effnet_trading.imaging import load_ohlcv, spec_from_json, spec_from_options, to_png, warmup
    from effnet_trading.imaging import render as render_images
    from effnet_trading.outputs import atomic_file

    if spec_json:
        spec = spec_from_json(Path(spec_json).read_text())
    else:
        spec = spec_from_options(
            kind, window=window, size=size, ma=ma, volume=volume, color=color, fields=fields, timeframe=timeframe
        )
    frame = load_ohlcv(data_path, date_format=date_format, tz=tz)
    pos = end + len(frame) if end < 0 else end
    first = warmup(spec, frame)
    if not first <= pos < len(frame):
        raise click.BadParameter(f"--end {end} is bar {pos}; renderable bars are {first} .. {len(frame) - 1}.")
    if not png_path and not npy_path:
        raise click.UsageError("nothing to write: pass --png out.png and/or --npy out.npy.")
    if npy_path and not str(npy_path).endswith(".npy"):
        raise click.BadParameter(f"--npy {npy_path} must end in .npy (numpy would append it).")
    existing = [p for p in (png_path, npy_path) if p and Path(p).exists()]
    if existing and not overwrite:
        raise OutputError(f"refusing to overwrite {', '.join(existing)}: choose another path or pass --overwrite.")
    images = render_images(spec, frame, [pos])
    if npy_path:
        with atomic_file(npy_path) as tmp:
            np.save(tmp, images)
        click.echo(f"wrote {npy_path}: {images.shape} {images.dtype}")
    if png_path:
        with atomic_file(png_path) as tmp:
            to_png(spec, tmp, frame, end=pos, view=view)
        click.echo(f"wrote {png_path} ({view} view of bar {pos}, {frame.index[pos]})")
