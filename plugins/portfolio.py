"""Backtests over several symbols: each symbol is scored on its own (one symbol's images in memory
at a time, chunked), and the portfolio spans the symbols.

Two ways to split the cash:
- separate sleeves (default, both engines): each symbol trades ``init_cash / n`` on its own, exactly
  as a one-symbol ``run_backtest``; the portfolio equity is the sum of the sleeves.
- ``cash_sharing=True``: one cash pool, each symbol's target a fraction ``target / n`` of the whole
  equity valued at the bar's opens; within a bar the orders go sells first, then buys from the
  smallest, each buy at most the cash left. vectorbt: ``group_by=True, cash_sharing=True,
  call_seq='auto'``; backtrader: one Cerebro, one data feed per symbol, one broker
  (``EfficientNetPortfolioStrategy``). Where the cash does not bind both give the same fills. Where it
  binds (targets summing above the equity, or fees on a fully invested book) the order within a bar
  decides who gets the cash: both engines sort a bar's orders by vectorbt's order value (sells first,
  then buys from the smallest, ties in symbol order), cut the last buys to the cash left and drop a
  buy that finds no cash (not retried later); with that they agree to float precision in the tests
  (long-only and long/short). What still differs: an order backtrader's broker rejects is retried at
  the symbol's next bar (vectorbt never retries), and a strategy of your own that submits its orders
  in another order gets other fills.
  The pool is one account for the ruin rule (``strategies.execution.pooled_ruin``, in both engines): from the
  first bar where its cash plus every position, each at its worst price of the bar, is <= 0, the equity is 0
  and the summary's ``ruined_at`` names that bar; the trades and the per-symbol figures after it are the
  engine's (neither liquidates, and no fill is rewritten).

The scorer is one for all symbols, or ``{symbol: scorer}`` with exactly the frames' symbols (e.g.
``PrecomputedScores.by_symbol(path)`` for a score file of several symbols).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from effnet_trading.plugins.backtest import ENGINES, _clean, _vectorbt_trades, run_backtest

__all__ = ["run_backtest_many", "ManyBacktestOutput", "write_many_outputs"]


@dataclass
class ManyBacktestOutput:
    """A several-symbol run: the portfolio's equity and benchmark, per-symbol probabilities/targets,
    trades and signals with a ``symbol`` column, and ``summary`` (``portfolio``, ``symbols``: per symbol)."""

    engine: str
    equity: pd.Series
    benchmark: pd.Series
    probs: dict[str, pd.DataFrame]
    target: dict[str, pd.Series]
    trades: pd.DataFrame
    summary: dict

    def signals(self) -> pd.DataFrame:
        """timestamp, symbol, class columns, target (one row per symbol and bar)."""
        parts = []
        for sym, probs in self.probs.items():
            part = probs.copy()
            part.insert(0, "symbol", sym)
            part["target"] = self.target[sym]
            parts.append(part)
        return pd.concat(parts).rename_axis("timestamp").reset_index()


def _sum_sleeves(curves: dict[str, pd.Series], cash: float) -> pd.Series:
    """Portfolio equity: each sleeve's equity on the union of the timestamps (its cash before its first bar)."""
    index = curves[next(iter(curves))].index
    for c in curves.values():
        index = index.union(c.index)
    total = sum(c.reindex(index).ffill().fillna(cash) for c in curves.values())
    return total.rename("equity")


