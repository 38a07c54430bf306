"""Timeframe ablation on real candles: each single-timeframe model (5m, 15m, 1h) vs their
``TimeframeEnsemble``, all trading 5-minute bars over the same walk-forward test windows with the
same fees; paired per fold, block-bootstrap intervals of the mean per-bar return difference.

Per fold, one ``small_cnn`` per timeframe is trained on that timeframe's bars (resampled from 5m)
that end before the test window minus a purge of one label horizon (6 bars of the slowest member,
i.e. 6 hours), exported to ONNX and scored through the runtime (``SignalModel``). A single
timeframe trades as a one-member ``TimeframeEnsemble`` so every arm uses the same closed-bar
alignment and the same ``Policy``. Sized for a shared CPU (see --help). Reproduce (docs/results.md):

    python scripts/ablation_timeframes.py --data ../shared/data/binance_btcusdt_5m.csv.gz
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from effnet_trading.evaluation.stats import bootstrap_stat
from effnet_trading.imaging import ImageSpec, load_ohlcv, resample_ohlcv
from effnet_trading.model_zoo.splits import walk_forward_splits
from effnet_trading.model_zoo.train import TrainConfig, train_and_export
from effnet_trading.strategies import Policy, SignalModel, TimeframeEnsemble, performance_summary, simulate

TIMEFRAMES = ("5m", "15m", "1h")
_PER_HOUR = {"5m": 12, "15m": 4, "1h": 1}


def _train(frame5: pd.DataFrame, tf: str, cut: pd.Timestamp, a, out: Path) -> Path:
    bars = frame5 if tf == "5m" else resample_ohlcv(frame5, tf)
    bars = bars[bars.index < cut][["open", "high", "low", "close", "volume"]]
    need = int((a.max_train + 64) / 0.8) + 32 + 6 + 50
    cfg = TrainConfig(
        model="small_cnn",
        spec=ImageSpec("candles", window=32, size=(32, 32)),
        horizon=6,
        epochs=a.epochs,
        patience=2,
        max_train_samples=a.max_train,
        test_size=64,
        valid=0.15,
        seed=a.seed,
        num_threads=1,
        progress=False,
    )
    return train_and_export(bars.iloc[-need:], cfg, out / tf).model_dir


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="5-minute OHLCV")
    ap.add_argument("--last-bars", type=int, default=36000, help="5m bars used (36,000 = 125 days)")
    ap.add_argument("--folds", type=int, default=3)
    ap.add_argument("--test-bars", type=int, default=2016, help="5m bars per test window (2,016 = 7 days)")
    ap.add_argument("--max-train", type=int, default=1000)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--fees", type=float, default=0.001)
    ap.add_argument("--slippage", type=float, default=0.0005)
    ap.add_argument("--threshold", type=float, default=0.4)
    ap.add_argument("--block", type=int, default=48)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()

    frame = load_ohlcv(a.data).iloc[-a.last_bars :]
    purge = 6 * 12  # 6 one-hour bars, in 5m bars
    splits = walk_forward_splits(len(frame), a.folds, horizon=purge, test_size=a.test_bars, valid=None)
    policy = Policy(a.threshold)
    arms = [*TIMEFRAMES, "ensemble"]
    rets: dict[str, list[np.ndarray]] = {k: [] for k in arms}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for sp in splits:
            lo, hi = int(sp.test[0]), int(sp.test[-1]) + 1
            cut = frame.index[lo - purge]
            dirs = {tf: _train(frame, tf, cut, a, Path(tmp) / f"fold{sp.fold}") for tf in TIMEFRAMES}
            models = {tf: SignalModel(d) for tf, d in dirs.items()}
            hist = frame.iloc[max(0, lo - 48 * 12) : hi]  # enough closed 1h bars for the 1h window
            row = {"fold": sp.fold, "test_span": [str(frame.index[lo]), str(frame.index[hi - 1])], "arms": {}}
            for arm in arms:
                members = models if arm == "ensemble" else {arm: models[arm]}
                ens = TimeframeEnsemble(members, base_timeframe="5m")
                probs = ens.predict_proba(hist).iloc[-(hi - lo) :]
                sim = simulate(frame.iloc[lo:hi], policy.replace(class_names=ens.class_names).positions(probs),
                               fees=a.fees, slippage=a.slippage)  # fmt: skip
                rets[arm].append(sim.returns.to_numpy())
                perf = performance_summary(sim, interval="5m")
                pos = sim.position.to_numpy()
                row["arms"][arm] = {k: perf[k] for k in ("total_return", "sharpe")} | {
                    "scored": float(probs.notna().all(axis=1).mean()),
                    "long": float((pos > 0).mean()),
                    "short": float((pos < 0).mean()),
                    "orders": len(sim.orders),
                }
            rows.append(row)
            print(json.dumps(row), flush=True)
    diffs = {}
    for tf in TIMEFRAMES:
        d = np.concatenate(rets["ensemble"]) - np.concatenate(rets[tf])
        ci = bootstrap_stat(d, np.mean, n=1000, block=a.block, seed=a.seed)
        per_fold = [float(np.mean(e - s)) * 1e4 for e, s in zip(rets["ensemble"], rets[tf])]
        diffs[f"ensemble_minus_{tf}"] = {k: ci[k] * 1e4 for k in ("estimate", "low", "high")} | {"per_fold": per_fold}
    out = {"data": a.data, "bars": len(frame), "span": [str(frame.index[0]), str(frame.index[-1])],
           "settings": vars(a), "folds": rows, "diff_bps_per_bar": diffs}  # fmt: skip
    text = json.dumps(out, indent=1, default=str)
    print(text)
    if a.out:
        Path(a.out).write_text(text)


if __name__ == "__main__":
    main()
