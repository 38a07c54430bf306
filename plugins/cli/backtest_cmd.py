"""``effnet-trading backtest``: score an OHLCV CSV with exported model(s) and backtest the signal in
backtrader or vectorbt under the execution contract; write summary.json, trades.csv, signals.csv
and report.html."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from effnet_trading.plugins.backtest import ENGINES
from effnet_trading.plugins.cli._data_options import (
    data_read_options,
    explain_top_option,
    policy_from_options,
    policy_options,
)

__all__ = ["backtest"]


def _fmt_line(name: str, s: dict[str, Any]) -> str:
    def f(k, spec):
        v = s.get(k)
        return "nan" if v is None else format(v, spec)

    cagr = f("cagr", "+.2%") if s.get("cagr") is not None else "n/a (span < 90 days)"
    return (
        f"{name:<12} return {f('total_return', '+.2%')}  CAGR {cagr}  Sharpe {f('sharpe', '.2f')}  "
        f"maxDD {f('max_drawdown', '.2%')}  trades {s.get('trades', '-')}  exposure {f('exposure', '.0%')}"
    )


@click.command("backtest")
@data_read_options
@click.option(
    "--data",
    "data_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="OHLCV CSV (timestamp, open, high, low, close, volume).",
)
@click.option(
    "--model",
    "models",
    multiple=True,
    type=click.Path(file_okay=False),
    help="Model folder (model.onnx + card.json); repeat with --timeframes for an ensemble.",
)
@click.option("--engine", default="vectorbt", show_default=True, type=click.Choice(ENGINES))
@click.option(
    "--timeframes",
    default=None,
    help="Comma-separated timeframes, one per --model, e.g. 5m,15m,1h (higher ones use closed bars only).",
)
@policy_options
@click.option(
    "--fees",
    default=0.001,
    show_default=True,
    type=click.FloatRange(0, 1, max_open=True),
    help="Fee per trade, fraction of notional.",
)
@click.option(
    "--slippage",
    default=0.0005,
    show_default=True,
    type=click.FloatRange(0, 1, max_open=True),
    help="Fill price moved against the trade, fraction.",
)
@click.option(
    "--cash", default=10_000.0, show_default=True, type=click.FloatRange(min=0, min_open=True), help="Starting cash."
)
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False),
    help="Folder for summary.json, trades.csv, signals.csv, report.html.",
)
@click.option("--progress/--no-progress", default=True, show_default=True)
@click.option(
    "--periods-per-year",
    default=None,
    type=click.FloatRange(min=0, min_open=True),
    help="Annualisation, e.g. 252 for daily stock bars; default: observed from the data's calendar.",
)
@click.option(
    "--overwrite",
    is_flag=True,
    help="Write into a folder that holds other files (only this command's own files are replaced).",
)
@explain_top_option
def backtest(
    date_format,
    tz,
    data_path,
    models,
    engine,
    timeframes,
    threshold,
    hysteresis,
    long_only,
    fees,
    slippage,
    cash,
    out_dir,
    progress,
    periods_per_year,
    overwrite,
    explain_top,
) -> None:
    """Backtest exported model(s) on a CSV: decide at each bar's close, fill at the next open."""
    from effnet_trading.imaging import load_ohlcv
    from effnet_trading.outputs import run_folder
    from effnet_trading.plugins.backtest import build_scorer, run_backtest, write_backtest_outputs

    tfs = [t.strip() for t in timeframes.split(",") if t.strip()] if timeframes else None
    if not Path(data_path).is_file():
        raise click.ClickException(
            f"--data {data_path}: no such file; pass an OHLCV CSV (timestamp, open, high, low, close, volume)."
        )
    ohlcv = load_ohlcv(data_path, date_format=date_format, tz=tz)
    if explain_top and (len(models) != 1 or tfs):
        raise click.UsageError("--explain-top explains one model's decisions: pass one --model and no --timeframes.")
    scorer = build_scorer(list(models), tfs)
    config = {
        "data": str(Path(data_path).resolve()),
        "models": [str(Path(m).resolve()) for m in models],
        "timeframes": tfs,
    }
    policy = policy_from_options(threshold, hysteresis, long_only)
    run_config = {
        **config,
        "engine": engine,
        "policy": policy.to_dict(),
        "fees": fees,
        "slippage": slippage,
        "cash": cash,
        "periods_per_year": periods_per_year,
        "date_format": date_format,
        "tz": tz,
    }
    inputs = {"data": data_path, **{f"model_{i}": Path(m) / "model.onnx" for i, m in enumerate(models)}}
    # the run is written to a temporary sibling and moved into place when complete (nothing half-written)
    with run_folder(out_dir, command="backtest", config=run_config, inputs=inputs, overwrite=overwrite) as work:
        out = run_backtest(
            ohlcv,
            scorer,
            engine=engine,
            policy=policy,
            fees=fees,
            slippage=slippage,
            init_cash=cash,
            progress=progress and len(ohlcv) > 20_000,
            config=config,
            periods_per_year=periods_per_year,
        )
        page = write_backtest_outputs(out, ohlcv, work)
        if explain_top:
            from effnet_trading.evaluation.explain_gallery import add_report_gallery

            add_report_gallery(page, ohlcv, models[0], explain_top, probs=out.probs)
    report = Path(out_dir) / "report.html"
    click.echo(f"{engine}: {len(ohlcv)} bars {ohlcv.index[0]} .. {ohlcv.index[-1]}, fees {fees}, slippage {slippage}")
    click.echo(
        f"annualised with {out.summary['periods_per_year']:.1f} bars a year ({out.summary['periods_per_year_source']})"
    )
    gaps = out.summary["gaps"]
    if gaps["count"]:
        click.echo(
            f"gaps: {gaps['count']} longer than {gaps['threshold']} (largest {gaps['largest']}, ending {gaps['largest_at']}); "
            "not filled: returns across a gap are one bar's"
        )
    click.echo(_fmt_line("strategy", out.summary["strategy"]))
    click.echo(_fmt_line("buy & hold", out.summary["buy_and_hold"]))
    click.echo(f"report: {report}")
