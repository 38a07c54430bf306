"""``effnet-trading regimes fit|scan``: train the regime classifier + HMM, and scan data causally."""

from __future__ import annotations

import json

import click

from effnet_trading.plugins.cli._data_options import data_read_options

__all__ = ["regimes"]

_DATA = click.option(
    "--data",
    "data_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    help="OHLCV CSV (timestamp, open, high, low, close, volume; .csv or .csv.gz).",
)
_OVERWRITE = click.option(
    "--overwrite", is_flag=True, help="Write into a non-empty --out, replacing only this command's own files."
)


@click.group("regimes")
def regimes() -> None:
    """Market regimes: trend up/down, ranging, high volatility, low liquidity (docs/regimes_and_orderbooks.md)."""


@regimes.command("fit")
@data_read_options
@_DATA
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Model folder to write.")
@click.option(
    "--model", default="small_cnn", show_default=True, help="Registered classifier (effnet-trading zoo list)."
)
@click.option("--kind", default="candles", show_default=True, help="Image kind the classifier sees.")
@click.option("--image-window", default=32, show_default=True, type=click.IntRange(min=4), help="Bars per image.")
@click.option("--size", default=32, show_default=True, type=click.IntRange(min=8), help="Image height and width (px).")
@click.option("--window", default=48, show_default=True, type=click.IntRange(min=2), help="Regime rule window (bars).")
@click.option("--base", default=960, show_default=True, type=click.IntRange(min=2), help="Baseline lookback (bars).")
@click.option("--vol-mult", default=2.0, show_default=True, type=float, help="high_vol: vol > this x baseline vol.")
@click.option("--liq-mult", default=0.3, show_default=True, type=float, help="low_liquidity: volume < this x baseline.")
@click.option("--er-min", default=0.3, show_default=True, type=float, help="Trending: efficiency ratio >= this.")
@click.option("--epochs", default=3, show_default=True, type=click.IntRange(min=1))
@click.option("--max-train-samples", default=5000, show_default=True, type=click.IntRange(min=1))
@click.option("--seed", default=0, show_default=True, type=int)
@_OVERWRITE
def fit(date_format, tz, data_path, out_dir, model, kind, image_window, size, epochs, max_train_samples, seed,
        overwrite, **rule_flags) -> None:  # fmt: skip
    """Label regimes by rule, train an image classifier on them, fit the HMM on its out-of-sample output."""
    from effnet_trading.applications.regimes import RegimeFitConfig, RegimeRules, fit_regimes
    from effnet_trading.imaging import load_ohlcv, spec_from_options
    from effnet_trading.outputs import run_folder

    cfg = RegimeFitConfig(
        rules=RegimeRules(**rule_flags),
        spec=spec_from_options(kind, window=image_window, size=size),
        model=model,
        epochs=epochs,
        max_train_samples=max_train_samples,
        seed=seed,
    )
    frame = load_ohlcv(data_path, date_format=date_format, tz=tz)
    inputs = {"data": data_path}
    with run_folder(out_dir, command="regimes fit", config=cfg.to_dict(), inputs=inputs, overwrite=overwrite) as work:
        summary = fit_regimes(frame, cfg, work)
        (work / "summary.json").write_text(json.dumps(summary, indent=1))
    t = summary["classifier_test"]
    click.echo(
        f"classifier (out-of-sample, {t['n']} bars): accuracy {t['accuracy']:.3f}, macro-F1 {t['macro_f1']:.3f}, "
        f"majority rate {t['majority_rate']:.3f} ({t['majority_class']})"
    )
    click.echo("transition matrix (rows: from, columns: to, order " + ", ".join(summary["regimes"]) + "):")
    for row in summary["transition_matrix"]:
        click.echo("  " + " ".join(f"{x:.3f}" for x in row))
    click.echo(f"model folder: {out_dir}")


@regimes.command("scan")
@data_read_options
@_DATA
@click.option(
    "--model", "model_dir", required=True, type=click.Path(exists=True, file_okay=False), help="`regimes fit` folder."
)
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Folder for the results.")
@_OVERWRITE
def scan(date_format, tz, data_path, model_dir, out_dir, overwrite) -> None:
    """Causal regime probabilities per bar (regimes.csv), a shaded chart (regimes.png) and summary.json."""
    from effnet_trading.applications.regimes import RegimeModel, scan_regimes
    from effnet_trading.imaging import load_ohlcv
    from effnet_trading.outputs import run_folder

    model = RegimeModel(model_dir)  # refuses a folder that is not a `regimes fit` run before writing anything
    frame = load_ohlcv(data_path, date_format=date_format, tz=tz)
    config = {"model": str(model_dir)}
    inputs = {"data": data_path, "hmm": f"{model_dir}/hmm.json"}
    with run_folder(out_dir, command="regimes scan", config=config, inputs=inputs, overwrite=overwrite) as work:
        summary = scan_regimes(frame, model, work)
    shares = ", ".join(f"{r} {s:.1%}" for r, s in summary["regime_shares"].items())
    click.echo(f"{summary['scored_bars']} of {summary['bars']} bars scored; regime shares: {shares}")
    a = summary["agreement_with_rule_labels"]
    if a["accuracy"] is not None:
        click.echo(
            f"agreement with the rule labels: {a['accuracy']:.3f} over {a['n']} bars "
            f"(majority rate {a['majority_rate']:.3f}, {a['majority_regime']})"
        )
    click.echo(f"wrote {out_dir}/regimes.csv, regimes.png, summary.json")
