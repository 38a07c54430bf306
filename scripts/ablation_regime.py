"""Regime-conditioning ablation on real candles: a trend-following signal traded always vs only in
trending regimes (``RegimeGate(TREND_ONLY)``), same walk-forward test windows, same fees, paired
per fold with block-bootstrap intervals of the mean per-bar return difference.

The signal is the moving-average crossover baseline of ``evaluate`` (24/96 bars), not a trained
CNN: it needs no training, so the measurement fits a shared CPU. The regimes are the rule labels
of ``applications.regimes`` (causal: bar t's regime uses bars <= t). Reproduce (docs/results.md):

    python scripts/ablation_regime.py --data ../shared/data/binance_btcusdt_1h.csv.gz --last-bars 12000
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import pandas as pd

from effnet_trading.applications.regimes import REGIMES, TRENDING, RegimeRules, regime_labels
from effnet_trading.evaluation.baselines import ma_crossover_target
from effnet_trading.evaluation.stats import bootstrap_stat
from effnet_trading.imaging import infer_interval, load_ohlcv
from effnet_trading.model_zoo.splits import walk_forward_splits
from effnet_trading.strategies import TREND_ONLY, Policy, RegimeGate, performance_summary, simulate


def _one_hot(codes: np.ndarray, index: pd.Index) -> pd.DataFrame:
    p = np.full((len(codes), len(REGIMES)), np.nan)
    ok = codes >= 0
    p[ok] = np.eye(len(REGIMES))[codes[ok]]
    return pd.DataFrame(p, index=index, columns=list(REGIMES))


def _ci(x: np.ndarray, block: int, seed: int) -> dict:
    return bootstrap_stat(x, np.mean, n=1000, block=block, seed=seed)


def _bps(ci: dict) -> dict:
    return {k: (v * 1e4 if k in ("estimate", "low", "high", "std") else v) for k, v in ci.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--last-bars", type=int, default=12000)
    ap.add_argument("--folds", type=int, default=3)
    ap.add_argument("--fees", type=float, default=0.001)
    ap.add_argument("--slippage", type=float, default=0.0005)
    ap.add_argument("--block", type=int, default=24, help="bootstrap block length (bars)")
    ap.add_argument("--out", default=None, help="write the figures as JSON here")
    a = ap.parse_args()

    frame = load_ohlcv(a.data).iloc[-a.last_bars :]
    interval = infer_interval(frame.index)
    codes = regime_labels(frame, RegimeRules()).to_numpy()
    target = ma_crossover_target(frame["close"].to_numpy(), 24, 96)
    probs = pd.DataFrame(
        {"sell": (target < 0) * 1.0, "hold": (target == 0) * 1.0, "buy": (target > 0) * 1.0}, index=frame.index
    )
    policy = Policy(0.5, on_hold="flat")
    gate = RegimeGate(policy, _one_hot(codes, frame.index), TREND_ONLY)
    splits = walk_forward_splits(len(frame), a.folds, horizon=6, valid=None)
    rows, diffs, diffs_trend = [], [], []
    for sp in splits:
        lo, hi = int(sp.test[0]), int(sp.test[-1]) + 1
        span = frame.iloc[lo:hi]
        base = simulate(span, policy.positions(probs.iloc[lo:hi]), fees=a.fees, slippage=a.slippage)
        gated = simulate(span, gate.positions(probs.iloc[lo:hi]), fees=a.fees, slippage=a.slippage)
        d = gated.returns.to_numpy() - base.returns.to_numpy()
        trending = np.isin(codes[lo:hi], [REGIMES.index(r) for r in TRENDING])
        diffs.append(d)
        diffs_trend.append(d[trending])
        pb, pg = performance_summary(base, interval=interval), performance_summary(gated, interval=interval)
        rows.append(
            {
                "fold": sp.fold,
                "test_span": [str(span.index[0]), str(span.index[-1])],
                "bars": hi - lo,
                "trending_share": float(trending.mean()),
                "base_total_return": pb["total_return"],
                "gated_total_return": pg["total_return"],
                "base_sharpe": pb["sharpe"],
                "gated_sharpe": pg["sharpe"],
                "mean_diff_bps": _ci(d, a.block, sp.fold),
                "mean_diff_trending_bps": _ci(d[trending], a.block, sp.fold) if trending.sum() > 2 else None,
            }
        )
        for k in ("mean_diff_bps", "mean_diff_trending_bps"):
            if rows[-1][k]:
                rows[-1][k] = {
                    kk: (v * 1e4 if kk in ("estimate", "low", "high", "std") else v) for kk, v in rows[-1][k].items()
                }
    pooled = {
        "all_bars": _bps(_ci(np.concatenate(diffs), a.block, 99)),
        "trending_bars": _bps(_ci(np.concatenate(diffs_trend), a.block, 98)),
        "label_shares": {r: float(np.mean(codes[codes >= 0] == i)) for i, r in enumerate(REGIMES)},
    }
    out = {"data": a.data, "bars": len(frame), "span": [str(frame.index[0]), str(frame.index[-1])],
           "fees": a.fees, "slippage": a.slippage, "folds": rows, "pooled_bps_per_bar": pooled}  # fmt: skip
    text = json.dumps(out, indent=1, default=float)
    print(text)
    if a.out:
        with open(a.out, "w") as fh:
            fh.write(text)


if __name__ == "__main__":
    main()