def _shared_cash(frames, scorers, policy, fees, slippage, init_cash):
    """vectorbt, one cash pool over canonical ``frames``: (probs, targets, equity, trades with symbol, fills per
    symbol on its own bars)."""
    from effnet_trading.plugins.vectorbt import _build_portfolio, _with_index, portfolio_fills

    n = len(frames)
    probs = {s: scorers[s].predict_proba(f) for s, f in frames.items()}
    targets = {s: policy.replace(class_names=scorers[s].class_names).positions(p) for s, p in probs.items()}
    wide = pd.DataFrame(targets).fillna(0.0) / n
    wide.columns = pd.Index(list(frames), name="symbol")
    # portfolio_from_signals' portfolio on the naive UTC index, without its ruin warning (pooled_ruin below)
    pf, index, _ = _build_portfolio(frames, wide, fees=fees, slippage=slippage, init_cash=init_cash, cash_sharing=True)
    fills = {}
    for j, sym in enumerate(frames):  # fill bars on the joint index -> on the symbol's own index
        own = frames[sym].index
        fills[sym] = [f._replace(bar=int(own.get_loc(index[f.bar]))) for f in portfolio_fills(pf, index, column=j)]
    aware = _with_index(pf, index)
    trades = _vectorbt_trades(aware)
    records = aware.trades.records_readable
    trades.insert(0, "symbol", records["Column"].astype(str).to_numpy() if len(records) else [])
    return probs, targets, pd.Series(pf.value().to_numpy(), index=index, name="equity"), trades, fills


def _shared_cash_backtrader(frames, scorers, policy, fees, slippage, init_cash):
    """backtrader, one broker for all symbols: (probs, targets, equity, trades with symbol)."""
    from effnet_trading.plugins.backtrader import run_backtrader_many

    res = run_backtrader_many(frames, scorers, policy=policy, fees=fees, slippage=slippage, init_cash=init_cash)
    parts = [t.assign(symbol=s)[["symbol", *t.columns]] for s, t in res.trades.items()]
    return res.probs, res.target, res.equity, pd.concat(parts, ignore_index=True), res.fills


