"""``effnet-trading backtest``: score an OHLCV CSV with exported model(s) and backtest the signal in
backtrader or vectorbt under the execution contract; write summary.json, trades.csv, signals.csv
and report.html."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from effnet_trading.plugins.backtest import ENGINES
from effnet_trading.plugins.cli._data_options import (
    cost_options,
    data_read_options,
    explain_top_option,
    model_options,
    policy_from_options,
    policy_options,
    symbols_data_option,
)

__all__ = ["backtest"]


def _fmt_line(name: str, s: dict[str, Any]) -> str:
    def f(k, spec):
        v = s.get(k)
        return "nan" if v is None else format(v, spec)

    cagr = f("cagr", "+.2%") if s.get("cagr") is not None else f"n/a ({s.get('cagr_note') or 'span < 90 days'})"
    ruined = ""
    if s.get("ruined"):  # equity reached 0: see "Ruin" in strategies.execution
        ruined = "  RUINED" + (f" at {s['ruined_at']}" if s.get("ruined_at") else "") + ": equity reached 0"
    return (
        f"{name:<12} return {f('total_return', '+.2%')}  CAGR {cagr}  Sharpe {f('sharpe', '.2f')}  "
        f"maxDD {f('max_drawdown', '.2%')}  trades {s.get('trades', '-')}  exposure {f('exposure', '.0%')}{ruined}"
    )


@click.command("backtest")
@data_read_options
@symbols_data_option
@click.option(
    "--cash-sharing/--no-cash-sharing",
    default=False,
    show_default=True,
    help="Several symbols: one cash pool (target / n of the equity per symbol; backtrader: one broker for "
    "all symbols) instead of separate sleeves of cash / n.",
)
@model_options
@click.option("--engine", default="vectorbt", show_default=True, type=click.Choice(ENGINES))
@policy_options
@cost_options()
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
    data_paths,
    cash_sharing,
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
    from effnet_trading.plugins.portfolio import run_backtest_many, write_many_outputs

    tfs = [t.strip() for t in timeframes.split(",") if t.strip()] if timeframes else None
    many = len(data_paths) > 1 or Path(data_paths[0]).is_dir()
    if explain_top and (len(models) != 1 or tfs or many):
        raise click.UsageError(
            "--explain-top explains one model's decisions on one symbol: pass one --model, one --data file "
            "and no --timeframes."
        )
    if many:
        from effnet_trading.imaging import symbol_paths

        paths = symbol_paths(data_paths)
        data = {s: str(Path(p).resolve()) for s, p in paths.items()}
    else:
        (data_path,) = data_paths
        if not Path(data_path).is_file():
            raise click.ClickException(
                f"--data {data_path}: no such file; pass an OHLCV CSV (timestamp, open, high, low, close, volume)."
            )
        data = str(Path(data_path).resolve())
    scorer = build_scorer(list(models), tfs)
    config = {"data": data, "models": [str(Path(m).resolve()) for m in models], "timeframes": tfs}
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
    model_inputs = {f"model_{i}": Path(m) / "model.onnx" for i, m in enumerate(models)}
    run_args = {
        "engine": engine,
        "policy": policy,
        "fees": fees,
        "slippage": slippage,
        "init_cash": cash,
        "config": config,
        "periods_per_year": periods_per_year,
    }
    if many:
        run_config["cash_sharing"] = cash_sharing
        frames = {s: load_ohlcv(p, date_format=date_format, tz=tz) for s, p in paths.items()}
        inputs = {**{f"data_{s}": p for s, p in paths.items()}, **model_inputs}
        with run_folder(out_dir, command="backtest", config=run_config, inputs=inputs, overwrite=overwrite) as work:
            out = run_backtest_many(
                frames,
                scorer,
                cash_sharing=cash_sharing,
                progress=progress and sum(map(len, frames.values())) > 20_000,
                **run_args,
            )
            write_many_outputs(out, frames, work)
        click.echo(
            f"{engine}: {len(frames)} symbols, {out.summary['bars']} bars, {out.summary['config']['cash_split']}"
        )
        for sym, stats in out.summary["symbols"].items():
            s = stats.get("strategy", stats)
            ret = s.get("total_return")
            click.echo(f"  {sym}: trades {s.get('trades', '-')}" + (f", return {ret:+.2%}" if ret is not None else ""))
        click.echo(_fmt_line("portfolio", out.summary["strategy"]))
        click.echo(_fmt_line("buy & hold", out.summary["buy_and_hold"]))
        click.echo(f"report: {Path(out_dir) / 'report.html'}")
        return
    ohlcv = load_ohlcv(data_path, date_format=date_format, tz=tz)
    inputs = {"data": data_path, **model_inputs}
    # the run is written to a temporary sibling and moved into place when complete (nothing half-written)
    with run_folder(out_dir, command="backtest", config=run_config, inputs=inputs, overwrite=overwrite) as work:
        out = run_backtest(ohlcv, scorer, progress=progress and len(ohlcv) > 20_000, **run_args)
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
