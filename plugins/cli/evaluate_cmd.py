"""``effnet-trading evaluate``: honest walk-forward evaluation of image models against baselines,
with a surrogate null run and a look-ahead check; exits non-zero when the pipeline leaks."""

from __future__ import annotations

import click

from effnet_trading.plugins.cli._data_options import data_read_options, explain_top_option, select_by_option

__all__ = ["evaluate"]


@click.command("evaluate")
@data_read_options
@click.option(
    "--data", "data_path", required=True, type=click.Path(exists=True, dir_okay=False), help="OHLCV CSV (.csv/.csv.gz)."
)
@click.option("--timeframe", default=None, help="Resample to this bar size first (closed bars only), e.g. 1h.")
@click.option(
    "--last-bars",
    default=None,
    type=click.IntRange(min=100),
    help="Evaluate only the most recent N bars (after resampling).",
)
@click.option("--start", default=None, metavar="DATE", help="First bar to use (inclusive), e.g. 2022-01-01.")
@click.option(
    "--end", default=None, metavar="DATE", help="Last bar to use (inclusive; a bare date includes its whole day)."
)
@click.option(
    "--split",
    default=None,
    metavar="TRAIN/VALID/TEST",
    help="One chronological holdout split, e.g. 70/15/15, instead of walk-forward folds (--folds is then ignored).",
)
@click.option(
    "--models",
    default="small_cnn",
    show_default=True,
    help="Comma-separated registered models (effnet-trading zoo list).",
)
@click.option(
    "--baselines",
    default="buy_and_hold,ma_crossover,logreg,effnet_features_gbm",
    show_default=True,
    help="Comma-separated baselines; empty for none.",
)
@click.option(
    "--spec",
    default="candles",
    show_default=True,
    type=click.Choice(["candles", "ohlc_bars", "gasf", "gadf", "recurrence", "stack"]),
    help="Image encoding.",
)
@click.option(
    "--returns/--levels", default=False, show_default=True, help="GASF/GADF of log-returns instead of price levels."
)
@click.option(
    "--size", default=64, show_default=True, type=click.IntRange(min=8), help="Image height and width (pixels)."
)
@click.option("--window", default=32, show_default=True, type=click.IntRange(min=2), help="Bars per image.")
@click.option(
    "--horizon",
    default=6,
    show_default=True,
    type=click.IntRange(min=1),
    help="Label horizon (bars); purge >= horizon.",
)
@click.option(
    "--label-k", default=0.5, show_default=True, type=float, help="Label band: k x rolling vol x sqrt(horizon)."
)
@click.option("--folds", default=3, show_default=True, type=click.IntRange(min=1), help="Walk-forward test windows.")
@click.option(
    "--embargo",
    default=None,
    type=click.IntRange(min=0),
    help="Extra bars between training and test (default: horizon).",
)
@click.option("--epochs", default=5, show_default=True, type=click.IntRange(min=1))
@click.option(
    "--patience", default=2, show_default=True, type=click.IntRange(min=1), help="Early-stopping patience (epochs)."
)
@click.option("--batch-size", default=128, show_default=True, type=click.IntRange(min=2))
@click.option("--lr", default=3e-3, show_default=True, type=float)
@click.option(
    "--max-train-bars",
    default=None,
    type=click.IntRange(min=100),
    help="Train on at most the N most recent samples per fold.",
)
@click.option("--fees", default=0.001, show_default=True, type=float, help="Fee per side, fraction of notional.")
@click.option("--slippage", default=0.0005, show_default=True, type=float, help="Slippage per fill, fraction of price.")
@click.option("--threshold", default=0.4, show_default=True, type=float, help="Policy confidence threshold.")
@click.option("--long-only", is_flag=True, help="Sell signals close longs instead of opening shorts.")
@click.option(
    "--null/--no-null",
    default=True,
    show_default=True,
    help="Run the surrogate null check (skipping it is stated in the report).",
)
@click.option(
    "--null-kind",
    default="block_bootstrap",
    show_default=True,
    type=click.Choice(["block_bootstrap", "block_shuffle", "random_walk"]),
)
@click.option(
    "--null-block", default=1, show_default=True, type=click.IntRange(min=1), help="Surrogate block length (bars)."
)
@click.option("--null-models", default=None, help="Models to run on the surrogate (default: all --models).")
@click.option(
    "--extra-trials",
    default=0,
    show_default=True,
    type=click.IntRange(min=0),
    help="Variants you tried before this run (deflated Sharpe counts them).",
)
@click.option("--bootstrap", default=1000, show_default=True, type=click.IntRange(min=50), help="Bootstrap resamples.")
@click.option(
    "--model-kwargs",
    default=None,
    help='JSON: model name -> builder kwargs, e.g. {"small_cnn": {"widths": [16, 32, 64]}}.',
)
@click.option(
    "--ablation",
    "ablations",
    multiple=True,
    help="Ablation on the same folds: timeframes, regime, orderbook (repeat or comma list; docs/results.md). "
    "orderbook needs --books covering >= 95 % of the bars (e.g. bars from `lob bars` and their capture).",
)
@click.option(
    "--ablation-timeframes",
    default="5m,15m,1h",
    show_default=True,
    help="Timeframes ablation: the data's bar size and coarser ones.",
)
@click.option(
    "--books",
    default=None,
    type=click.Path(exists=True),
    help="Order-book snapshots (folder or file, as `lob analyze --data`) for --ablation orderbook.",
)
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--threads", default=None, type=click.IntRange(min=1), help="torch CPU threads.")
@click.option(
    "--config",
    "config_path",
    default=None,
    type=click.Path(exists=True, dir_okay=False),
    help="TOML file with the run's EvalConfig (config.json layout); command-line options override it.",
)
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Run folder.")
@explain_top_option
@select_by_option
@click.option("--resume", is_flag=True, help="Skip folds already finished in --out (folds/fold_k.json).")
@click.option("--overwrite", is_flag=True, help="Write into a --out folder holding other files (they are kept).")
@click.option("--progress/--no-progress", default=True, show_default=True)
def evaluate(
    date_format,
    tz,
    data_path,
    timeframe,
    last_bars,
    start,
    end,
    config_path,
    out_dir,
    resume,
    overwrite,
    progress,
    explain_top,
    **flags,
) -> None:
    """Walk-forward out-of-sample evaluation of MODELS vs baselines, after fees and slippage.

    Writes report.html, results.json, results.md, config.json and folds/ to --out; exits with
    status 1 when the null or look-ahead check finds a leak. --config FILE.toml holds the run's
    EvalConfig (the layout of config.json, e.g. ``folds = 3``, ``[train]``, ``[train.spec]``,
    ``[policy]``); options given on the command line override it.
    """
    from effnet_trading.evaluation.evaluate import RESUME_IGNORES, EvalConfig
    from effnet_trading.evaluation.evaluate import evaluate as run
    from effnet_trading.evaluation.options import load_eval_data
    from effnet_trading.outputs import resumable_folder

    ctx = click.get_current_context()
    cfg = EvalConfig.from_dict(_config_dict(ctx, config_path, flags) | {"data": str(data_path), "timeframe": timeframe})
    frame = load_eval_data(
        data_path, timeframe=timeframe, last_bars=last_bars, date_format=date_format, tz=tz, start=start, end=end
    )
    if cfg.ablations:  # refused ablations (e.g. order books that do not cover the bars) leave --out untouched
        from effnet_trading.evaluation.ablation import check_ablations

        check_ablations(frame, cfg)
    with resumable_folder(
        out_dir,
        command="evaluate",
        # how the frame was cut and read is part of the run: a resume must use the same
        config=cfg.to_dict()
        | {"last_bars": last_bars, "date_format": date_format, "tz": tz}
        | ({"start": start, "end": end} if start or end else {}),
        inputs={"data": data_path},
        overwrite=overwrite,
        resume=resume,
        ignore=RESUME_IGNORES,
    ):
        res = run(frame, cfg, out_dir, resume=resume, progress=progress)
        if explain_top:  # inside the run: its files are the run's own
            from effnet_trading.evaluation.explain_gallery import add_evaluate_gallery

            add_evaluate_gallery(out_dir, frame, explain_top)
    from pathlib import Path

    click.echo((Path(out_dir) / "results.md").read_text())
    click.echo(f"report: {Path(out_dir) / 'report.html'}  ({res['seconds_total']:.0f} s)")
    if not res["verdict"]["ok"]:
        raise click.ClickException("the pipeline leaks or looks ahead:\n  " + "\n  ".join(res["verdict"]["reasons"]))


def _config_dict(ctx: click.Context, config_path: str | None, flags: dict) -> dict:
    """EvalConfig as a dict: the --config file (if any) with the command-line options laid over it."""
    from effnet_trading.config import read_toml
    from effnet_trading.evaluation.options import OPTION_PATHS, SPEC_OPTIONS, eval_config_dict

    given = {
        k for k in flags if not config_path or ctx.get_parameter_source(k) == click.core.ParameterSource.COMMANDLINE
    }
    options = {k: flags[k] for k in given & set(OPTION_PATHS)}
    if given & set(SPEC_OPTIONS):  # all four, with their defaults: they replace the file's spec as a whole
        options.update({k: flags[k] for k in SPEC_OPTIONS})
    return eval_config_dict(options, read_toml(config_path) if config_path else None)
