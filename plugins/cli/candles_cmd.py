"""``effnet-trading candles label|train|scan``: TA-Lib candlestick labels and a multi-label image model."""

from __future__ import annotations

import json

import click

from effnet_trading.plugins.cli._data_options import data_read_options

__all__ = ["candles"]

_DATA = click.option(
    "--data", "data_path", required=True, type=click.Path(exists=True, dir_okay=False), help="OHLCV CSV."
)


@click.group("candles")
def candles() -> None:
    """Candlestick patterns (TA-Lib reference labels, multi-label image model): label, train, scan."""


@candles.command("label")
@_DATA
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False), help="labels.csv to write.")
@click.option("--patterns", default=None, help="Comma-separated TA-Lib names (default: the built-in set).")
@data_read_options
def label(data_path, out_path, patterns, date_format, tz):
    """Write ``timestamp`` plus one column per TA-Lib function (its signed output at that bar)."""
    from pathlib import Path

    from effnet_trading.applications.candlesticks import CANDLE_PATTERNS, candle_labels
    from effnet_trading.imaging import load_ohlcv

    names = tuple(p.strip() for p in patterns.split(",")) if patterns else CANDLE_PATTERNS
    labels = candle_labels(load_ohlcv(data_path, date_format=date_format, tz=tz), names)
    tmp = Path(out_path).with_suffix(".tmp")
    labels.to_csv(tmp, index_label="timestamp", date_format="%Y-%m-%dT%H:%M:%SZ")
    tmp.replace(out_path)
    rates = (labels != 0).mean()
    click.echo(f"wrote {out_path}: {len(labels)} bars x {len(names)} patterns")
    click.echo(" ".join(f"{k}={v:.3%}" for k, v in rates.items()))


@candles.command("train")
@_DATA
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Run folder (model/ inside).")
@click.option("--model", default="small_cnn", show_default=True, help="Zoo architecture (see `zoo list`).")
@click.option("--kind", default="ohlc_bars", show_default=True, type=click.Choice(["ohlc_bars", "candles"]))
@click.option("--window", default=16, show_default=True, help="Bars per image (TA-Lib compares with ~10 bars before).")
@click.option("--size", default="32x48", show_default=True, help="Pixels HxW (ohlc_bars: 3 columns per bar).")
@click.option(
    "--zoom", default=3, show_default=True, help="Extra channel: the last N bars over the whole width (0 = none)."
)
@click.option("--last", default=None, type=int, help="Train on the last N bars only.")
@click.option("--epochs", default=6, show_default=True)
@click.option("--lr", default=3e-3, show_default=True)
@click.option("--batch-size", default=256, show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.option("--progress/--no-progress", default=True, show_default=True)
@data_read_options
def train(data_path, out_dir, model, kind, window, size, zoom, last, epochs, lr, batch_size, seed, progress, **kw):
    """Fit the multi-label model on a time split; report per-pattern precision/recall/F1/AUC beside base rates."""
    from effnet_trading.applications.candlesticks import (
        CandleTrainConfig,
        candle_spec,
        format_pattern_table,
        train_candles,
    )
    from effnet_trading.imaging import load_ohlcv
    from effnet_trading.outputs import run_folder

    h, _, w = size.lower().partition("x")
    spec = candle_spec(window, (int(h), int(w or h)), zoom, kind)
    train_kw = {"model": model, "epochs": epochs, "lr": lr, "batch_size": batch_size, "seed": seed}
    cfg = CandleTrainConfig(spec=spec, last=last, train=train_kw)
    frame = load_ohlcv(data_path, date_format=kw["date_format"], tz=kw["tz"])
    config = {"spec": spec.to_dict(), "last": last, "train": train_kw, "patterns": list(cfg.patterns)}
    with run_folder(out_dir, command="candles train", config=config, inputs={"data": data_path}) as work:
        res = train_candles(frame, cfg, work, progress=progress)
    click.echo(format_pattern_table(res.metrics["test"], res.metrics.get("test_tuned")))
    click.echo(res.metrics["diagnosis"]["line"])
    click.echo(f"test span {res.metrics['split']['test'][0]} .. {res.metrics['split']['test'][1]}")
    click.echo(f"model: {out_dir}/model")


@candles.command("scan")
@_DATA
@click.option("--model", "model_dir", required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False))
@click.option("--threshold", default=None, type=click.FloatRange(0, 1), help="One threshold for all (default: card's).")
@click.option("--top", default=3, show_default=True, help="Gallery detections per pattern.")
@click.option("--last", default=None, type=click.IntRange(1), help="Scan the last N bars only.")
@click.option("--overwrite", is_flag=True, help="Replace this command's files in an existing --out.")
@data_read_options
def scan(data_path, model_dir, out_dir, threshold, top, last, overwrite, date_format, tz):
    """Write probabilities.csv (one column per TA-Lib name), detections.csv (with quality) and gallery/."""
    from effnet_trading.applications.candlesticks import scan_candles
    from effnet_trading.applications.gallery import detection_gallery
    from effnet_trading.imaging import load_ohlcv
    from effnet_trading.outputs import run_folder

    frame = load_ohlcv(data_path, date_format=date_format, tz=tz)
    frame = frame.iloc[-last:] if last else frame
    config = {"model": str(model_dir), "threshold": threshold, "top": top, "last": last}
    with run_folder(
        out_dir, command="candles scan", config=config, inputs={"data": data_path}, overwrite=overwrite
    ) as work:
        probs, det = scan_candles(frame, model_dir, thresholds=threshold)
        probs.to_csv(
            work / "probabilities.csv", index_label="timestamp", float_format="%.4f", date_format="%Y-%m-%dT%H:%M:%SZ"
        )
        det.to_csv(work / "detections.csv", index=False, float_format="%.4f", date_format="%Y-%m-%dT%H:%M:%SZ")
        spans = det.rename(columns={"pattern": "class"}).assign(start=det["timestamp"], end=det["timestamp"])
        detection_gallery(frame, spans, work / "gallery", top=top, before=12, after=3)
        counts = det["pattern"].value_counts().to_dict()
        (work / "summary.json").write_text(json.dumps({"bars": len(frame), "detections": counts} | config, indent=2))
    click.echo(f"{len(det)} detections over {len(frame)} bars: {counts}")
    click.echo(f"wrote {out_dir}")
