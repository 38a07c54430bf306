"""vectorbt bookkeeping on a UTC index: the portfolio built on the naive UTC index vs the same call on the
tz-aware index, in one process.

    python benchmarks/bench_vectorbt_index.py [--bars 20000,100000] [--repeats 3]

vectorbt turns a tz-aware DatetimeIndex into an array of Timestamp objects each time it wraps a result
(``ArrayWrapper.wrap`` checks the shape with ``np.asarray(index)``), and ``pf.value()`` wraps several.
``portfolio_from_signals`` therefore builds on the naive UTC index and hands back a portfolio carrying the
frame's own index; ``run_backtest`` reads the naive one directly. Rows (medians of ``repeats``, interleaved):

- reference: ``vbt.Portfolio.from_orders`` on the aware index, then ``value()``, ``assets()`` and ``cash()``
  (what ``portfolio_from_signals`` plus its ruin check cost before);
- ``portfolio_from_signals``: the same portfolio with the ruin check, then ``value()`` on the aware index it
  hands back (what a user reads);
- naive: the same call on the naive index (what ``run_backtest`` reads);
- ``run_backtest(engine="vectorbt")`` end to end with precomputed scores (``PrecomputedScores``: no model), the
  bookkeeping alone: the portfolio, the ruin rule, the trades, the statistics and buy & hold.

Bars: Binance BTCUSDT 5m from ``../shared/data`` (the most recent ``bars``); targets: a random walk over
{-1, -0.5, 0, 0.5, 1} held 12 bars, so about one order every 12 bars.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
import warnings

import numpy as np
import pandas as pd

DATA_5M = "../shared/data/binance_btcusdt_5m.csv.gz"


def _time(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bars", default="20000,100000")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    import vectorbt as vbt

    from effnet_trading.imaging import load_ohlcv
    from effnet_trading.plugins.vectorbt import RuinWarning, contract_orders, portfolio_from_signals

    full = load_ohlcv(DATA_5M)
    print(f"vectorbt {vbt.__version__}, pandas {pd.__version__}, {platform.machine()}, {DATA_5M}")
    from effnet_trading.plugins.backtest import run_backtest
    from effnet_trading.strategies import Policy
    from effnet_trading.strategies.scorer import PrecomputedScores

    print(
        "| bars | reference (aware index) | portfolio_from_signals + value() | naive index | run_backtest "
        "| ratio ref / pfs | ratio ref / naive |"
    )
    print("|---|---|---|---|---|---|---|")
    for bars in (int(b) for b in args.bars.split(",")):
        frame = full.iloc[-bars:]
        rng = np.random.default_rng(0)
        target = pd.Series(np.repeat(rng.choice([-1.0, -0.5, 0.0, 0.5, 1.0], bars // 12 + 1), 12)[:bars], frame.index)
        naive = frame.set_axis(frame.index.tz_localize(None))
        kw = {"size_type": "targetpercent", "fees": 0.001, "slippage": 0.0005, "init_cash": 10_000.0, "freq": "5min"}

        def reference(f=frame, t=target):
            pf = vbt.Portfolio.from_orders(f["close"], size=contract_orders(t), price=f["open"], **kw)
            pf.value(), pf.assets(), pf.cash()

        def pfs():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuinWarning)
                portfolio_from_signals(frame, target, fees=0.001, slippage=0.0005).value()

        def on_naive():
            reference(naive, target.set_axis(naive.index))

        held = rng.dirichlet([1.0, 1.0, 1.0], bars // 12 + 1).repeat(12, axis=0)[:bars]  # scores held 12 bars
        probs = pd.DataFrame(held, index=frame.index, columns=["sell", "hold", "buy"])

        def backtest():
            run_backtest(frame, PrecomputedScores(probs), engine="vectorbt", policy=Policy(0.4), fees=0.001)

        runs: dict[str, list[float]] = {"ref": [], "pfs": [], "naive": [], "bt": []}
        on_naive()  # numba kernels compiled before the first timed run
        for _ in range(args.repeats):
            runs["ref"].append(_time(reference))
            runs["pfs"].append(_time(pfs))
            runs["naive"].append(_time(on_naive))
            runs["bt"].append(_time(backtest))
        med = {k: statistics.median(v) for k, v in runs.items()}
        print(
            f"| {bars:,} | {med['ref']:.3f} s | {med['pfs']:.3f} s | {med['naive']:.3f} s | {med['bt']:.3f} s | "
            f"{med['ref'] / med['pfs']:.1f}x | {med['ref'] / med['naive']:.1f}x |"
        )


if __name__ == "__main__":
    main()
