"""Backtest a scorer on an OHLCV frame in backtrader or vectorbt under the execution contract
(decide at the close of bar t, fill at the open of bar t+1), and write summary.json, trades.csv,
signals.csv and report.html. The ``backtest`` and ``demo`` commands call this module."""

from __future__ import annotations

import contextlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from effnet_trading.strategies.execution import TRADE_COLUMNS

__all__ = [
    "run_backtest",
    "BacktestOutput",
    "build_scorer",
    "scoring_progress",
    "images_expected",
    "write_backtest_outputs",
    "ENGINES",
]

ENGINES = ("backtrader", "vectorbt")


@dataclass
class BacktestOutput:
    """One engine's run on one frame: per-bar probabilities/targets/equity plus trades and the summary."""

    engine: str
    probs: pd.DataFrame
    target: pd.Series
    equity: pd.Series
    benchmark: pd.Series
    trades: pd.DataFrame
    summary: dict
    latency_ms: np.ndarray
    held: pd.Series | None = None  # the target in effect during each bar (filled at its open; 0 after a ruin)


class _Progress:
    """Wraps a predictor: advances a tqdm bar by the images of each ``predict`` call."""

    def __init__(self, inner, bar):
        self._inner, self._bar = inner, bar

    def predict(self, images, closes=None):
        out = self._inner.predict(images, closes=closes)
        self._bar.update(len(images))
        return out

    def __getattr__(self, name):
        return getattr(self._inner, name)


def _models(scorer) -> list:
    """The SignalModels inside ``scorer`` whose predictor can be wrapped and timed (none for other scorers)."""
    members = list(scorer.members.values()) if hasattr(scorer, "members") else [scorer]
    return [m for m in members if hasattr(m, "model")]


def images_expected(scorer, ohlcv: pd.DataFrame) -> int:
    """About how many images scoring renders: one per bar per member, per higher bar for higher timeframes."""
    if not hasattr(scorer, "members"):
        return len(ohlcv)
    from effnet_trading.imaging import infer_interval

    base = infer_interval(ohlcv.index)
    return int(sum(len(ohlcv) * base / step for step in scorer.steps.values()))


@contextlib.contextmanager
def scoring_progress(scorer, total: int, desc: str, enabled: bool = True):
    """While open, a tqdm bar of ``total`` images advances with each ``predict`` call of ``scorer``'s models."""
    models = _models(scorer) if enabled else []
    bar = None
    if enabled:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, unit="img", desc=desc, leave=False)
        for m in models:
            m.model = _Progress(m.model, bar)
    try:
        yield bar
    finally:
        if bar is not None:
            bar.close()
            for m in models:
                m.model = m.model._inner


def build_scorer(models: list[str], timeframes: list[str] | None, chunk: int = 2048):
    """``--model`` folder(s) and ``--timeframes`` -> a scorer (``strategies.scorer.as_scorer``): one
    model folder, or a ``TimeframeEnsemble`` with one model per timeframe (or one for all)."""
    from effnet_trading.errors import SpecError
    from effnet_trading.strategies.scorer import as_scorer

    if not models:
        raise SpecError(
            "no model given: pass --model MODEL_DIR (a folder with model.onnx and card.json, e.g. from `effnet-trading train`)."
        )
    for m in models:
        if not (Path(m) / "card.json").is_file():
            raise SpecError(
                f"--model {m} is not a model folder: expected {Path(m) / 'card.json'} and model.onnx; "
                "train one with `effnet-trading train` or `effnet-trading demo`."
            )
    if not timeframes:
        if len(models) > 1:
            raise SpecError(
                f"{len(models)} models but no --timeframes: give one timeframe per model, e.g. --timeframes 5m,1h."
            )
        return as_scorer(models[0], chunk=chunk)
    if len(models) == 1:
        models = models * len(timeframes)
    if len(models) != len(timeframes):
        raise SpecError(
            f"{len(models)} models for {len(timeframes)} timeframes {timeframes}: give one model per timeframe (or one for all)."
        )
    return as_scorer(dict(zip(timeframes, models)), chunk=chunk)


def _vectorbt_trades(pf) -> pd.DataFrame:
    """vectorbt's trade records in the project's trade-table columns."""
    r = pf.trades.records_readable
    if not len(r):
        return pd.DataFrame(columns=TRADE_COLUMNS)
    return pd.DataFrame(
        {
            "entry_time": r["Entry Timestamp"],
            "exit_time": r["Exit Timestamp"],
            "direction": r["Direction"].astype(str).str.lower(),
            "entry_price": r["Avg Entry Price"],
            "exit_price": r["Avg Exit Price"],
            "size": r["Size"],
            "pnl": r["PnL"],
            "return": r["Return"],
            "fees": r["Entry Fees"] + r["Exit Fees"],
            "status": r["Status"].astype(str).str.lower(),
        }
    )


