"""``effnet-trading lob analyze``: walls, place-and-cancel sequences and impact from order-book snapshots;
``lob bars``: sub-second OHLCV bars (mid price, traded volume) from a capture, for ``evaluate``."""

from __future__ import annotations

import json

import click

__all__ = ["lob"]


@click.group("lob")
def lob() -> None:
    """Order-book analysis (definitions in docs/regimes_and_orderbooks.md)."""


@lob.command("analyze")
@click.option(
    "--data",
    "data_path",
    required=True,
    type=click.Path(exists=True),
    help="hftbacktest capture (.gz; Binance or Hyperliquid), wide order-book CSV, or a folder of them.",
)
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Folder for the results.")
@click.option("--levels", default=20, show_default=True, type=click.IntRange(min=1), help="Levels per side kept.")
@click.option("--every-ms", default=1000, show_default=True, type=click.IntRange(min=1), help="Snapshot spacing.")
@click.option("--sizes", default="0.01,0.1,0.5,1,2,5,10", show_default=True, help="Order sizes for the impact curve.")
@click.option("--wall-k", default=5.0, show_default=True, type=float, help="Wall: size >= this x the side's median.")
@click.option("--min-life", default=10, show_default=True, type=click.IntRange(min=1), help="Wall: snapshots it lasts.")
@click.option(
    "--spoof-k", default=4.0, show_default=True, type=float, help="Place-cancel: added size >= this x median."
)
@click.option("--max-updates", default=5, show_default=True, type=click.IntRange(min=1), help="Place-cancel: max life.")
@click.option("--overwrite", is_flag=True, help="Write into a non-empty --out, replacing only this command's files.")
def analyze(data_path, out_dir, levels, every_ms, sizes, overwrite, **detect) -> None:
    """Detections over time (detections.csv), annotated heatmaps, impact curve (impact.csv, impact.png)."""
    from effnet_trading.applications.orderbook import analyze_books, read_books
    from effnet_trading.outputs import run_folder

    try:
        size_list = [float(s) for s in sizes.split(",") if s.strip()]
    except ValueError:
        raise click.BadParameter(f"--sizes {sizes!r} must be comma-separated numbers, e.g. 0.1,1,5.") from None
    books, skipped = read_books(data_path, levels=levels, every_ms=every_ms)
    config = {"levels": levels, "every_ms": every_ms, "sizes": size_list, **detect}
    with run_folder(out_dir, command="lob analyze", config=config, overwrite=overwrite) as work:
        summary = analyze_books(books, work, sizes=size_list, **detect) | {"skipped": skipped}
        (work / "summary.json").write_text(json.dumps(summary, indent=1))
    for name, b in summary["books"].items():
        ev = ", ".join(f"{k} {v}" for k, v in sorted(b["events"].items())) or "no events"
        click.echo(f"{name}: {b['snapshots']} snapshots {b['span'][0]} .. {b['span'][1]}: {ev}")
    for name, why in skipped.items():
        click.echo(f"skipped {name}: {why}", err=True)
    click.echo(f"wrote {out_dir}/detections.csv, impact.csv, impact.png, heatmap_*.png, summary.json")


@lob.command("bars")
@click.option(
    "--data",
    "data_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    help="hftbacktest capture (.gz; Binance depth diffs + trades, or Hyperliquid l2Book + trades).",
)
@click.option("--bar", default="250ms", show_default=True, help="Bar size, e.g. 250ms, 1s.")
@click.option(
    "--sample-ms", default=None, type=click.IntRange(min=1), help="Book sampling inside a bar [default: bar / 10]."
)
@click.option(
    "--max-gap",
    default="10s",
    show_default=True,
    help="Refuse a capture whose book is silent for longer (an outage would become flat bars).",
)
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False), help="CSV of bars to write.")
def bars(data_path, bar, sample_ms, max_gap, out_path) -> None:
    """OHLCV bars of the mid price (volume = traded quantity) indexed by bar open time (UTC), for evaluate."""
    from effnet_trading.imaging import capture_bars
    from effnet_trading.outputs import atomic_file

    frame = capture_bars(data_path, bar, sample_ms=sample_ms, max_gap=max_gap)
    with atomic_file(out_path) as tmp:
        frame.to_csv(tmp, index_label="timestamp", date_format="%Y-%m-%dT%H:%M:%S.%fZ", float_format="%.12g")
    click.echo(
        f"wrote {out_path}: {len(frame)} bars of {bar} (mid price), {frame.index[0]} .. {frame.index[-1]}, "
        f"{(frame['volume'] == 0).mean():.0%} without a trade"
    )
