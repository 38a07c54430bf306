"""``effnet-trading evaluate``: honest walk-forward evaluation of image models against baselines,
with a surrogate null run and a look-ahead check; exits non-zero when the pipeline leaks."""
from __future__ import annotations

import click

from effnet_trading.plugins.cli._data_options import data_read_options

__all__ = ["evaluate", "make_spec"]


def make_spec(kind: str, size: int, window: int, returns: bool = False):
    """The image spec for ``--spec``: a single kind, or ``stack`` = grey candles + GASF + GADF (3 channels)."""
    from effnet_trading.imaging import ImageSpec, StackSpec

    if kind == "stack":
        return StackSpec((ImageSpec("candles", window=window, size=(size, size), color="grey"),
                          ImageSpec("gasf", window=window, size=(size, size), returns=returns),
                          ImageSpec("gadf", window=window, size=(size, size), returns=returns)))
    extra = {"returns": returns} if kind in ("gasf", "gadf", "recurrence") else {}
    return ImageSpec(kind, window=window, size=(size, size), **extra)


def _csv(text: str | None) -> tuple[str, ...]:
    return tuple(s.strip() for s in (text or "").split(",") if s.strip())


@click.command("evaluate")
@data_read_options
@click.option("--data", "data_path", required=True, type=click.Path(exists=True, dir_okay=False), help="OHLCV CSV (.csv/.csv.gz).")
@click.option("--timeframe", default=None, help="Resample to this bar size first (closed bars only), e.g. 1h.")
@click.option("--last-bars", default=None, type=click.IntRange(min=100), help="Evaluate only the most recent N bars (after resampling).")
@click.option("--models", default="small_cnn", show_default=True, help="Comma-separated registered models (effnet-trading zoo list).")
@click.option("--baselines", default="buy_and_hold,ma_crossover,logreg,effnet_features_gbm", show_default=True,
              help="Comma-separated baselines; empty for none.")
@click.option("--spec", "kind", default="candles", show_default=True,
              type=click.Choice(["candles", "ohlc_bars", "gasf", "gadf", "recurrence", "stack"]), help="Image encoding.")
@click.option("--returns/--levels", default=False, show_default=True, help="GASF/GADF of log-returns instead of price levels.")
@click.option("--size", default=64, show_default=True, type=click.IntRange(min=8), help="Image height and width (pixels).")
@click.option("--window", default=32, show_default=True, type=click.IntRange(min=2), help="Bars per image.")
@click.option("--horizon", default=6, show_default=True, type=click.IntRange(min=1), help="Label horizon (bars); purge >= horizon.")
@click.option("--label-k", default=0.5, show_default=True, type=float, help="Label band: k x rolling vol x sqrt(horizon).")
@click.option("--folds", default=3, show_default=True, type=click.IntRange(min=1), help="Walk-forward test windows.")
@click.option("--embargo", default=None, type=click.IntRange(min=0), help="Extra bars between training and test (default: horizon).")
@click.option("--epochs", default=5, show_default=True, type=click.IntRange(min=1))
@click.option("--patience", default=2, show_default=True, type=click.IntRange(min=1), help="Early-stopping patience (epochs).")
@click.option("--batch-size", default=128, show_default=True, type=click.IntRange(min=2))
@click.option("--lr", default=3e-3, show_default=True, type=float)
@click.option("--max-train-bars", default=None, type=click.IntRange(min=100), help="Train on at most the N most recent samples per fold.")
@click.option("--fees", default=0.001, show_default=True, type=float, help="Fee per side, fraction of notional.")
@click.option("--slippage", default=0.0005, show_default=True, type=float, help="Slippage per fill, fraction of price.")
@click.option("--threshold", default=0.4, show_default=True, type=float, help="Policy confidence threshold.")
@click.option("--long-only", is_flag=True, help="Sell signals close longs instead of opening shorts.")
@click.option("--null/--no-null", default=True, show_default=True, help="Run the surrogate null check (skipping it is stated in the report).")
@click.option("--null-kind", default="block_bootstrap", show_default=True,
              type=click.Choice(["block_bootstrap", "block_shuffle", "random_walk"]))