def _clean(obj):
    """JSON-safe: NaN/inf -> None, numpy scalars -> Python."""
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        return None if not math.isfinite(float(obj)) else float(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def run_backtest(
    ohlcv: pd.DataFrame,
    scorer,
    *,
    engine: str = "vectorbt",
    policy=None,
    fees: float = 0.001,
    slippage: float = 0.0,
    init_cash: float = 10_000.0,
    progress: bool = False,
    config: dict | None = None,
    periods_per_year: float | None = None,
) -> BacktestOutput:
    """Score ``ohlcv`` with ``scorer`` (anything ``as_scorer`` takes) and trade ``policy`` (default
    ``Policy()``) on it in ``engine`` (decide at close t, fill at open t+1).
    periods_per_year: annualisation (default: observed from the data's calendar)."""
    from effnet_trading.errors import SpecError
    from effnet_trading.strategies import Policy, as_scorer, buy_and_hold, performance_summary

    if engine not in ENGINES:
        raise SpecError(f"engine {engine!r} is not one of {list(ENGINES)}.")
    from effnet_trading.imaging import time_gaps
    from effnet_trading.strategies.signal import require_history

    scorer = as_scorer(scorer, what="run_backtest")
    require_history(scorer, ohlcv)  # a frame too short for one score would give a report of NaN
    policy = policy if policy is not None else Policy()
    models = _models(scorer)
    total = images_expected(scorer, ohlcv) if progress else 0
    with scoring_progress(scorer, total, f"scoring ({engine})", enabled=progress):
        if engine == "backtrader":
            from effnet_trading.plugins.backtrader import run_backtrader

            res = run_backtrader(ohlcv, scorer, policy=policy, fees=fees, slippage=slippage, init_cash=init_cash)
            probs, target, equity, trades, ruined_at = res.probs, res.target, res.equity, res.trades, res.ruined_at
        else:
            from effnet_trading.plugins.vectorbt import _build_portfolio, portfolio_fills
            from effnet_trading.strategies.execution import apply_ruin, trades_from_orders
            from effnet_trading.strategies.signal import canonical_ohlcv

            probs = scorer.predict_proba(ohlcv)
            target = policy.replace(class_names=scorer.class_names).positions(probs)
            frame = canonical_ohlcv(ohlcv)
            # portfolio_from_signals' portfolio on the naive UTC index (fast to read), without its ruin warning:
            # the ruin rule is applied below
            pf, _, _ = _build_portfolio(frame, target, fees=fees, slippage=slippage, init_cash=init_cash)
            equity = pd.Series(pf.value().to_numpy(), index=frame.index, name="equity")
            # vectorbt does not liquidate: the contract's ruin rule on its fills, as for backtrader
            fills, ruin = apply_ruin(frame, portfolio_fills(pf, frame.index), init_cash)
            if ruin is not None:
                equity.iloc[ruin:] = 0.0
            # round trips as simulate and backtrader count them (vectorbt's own records split a position
            # into one trade per entry order)
            trades = trades_from_orders(fills, frame.index, float(frame["close"].iloc[-1]))
            ruined_at = None if ruin is None else frame.index[ruin]
    held = target.shift(1, fill_value=0.0)  # the contract: a decision at close t is held from open t+1
    if ruined_at is not None:
        held[held.index >= ruined_at] = 0.0  # nothing is held after a ruin
    strat = performance_summary(
        equity, trades=trades, position=held, init_cash=init_cash, kind="equity", periods_per_year=periods_per_year
    )
    strat["ruined_at"] = None if ruined_at is None else str(ruined_at)
    bench_eq = buy_and_hold(ohlcv, fees=fees, slippage=slippage, init_cash=init_cash)
    bench = performance_summary(
        bench_eq,
        position=pd.Series(1.0, index=ohlcv.index),
        init_cash=init_cash,
        kind="equity",
        periods_per_year=periods_per_year,
    )
    latency = np.concatenate(
        [getattr(getattr(m.model, "latency", None), "samples", np.array([])) for m in models] or [np.array([])]
    )
    summary = {
        "strategy": strat,
        "buy_and_hold": bench,
        "engine": engine,
        "span": [str(ohlcv.index[0]), str(ohlcv.index[-1])],
        "bars": len(ohlcv),
        "gaps": time_gaps(ohlcv.index),
        "periods_per_year": strat["periods_per_year"],
        "periods_per_year_source": strat["periods_per_year_source"],
        "config": {
            "engine": engine,
            "policy": policy.to_dict(),
            "fees": fees,
            "slippage": slippage,
            "init_cash": init_cash,
            "execution": "decide at the close of bar t, fill at the open of bar t+1",
            **(config or {}),
        },
    }
    return BacktestOutput(engine, probs, target, equity, bench_eq, trades, _clean(summary), latency, held)


def write_backtest_outputs(out: BacktestOutput, ohlcv: pd.DataFrame, out_dir: str | Path, **report: Any) -> Path:
    """summary.json, trades.csv, signals.csv, report.html in ``out_dir``; returns the report path.
    ``report``: extra ``write_backtest_report`` arguments (title, intro, confusion, example_images)."""
    from effnet_trading.evaluation.report import write_backtest_report
    from effnet_trading.outputs import write_text_atomic

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out_dir / "summary.json", json.dumps(out.summary, indent=2) + "\n")
    write_text_atomic(out_dir / "trades.csv", out.trades.to_csv(index=False))
    signals = out.probs.copy()
    signals["target"] = out.target
    write_text_atomic(out_dir / "signals.csv", signals.to_csv(index_label="timestamp"))
    return write_backtest_report(
        out_dir,
        summary=out.summary,
        equity=out.equity,
        benchmark=out.benchmark,
        probs=out.probs,
        ohlcv=ohlcv,
        trades=out.trades,
        latency_ms=out.latency_ms,
        **{"title": f"effnet-trading backtest ({out.engine})", **report},
    )
