"""``effnet-trading train``: train on an OHLCV CSV with purged walk-forward splits and export a model folder."""

from __future__ import annotations

import click

from effnet_trading.plugins.cli._data_options import data_read_options, select_by_option

__all__ = ["train"]

_SPEC_FLAGS = ("kind", "window", "size", "timeframe", "fields", "returns")


@click.command("train")
@data_read_options
@click.option(
    "--data",
    "data_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    help="OHLCV CSV (timestamp, open, high, low, close, volume).",
)
@click.option(
    "--model", default="small_cnn", show_default=True, help="Registered model name (effnet-trading zoo list)."
)
@click.option(
    "--kind", default="gadf", show_default=True, help="Image kind: candles, ohlc_bars, gasf, gadf, recurrence."
)
@click.option("--window", default=32, show_default=True, type=click.IntRange(min=2), help="Bars per image.")
@click.option(
    "--size", default=32, show_default=True, type=click.IntRange(min=4), help="Image height and width (pixels)."
)
@click.option("--timeframe", default=None, help="Resample to this bar size first (closed bars only), e.g. 15m.")
@click.option(
    "--fields", default=None, help="Comma-separated price series for gasf/gadf/recurrence, e.g. close,volume."
)
@click.option(
    "--returns/--levels",
    default=False,
    show_default=True,
    help="Encode log-returns instead of price levels (gasf/gadf/recurrence).",
)
@click.option("--horizon", default=6, show_default=True, type=click.IntRange(min=1), help="Label horizon (bars).")
@click.option(
    "--label-k", default=0.5, show_default=True, type=float, help="Label band: k x rolling vol x sqrt(horizon)."
)
@click.option("--epochs", default=10, show_default=True, type=click.IntRange(min=1))
@click.option("--batch-size", default=128, show_default=True, type=click.IntRange(min=2))
@click.option("--lr", default=3e-3, show_default=True, type=float)
@click.option(
    "--folds", default=1, show_default=True, type=click.IntRange(min=1), help="Walk-forward folds (purged, embargoed)."
)
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--device", default="auto", show_default=True, help="auto (cuda if available), cpu or cuda.")
@click.option(
    "--max-train-samples", default=None, type=int, help="Train on at most this many of the most recent samples."
)
@click.option(
    "--calibrate",
    type=click.Choice(["temperature"]),
    default=None,
    help="Fit a temperature on the validation fold; stored in the card and applied by the Predictor.",
)
@select_by_option
@click.option("--resume", is_flag=True, help="Continue from the checkpoints in --out.")
@click.option("--overwrite", is_flag=True, help="Write into a --out folder holding other files (they are kept).")
@click.option(
    "--config",
    "config_path",
    default=None,
    type=click.Path(exists=True, dir_okay=False),
    help="TOML file with the TrainConfig (config.json layout); command-line options override it.",
)
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False),
    help="Run folder: config, history, metrics, checkpoints, model/.",
)
@click.option("--progress/--no-progress", default=True, show_default=True)
def train(date_format, tz, data_path, config_path, resume, overwrite, out_dir, **flags) -> None:
    """Train MODEL on images of the CSV, report out-of-sample metrics beside the majority rate, export ONNX + card.

    --config FILE.toml holds the TrainConfig (the layout of the run's config.json, e.g. ``epochs = 10``
    and a ``[spec]`` table); options given on the command line override it.
    """
    from effnet_trading.config import read_toml
    from effnet_trading.evaluation.calibration_plot import calibration_lines, write_calibration_png
    from effnet_trading.imaging import load_ohlcv, spec_from_options
    from effnet_trading.model_zoo.curves import format_curves
    from effnet_trading.model_zoo.metrics import format_report
    from effnet_trading.model_zoo.train import TrainConfig, train_and_export
    from effnet_trading.outputs import resumable_folder

    ctx = click.get_current_context()
    d = read_toml(config_path) if config_path else {}
    given = {
        k for k in flags if not config_path or ctx.get_parameter_source(k) == click.core.ParameterSource.COMMANDLINE
    }
    d |= {k: flags[k] for k in given if k not in _SPEC_FLAGS}
    if given & set(_SPEC_FLAGS):  # the spec options replace the file's spec as a whole
        d["spec"] = spec_from_options(
            flags["kind"],
            window=flags["window"],
            size=flags["size"],
            timeframe=flags["timeframe"],
            returns=flags["returns"],
            fields=flags["fields"],
        ).to_dict()
    cfg = TrainConfig.from_dict(d)
    frame = load_ohlcv(data_path, date_format=date_format, tz=tz)
    with resumable_folder(
        out_dir,
        command="train",
        config=cfg.to_dict(),
        inputs={"data": data_path},
        overwrite=overwrite,
        resume=resume,
        ignore=("progress", "num_threads"),
    ):
        res = train_and_export(frame, cfg, out_dir, resume=resume)
        m = res.metrics
        if len(res.folds) > 1:
            reports = {f"fold{f['fold']}": f["test"] for f in res.folds}
        else:
            reports = ({"valid": m["valid"]} if m.get("valid") else {}) | {"test": m["test"]}
        png = write_calibration_png(reports, f"{out_dir}/calibration.png")  # inside the run: one of its files
    horizon = cfg.horizon
    click.echo(format_report(reports))
    if len(res.folds) > 1:
        s = m["summary"]
        click.echo(
            f"mean over {s['folds']} folds: accuracy {s['accuracy']:.4f}, macro-F1 {s['macro_f1']:.4f}, "
            f"log-loss {s['log_loss']:.4f}, majority {s['majority_rate']:.4f}"
        )
    for line in calibration_lines(reports):
        click.echo(line)
    cal = m.get("calibration")
    if cal:
        click.echo(
            f"temperature {cal['temperature']:.3f} (fitted on the validation fold): test ECE "
            f"{cal['ece_before']:.4f} -> {cal['ece_after']:.4f}"
        )
    click.echo(f"reliability diagram: {png}")
    click.echo(format_curves(res.history, res.folds))
    click.echo(f"architecture: {m['architecture']}")
    click.echo(f"test span {m['split']['test'][0]} .. {m['split']['test'][1]} (purged, horizon {horizon} bars)")
    for w in m["test"]["warnings"]:
        click.echo(f"warning: {w}", err=True)
    click.echo(f"model: {res.model_dir}")
