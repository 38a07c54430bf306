"""``effnet-trading demo``: parses the options and calls ``effnet_trading.plugins.demo.run_demo``."""

from __future__ import annotations

import click

__all__ = ["demo"]


@click.command("demo")
@click.option(
    "--out",
    "out_dir",
    default="effnet-demo",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Folder for the model, results and reports.",
)
@click.option(
    "--bars",
    default=8000,
    show_default=True,
    type=click.IntRange(min=1000),
    help="Most recent real hourly bars to use (70 % train, 30 % unseen test).",
)
@click.option(
    "--epochs",
    default=5,
    show_default=True,
    type=click.IntRange(min=1),
    help="Training epochs (early stopping may end sooner).",
)
@click.option(
    "--model", default="auto", show_default=True, help="Registered architecture; auto = the compact EfficientNet."
)
@click.option("--threshold", default=0.5, show_default=True, type=click.FloatRange(0, 1))
@click.option("--fees", default=0.0005, show_default=True, type=click.FloatRange(0, 1, max_open=True))
@click.option(
    "--planted-check/--no-planted-check",
    default=True,
    show_default=True,
    help="Also run the planted-edge pipeline check.",
)
@click.option(
    "--overwrite",
    is_flag=True,
    help="Write into a folder that holds other files (only the demo's own files are replaced).",
)
def demo(out_dir, bars, epochs, model, threshold, fees, planted_check, overwrite) -> None:
    """Train a compact model on real BTC/USDT hours and backtest it in backtrader and vectorbt on unseen bars."""
    from effnet_trading.plugins.demo import run_demo

    run_demo(
        out_dir,
        bars=bars,
        epochs=epochs,
        model=model,
        threshold=threshold,
        fees=fees,
        planted_check=planted_check,
        overwrite=overwrite,
        echo=click.echo,
    )
