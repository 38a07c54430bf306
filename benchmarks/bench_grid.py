"""Score once, backtest many: a 100-combination vectorbt policy grid vs one inference pass.

    python benchmarks/bench_grid.py [--bars 5000] [--out benchmarks/RESULTS_grid.md]

Untrained ``compact`` @32 GASF exported to ONNX, the last N 1h Binance BTCUSDT bars. Times, in one process:
one ``SignalModel.predict_proba`` (render + inference), then ``policy_grid`` over 5 thresholds x 5
hysteresis x 2 long_only x 2 sizing = 100 combinations on those probabilities (100 ``Policy`` passes and
one 100-column vectorbt portfolio), after a warm-up that compiles vectorbt's numba kernels.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

DATA_1H = "/work/shared/data/binance_btcusdt_1h.csv.gz"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bars", type=int, default=5_000)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()

    from bench_engines import _export

    from effnet_trading.imaging import ImageSpec, load_ohlcv
    from effnet_trading.plugins.vectorbt import policy_grid
    from effnet_trading.strategies import SignalModel

    frame = load_ohlcv(DATA_1H).iloc[-args.bars :]
    model = _export("compact", ImageSpec("gasf", window=32, size=(32, 32)), frame, Path(tempfile.mkdtemp()) / "m")
    sm = SignalModel(model)
    sm.predict_proba(frame.iloc[:300])  # warm the session
    grid = dict(
        threshold=[0.34, 0.36, 0.38, 0.4, 0.45],
        hysteresis=[0.0, 0.01, 0.02, 0.05, 0.1],
        long_only=[False, True],
        sizing=["fixed", "prob"],
    )
    policy_grid(frame.iloc[:300], sm.predict_proba(frame.iloc[:300]), **grid)  # numba compilation
    t0 = time.perf_counter()
    probs = sm.predict_proba(frame)
    t_score = time.perf_counter() - t0
    t0 = time.perf_counter()
    pf = policy_grid(frame, probs, **grid)
    ret = pf.total_return()
    t_grid = time.perf_counter() - t0
    n = ret.size
    text = "\n".join(
        [
            "## Score once, backtest many (vectorbt policy grid)",
            "",
            f"Command: `python benchmarks/bench_grid.py --bars {args.bars}` ({platform.machine()}, 2 shared cores, "
            "onnxruntime CPU; untrained compact @32 GASF, last bars of `binance_btcusdt_1h.csv.gz`).",
            "",
            "| step | seconds | per combination |",
            "|---|---:|---:|",
            f"| one scoring pass, {len(frame):,} bars (render + ONNX) | {t_score:.2f} | |",
            f"| {n}-combination grid on those probabilities (Policy passes + one {n}-column portfolio) | {t_grid:.2f} | "
            f"{t_grid / n * 1000:.1f} ms |",
            f"| the same grid scoring each combination again (estimated: {n} x scoring + grid) | {n * t_score + t_grid:.0f} | |",
            "",
            f"The grid costs **{t_grid / t_score:.2f}x** one inference pass; re-scoring per combination would cost "
            f"**{(n * t_score + t_grid) / (t_score + t_grid):.0f}x** more than scoring once.",
            "",
        ]
    )
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