def run_backtest_many(
    frames: dict[str, pd.DataFrame],
    scorer,
    *,
    engine: str = "vectorbt",
    policy=None,
    fees: float = 0.001,
    slippage: float = 0.0,
    init_cash: float = 10_000.0,
    cash_sharing: bool = False,
    progress: bool = False,
    config: dict | None = None,
    periods_per_year: float | None = None,
) -> ManyBacktestOutput:
    """Backtest ``scorer`` on ``{symbol: OHLCV frame}`` in ``engine`` (see the module docstring for how
    the cash is split); per-symbol statistics beside the portfolio's in ``summary``."""
    from effnet_trading.errors import SpecError
    from effnet_trading.strategies import Policy, buy_and_hold, performance_summary
    from effnet_trading.strategies.execution import pooled_ruin
    from effnet_trading.strategies.scorer import scorers_by_symbol
    from effnet_trading.strategies.signal import canonical_ohlcv

    if engine not in ENGINES:
        raise SpecError(f"engine {engine!r} is not one of {list(ENGINES)}.")
    if not frames:
        raise SpecError("no symbols: pass {symbol: OHLCV frame} with at least one frame.")
    scorers = scorers_by_symbol(scorer, list(frames), what="run_backtest_many")
    policy = policy if policy is not None else Policy()
    n = len(frames)
    sleeve_cash = init_cash / n
    per: dict[str, dict] = {}
    if cash_sharing:
        shared = _shared_cash if engine == "vectorbt" else _shared_cash_backtrader
        canon = {sym: canonical_ohlcv(f) for sym, f in frames.items()}  # validated once for both steps
        probs, targets, equity, trades, fills = shared(canon, scorers, policy, fees, slippage, init_cash)
        ruined_at = pooled_ruin(canon, fills, init_cash)  # one account: neither engine liquidates it
        if ruined_at is not None:
            equity = equity.where(equity.index < ruined_at, 0.0)
        for sym, frame in frames.items():
            mine = trades[trades["symbol"] == sym]
            per[sym] = {
                "bars": len(frame),
                "span": [str(frame.index[0]), str(frame.index[-1])],
                "trades": len(mine),
                "pnl": float(mine["pnl"].sum()),
                "exposure": float((targets[sym].shift(1, fill_value=0.0) != 0).mean()),
            }
    else:
        probs, targets, curves, parts, held_by = {}, {}, {}, [], {}
        for sym, frame in frames.items():
            scorers[sym].reset()
            out = run_backtest(
                frame,
                scorers[sym],
                engine=engine,
                policy=policy,
                fees=fees,
                slippage=slippage,
                init_cash=sleeve_cash,
                progress=progress,
                periods_per_year=periods_per_year,
            )
            probs[sym], targets[sym], curves[sym], held_by[sym] = out.probs, out.target, out.equity, out.held
            parts.append(out.trades.assign(symbol=sym)[["symbol", *out.trades.columns]])
            per[sym] = {k: out.summary[k] for k in ("strategy", "buy_and_hold", "bars", "span", "gaps")}
        equity = _sum_sleeves(curves, sleeve_cash)
        trades = pd.concat(parts, ignore_index=True)
    if cash_sharing:
        held_by = {s: t.shift(1, fill_value=0.0) for s, t in targets.items()}
        if ruined_at is not None:  # the pool holds nothing after its ruin
            held_by = {s: h.where(h.index < ruined_at, 0.0) for s, h in held_by.items()}
    held = pd.DataFrame(held_by).reindex(equity.index)  # a sleeve holds nothing after its ruin
    position = held.fillna(0.0).abs().mean(axis=1)  # share of the portfolio in the market, per bar
    strat = performance_summary(
        equity, trades=trades, position=position, init_cash=init_cash, kind="equity", periods_per_year=periods_per_year
    )
    if cash_sharing:
        strat["ruined_at"] = None if ruined_at is None else str(ruined_at)
    bench = _sum_sleeves(
        {s: buy_and_hold(f, fees=fees, slippage=slippage, init_cash=sleeve_cash) for s, f in frames.items()},
        sleeve_cash,
    )
    bench_stats = performance_summary(
        bench,
        position=pd.Series(1.0, index=bench.index),
        init_cash=init_cash,
        kind="equity",
        periods_per_year=periods_per_year,
    )
    summary = {
        "strategy": strat,
        "buy_and_hold": bench_stats,
        "engine": engine,
        "symbols": per,
        "bars": int(sum(len(f) for f in frames.values())),
        "periods_per_year": strat["periods_per_year"],
        "periods_per_year_source": strat["periods_per_year_source"],
        "config": {
            "engine": engine,
            "symbols": list(frames),
            "cash_sharing": cash_sharing,
            "cash_split": "one pool, target / n of the equity per symbol"
            if cash_sharing
            else f"separate sleeves of init_cash / {n}",
            "policy": policy.to_dict(),
            "fees": fees,
            "slippage": slippage,
            "init_cash": init_cash,
            "execution": "decide at the close of bar t, fill at the open of bar t+1",
            **(config or {}),
        },
    }
    return ManyBacktestOutput(engine, equity, bench.rename("equity"), probs, targets, trades, _clean(summary))


def write_many_outputs(out: ManyBacktestOutput, frames: dict[str, pd.DataFrame], out_dir) -> Path:
    """summary.json, trades.csv and signals.csv (with ``symbol``) and report.html in ``out_dir``."""
    from effnet_trading.evaluation.report import write_backtest_report, write_text_atomic

    out_dir = Path(out_dir)
    write_text_atomic(out_dir / "summary.json", json.dumps(out.summary, indent=2) + "\n")
    write_text_atomic(out_dir / "trades.csv", out.trades.to_csv(index=False))
    write_text_atomic(out_dir / "signals.csv", out.signals().to_csv(index=False))
    first = next(iter(frames))
    return write_backtest_report(
        out_dir,
        summary=out.summary,
        equity=out.equity,
        benchmark=out.benchmark,
        probs=out.probs[first],
        ohlcv=frames[first],
        trades=out.trades[out.trades["symbol"] == first].drop(columns="symbol"),
        title=f"effnet-trading backtest ({out.engine}, {len(frames)} symbols)",
        intro=[
            f"Portfolio of {len(frames)} symbols ({', '.join(list(frames)[:10])}); "
            f"{out.summary['config']['cash_split']}. Per-symbol statistics are in summary.json under 'symbols'.",
            f"The probability strip shows the first symbol, {first}.",
        ],
    )