@click.option("--null-block", default=1, show_default=True, type=click.IntRange(min=1), help="Surrogate block length (bars).")
@click.option("--null-models", default=None, help="Models to run on the surrogate (default: all --models).")
@click.option("--extra-trials", default=0, show_default=True, type=click.IntRange(min=0),
              help="Variants you tried before this run (deflated Sharpe counts them).")
@click.option("--bootstrap", default=1000, show_default=True, type=click.IntRange(min=50), help="Bootstrap resamples.")
@click.option("--model-kwargs", default=None, help='JSON: model name -> builder kwargs, e.g. {"small_cnn": {"widths": [16, 32, 64]}}.')
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--threads", default=None, type=click.IntRange(min=1), help="torch CPU threads.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Run folder.")
@click.option("--resume", is_flag=True, help="Skip folds already finished in --out (folds/fold_k.json).")
@click.option("--progress/--no-progress", default=True, show_default=True)
@click.option("--leak-bars", default=0, hidden=True, type=click.IntRange(min=0), help="TEST ONLY: build a deliberately leaky pipeline.")
def evaluate(date_format, tz, data_path, timeframe, last_bars, models, baselines, kind, returns, size, window, horizon, label_k, folds, embargo,
             epochs, patience, batch_size, lr, max_train_bars, fees, slippage, threshold, long_only, null, null_kind, null_block,
             null_models, extra_trials, bootstrap, model_kwargs, seed, threads, out_dir, resume, progress, leak_bars) -> None:
    """Walk-forward out-of-sample evaluation of MODELS vs baselines, after fees and slippage.

    Writes report.html, results.json, results.md, config.json and folds/ to --out; exits with
    status 1 when the null or look-ahead check finds a leak.
    """
    import json

    from effnet_trading.errors import EffnetTradingError
    from effnet_trading.imaging import load_ohlcv, resample_ohlcv
    from effnet_trading.strategies.evaluate import EvalConfig
    from effnet_trading.strategies.evaluate import evaluate as run

    try:
        kwargs = json.loads(model_kwargs) if model_kwargs else {}
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not valid JSON ({exc}); e.g. '{{\"small_cnn\": {{\"widths\": [16, 32, 64]}}}}'",
                                 param_hint="--model-kwargs") from exc
    try:
        frame = load_ohlcv(data_path, date_format=date_format, tz=tz)
        if timeframe:
            frame = resample_ohlcv(frame, timeframe)
        if last_bars:
            frame = frame.iloc[-last_bars:]
        cfg = EvalConfig(models=_csv(models), spec=make_spec(kind, size, window, returns), horizon=horizon, label_k=label_k,
                         folds=folds, embargo=embargo, epochs=epochs, patience=patience, batch_size=batch_size, lr=lr,
                         max_train_bars=max_train_bars, fees=fees, slippage=slippage, threshold=threshold, long_only=long_only,
                         baselines=_csv(baselines), null=null, null_kind=null_kind, null_block=null_block,
                         null_models=_csv(null_models) if null_models is not None else None, extra_trials=extra_trials,
                         bootstrap=bootstrap, model_kwargs=kwargs, seed=seed, num_threads=threads, data=str(data_path), timeframe=timeframe)
        res = run(frame, cfg, out_dir, resume=resume, progress=progress, leak_bars=leak_bars)
    except EffnetTradingError as exc:
        raise click.ClickException(str(exc)) from exc
    from pathlib import Path

    click.echo((Path(out_dir) / "results.md").read_text())
    click.echo(f"report: {Path(out_dir) / 'report.html'}  ({res['seconds_total']:.0f} s)")
    if not res["verdict"]["ok"]:
        raise click.ClickException("the pipeline leaks or looks ahead:\n  " + "\n  ".join(res["verdict"]["reasons"]))
