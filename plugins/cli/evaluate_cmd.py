"""``effnet-trading evaluate``: honest walk-forward evaluation of image models against baselines,
with a surrogate null run and a look-ahead check; exits non-zero when the pipeline leaks."""

from __future__ import annotations

import json

import click

from effnet_trading.plugins.cli._data_options import data_read_options, explain_top_option

__all__ = ["evaluate"]


def _csv(text: str | None) -> tuple[str, ...]:
    return tuple(s.strip() for s in (text or "").split(",") if s.strip())


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
    "kind",
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
@click.option("--resume", is_flag=True, help="Skip folds already finished in --out (folds/fold_k.json).")
@click.option("--progress/--no-progress", default=True, show_default=True)
def evaluate(
    date_format, tz, data_path, timeframe, last_bars, config_path, out_dir, resume, progress, explain_top, **flags
) -> None:
    """Walk-forward out-of-sample evaluation of MODELS vs baselines, after fees and slippage.

    Writes report.html, results.json, results.md, config.json and folds/ to --out; exits with
    status 1 when the null or look-ahead check finds a leak. --config FILE.toml holds the run's
    EvalConfig (the layout of config.json, e.g. ``folds = 3``, ``[train]``, ``[train.spec]``,
    ``[policy]``); options given on the command line override it.
    """
    from effnet_trading.evaluation.evaluate import EvalConfig
    from effnet_trading.evaluation.evaluate import evaluate as run
    from effnet_trading.imaging import load_ohlcv, resample_ohlcv

    ctx = click.get_current_context()
    cfg = EvalConfig.from_dict(_config_dict(ctx, config_path, flags) | {"data": str(data_path), "timeframe": timeframe})
    frame = load_ohlcv(data_path, date_format=date_format, tz=tz)
    if timeframe:
        frame = resample_ohlcv(frame, timeframe)
    if last_bars:
        frame = frame.iloc[-last_bars:]
    res = run(frame, cfg, out_dir, resume=resume, progress=progress)
    from pathlib import Path

    if explain_top:
        from effnet_trading.evaluation.explain_gallery import add_evaluate_gallery

        add_evaluate_gallery(out_dir, frame, explain_top)

    click.echo((Path(out_dir) / "results.md").read_text())
    click.echo(f"report: {Path(out_dir) / 'report.html'}  ({res['seconds_total']:.0f} s)")
    if not res["verdict"]["ok"]:
        raise click.ClickException("the pipeline leaks or looks ahead:\n  " + "\n  ".join(res["verdict"]["reasons"]))


# flag -> (section, key) in EvalConfig.to_dict(); None = top level
_PATHS = {
    "models": (None, "models"),
    "baselines": (None, "baselines"),
    "folds": (None, "folds"),
    "embargo": (None, "embargo"),
    "max_train_bars": (None, "max_train_bars"),
    "fees": (None, "fees"),
    "slippage": (None, "slippage"),
    "null": (None, "null"),
    "null_kind": (None, "null_kind"),
    "null_block": (None, "null_block"),
    "null_models": (None, "null_models"),
    "extra_trials": (None, "extra_trials"),
    "bootstrap": (None, "bootstrap"),
    "model_kwargs": (None, "model_kwargs"),
    "horizon": ("train", "horizon"),
    "label_k": ("train", "label_k"),
    "epochs": ("train", "epochs"),
    "patience": ("train", "patience"),
    "batch_size": ("train", "batch_size"),
    "lr": ("train", "lr"),
    "seed": ("train", "seed"),
    "threads": ("train", "num_threads"),
    "threshold": ("policy", "threshold"),
    "long_only": ("policy", "long_only"),
}
_SPEC_FLAGS = ("kind", "size", "window", "returns")


def _config_dict(ctx: click.Context, config_path: str | None, flags: dict) -> dict:
    """EvalConfig as a dict: the --config file (if any) with the command-line options laid over it."""
    from effnet_trading.config import read_toml
    from effnet_trading.imaging import spec_from_options

    d = read_toml(config_path) if config_path else {}
    given = {
        k for k in flags if not config_path or ctx.get_parameter_source(k) == click.core.ParameterSource.COMMANDLINE
    }
    for name in sorted(given & set(_PATHS)):
        section, key = _PATHS[name]
        value = _parse(name, flags[name])
        (d.setdefault(section, {}) if section else d)[key] = value
    if given & set(_SPEC_FLAGS):  # the spec options replace the file's spec as a whole
        spec = spec_from_options(flags["kind"], window=flags["window"], size=flags["size"], returns=flags["returns"])
        d.setdefault("train", {})["spec"] = spec.to_dict()
    return d


def _parse(name: str, value):
    if name in ("models", "baselines"):
        return list(_csv(value))
    if name == "null_models":
        return None if value is None else list(_csv(value))
    if name == "model_kwargs":
        try:
            return json.loads(value) if value else {}
        except json.JSONDecodeError as exc:
            raise click.BadParameter(
                f'not valid JSON ({exc}); e.g. \'{{"small_cnn": {{"widths": [16, 32, 64]}}}}\'',
                param_hint="--model-kwargs",
            ) from exc
    return value
