"""``effnet-trading predict``: class probabilities per bar (and per symbol) into a score file that
``PrecomputedScores.from_file`` (a Scorer for both engines) and ``ProbabilityData.from_scores`` re-use without scoring again."""

from __future__ import annotations

from pathlib import Path

import click

from effnet_trading.plugins.cli._data_options import data_read_options, model_options, symbols_data_option

__all__ = ["predict"]


@click.command("predict")
@data_read_options
@symbols_data_option
@model_options
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False),
    help="Score file: Parquet (default), or CSV (+ a .json provenance sidecar) when it ends in .csv.",
)
@click.option("--progress/--no-progress", default=True, show_default=True)
@click.option("--overwrite", is_flag=True, help="Replace an existing file that is not a score file.")
def predict(date_format, tz, data_paths, timeframes, models, out, progress, overwrite) -> None:
    """Score OHLCV bars once: columns timestamp, [symbol], one per class (the values of backtest's signals.csv)."""
    from effnet_trading.errors import EffnetTradingError, OutputError
    from effnet_trading.plugins.backtest import build_scorer
    from effnet_trading.plugins.predict import predict_to_file
    from effnet_trading.strategies.scores import read_scores

    if Path(out).exists() and not overwrite:
        try:
            read_scores(out)
        except (EffnetTradingError, ValueError):  # a foreign parquet/CSV or a corrupt sidecar
            raise OutputError(
                f"--out {out} exists and is not a score file written by predict; choose another path or pass --overwrite."
            ) from None
    tfs = [t.strip() for t in timeframes.split(",") if t.strip()] if timeframes else None
    scorer = build_scorer(list(models), tfs)
    path = predict_to_file(list(data_paths), scorer, out, progress=progress, date_format=date_format, tz=tz)
    frame, meta = read_scores(path)
    click.echo(f"{len(meta['symbols'])} symbol(s) {', '.join(meta['symbols'][:5])}, {len(frame)} rows -> {path}")
