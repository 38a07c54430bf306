"""``effnet-trading patterns train|scan``: chart-pattern classifier on synthetic patterns, scanned over real bars."""

from __future__ import annotations

import json

import click

from effnet_trading.plugins.cli._data_options import data_read_options

__all__ = ["patterns"]


@click.group("patterns")
def patterns() -> None:
    """Chart patterns (head-and-shoulders, double tops, triangles, flags, cup-and-handle): train, scan."""


@patterns.command("train")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Run folder (model/ inside).")
@click.option("--model", default="small_cnn", show_default=True, help="Zoo architecture (see `zoo list`).")
@click.option("--kind", default="candles", show_default=True, type=click.Choice(["candles", "ohlc_bars", "gasf"]))
@click.option("--window", default=64, show_default=True, help="Bars per window (pattern windows and images).")
@click.option("--size", default=64, show_default=True, help="Image size in pixels (square).")
@click.option("--n", "n_train", default=6500, show_default=True, help="Generated training windows (65/15/20 split).")
@click.option("--n-shift", default=1300, show_default=True, help="Windows of the shift test (other noise/lengths).")
@click.option("--epochs", default=8, show_default=True)
@click.option("--lr", default=3e-3, show_default=True)
@click.option("--batch-size", default=128, show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.option(
    "--background",
    "background_csv",
    default=None,
    type=click.Path(exists=True, dir_okay=False),
    help="OHLCV CSV whose log-returns are block-bootstrapped as backgrounds (default: GARCH-like).",
)
@data_read_options
@click.option("--progress/--no-progress", default=True, show_default=True)
def train(out_dir, model, kind, window, size, n_train, n_shift, epochs, lr, batch_size, seed, background_csv, **kw):
    """Generate labelled synthetic patterns, train a classifier (zoo loop), export it with a card and report
    per-class precision/recall/F1 on held-out and shift-test windows beside the class frequencies."""
    import numpy as np

    from effnet_trading.applications.chart_patterns import PatternTrainConfig, per_class_table, train_patterns
    from effnet_trading.applications.pattern_data import PatternConfig
    from effnet_trading.imaging import ImageSpec, load_ohlcv
    from effnet_trading.model_zoo.metrics import format_report
    from effnet_trading.outputs import run_folder

    spec = ImageSpec(kind, window=window, size=(size, size), **({"volume": False} if kind != "gasf" else {}))
    train_kw = {"model": model, "epochs": epochs, "lr": lr, "batch_size": batch_size, "seed": seed}
    cfg = PatternTrainConfig(PatternConfig(window=window, seed=seed), spec, n_train, n_shift, train_kw)
    background = None
    if background_csv:
        close = load_ohlcv(background_csv, date_format=kw["date_format"], tz=kw["tz"])["close"].to_numpy(np.float64)
        background = np.diff(np.log(close))
    config = {"patterns": cfg.patterns.to_dict(), "spec": spec.to_dict(), "n_train": n_train, "n_shift": n_shift}
    inputs = {"background": background_csv} if background_csv else None
    with run_folder(out_dir, command="patterns train", config=config | {"train": train_kw}, inputs=inputs) as work:
        res = train_patterns(cfg, work, background=background, progress=kw["progress"])
    m = res.metrics
    click.echo(format_report({"test": m["test"], "shift_test": m["shift_test"]}))
    table = per_class_table({"test": m["test"], "shift": m["shift_test"]})
    click.echo(table.to_string(float_format=lambda v: f"{v:.2f}"))
    click.echo(f"classes: {len(res.dataset.class_names)}, chance {1 / len(res.dataset.class_names):.3f}")
    click.echo(f"model: {out_dir}/model")


@patterns.command("scan")
@click.option("--data", "data_path", required=True, type=click.Path(exists=True, dir_okay=False), help="OHLCV CSV.")
@click.option("--model", "model_dir", required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False))
@click.option("--min-prob", default=0.6, show_default=True, type=click.FloatRange(0, 1))
@click.option("--top", default=3, show_default=True, help="Gallery detections per class.")
@click.option("--horizons", default="6,24", show_default=True, help="Forward-return horizons in bars.")
@click.option("--last", default=None, type=click.IntRange(1), help="Scan the last N bars only.")
@click.option("--overwrite", is_flag=True, help="Replace this command's files in an existing --out.")
@data_read_options
def scan(data_path, model_dir, out_dir, min_prob, top, horizons, last, overwrite, date_format, tz):
    """Slide over the bars (causal windows), write detections.csv, forward_returns.csv, probabilities.csv,
    summary.json and gallery/<class>.png."""
    from effnet_trading.applications.chart_patterns import forward_returns, scan_patterns, write_detections
    from effnet_trading.applications.gallery import detection_gallery
    from effnet_trading.imaging import load_ohlcv
    from effnet_trading.outputs import run_folder

    hs = tuple(int(h) for h in horizons.split(",") if h.strip())
    frame = load_ohlcv(data_path, date_format=date_format, tz=tz)
    frame = frame.iloc[-last:] if last else frame
    config = {"model": str(model_dir), "min_prob": min_prob, "top": top, "horizons": list(hs), "last": last}
    with run_folder(
        out_dir, command="patterns scan", config=config, inputs={"data": data_path}, overwrite=overwrite
    ) as work:
        probs, det = scan_patterns(frame, model_dir, min_prob=min_prob)
        probs.to_csv(work / "probabilities.csv", index_label="timestamp", float_format="%.4f")
        write_detections(det, work / "detections.csv")
        fwd = forward_returns(frame, det, hs)
        fwd.to_csv(work / "forward_returns.csv", index=False, float_format="%.6f")
        detection_gallery(frame, det, work / "gallery", top=top)
        counts = det["class"].value_counts().to_dict() if len(det) else {}
        summary = {"bars": len(frame), "detections": int(len(det)), "by_class": counts} | config
        (work / "summary.json").write_text(json.dumps(summary, indent=2))
    click.echo(f"{len(det)} detections over {len(frame)} bars: {counts}")
    click.echo(fwd.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    click.echo(f"wrote {out_dir}")
