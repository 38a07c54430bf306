"""Several symbols in one backtest: wall time and peak memory vs scoring alone.

    python benchmarks/bench_portfolio.py [--symbols 10] [--bars 100000] [--engines vectorbt,backtrader]
                                         [--rows vectorbt:shared,...] [--out benchmarks/RESULTS_portfolio.md]

Symbols are shifted copies of Binance BTCUSDT 5m bars: symbol i takes the ``bars`` bars starting
``i * stride`` into the history, re-stamped onto symbol 0's timestamps (one common index, different
prices). Untrained ``compact`` @32 GASF exported to ONNX, ``Policy(threshold=0)`` (acts on every argmax change: many trades). Each measurement runs in a fresh child
process (peak RSS = VmHWM after a reset, Python-heap peak = tracemalloc): scoring alone
(``SignalModel.predict_proba`` per symbol), then ``run_backtest_many`` per engine with cash sharing
(one cash pool; backtrader: one Cerebro, one feed per symbol) and with separate sleeves. Each row is
printed as it ends, so a run stopped early still leaves the rows it finished.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import tempfile
import time
import tracemalloc
from pathlib import Path

DATA_5M = "/work/shared/data/binance_btcusdt_5m.csv.gz"


def _frames(symbols: int, bars: int) -> dict:
    from effnet_trading.imaging import load_ohlcv

    full = load_ohlcv(DATA_5M)
    stride = max(1, (len(full) - bars) // max(symbols - 1, 1))
    index = full.index[:bars]
    out = {}
    for i in range(symbols):
        part = full.iloc[i * stride : i * stride + bars].copy()
        part.index = index
        out[f"sym{i:02d}"] = part
    return out


def _child(what: str, model_dir: str, symbols: int, bars: int, queue) -> None:
    from bench_engines import _reset_peak_rss, _rss_mb

    from effnet_trading.plugins.portfolio import run_backtest_many
    from effnet_trading.strategies import Policy, SignalModel

    frames = _frames(symbols, bars)
    sm = SignalModel(model_dir)
    # warm-up on a small slice: onnxruntime session, vectorbt's numba kernels, backtrader imports
    small = {k: v.iloc[:400] for k, v in list(frames.items())[:2]}
    if what != "score":
        engine, sharing = what.split(":")
        run_backtest_many(small, sm, engine=engine, policy=Policy(0.0), cash_sharing=sharing == "shared")
    else:
        sm.predict_proba(small["sym00"])
    _reset_peak_rss()
    rss0 = _rss_mb("VmRSS")
    tracemalloc.start()
    t0 = time.perf_counter()
    if what == "score":
        for f in frames.values():
            sm.predict_proba(f)
        extra = {}
    else:
        out = run_backtest_many(frames, sm, engine=engine, policy=Policy(0.0), cash_sharing=sharing == "shared")
        extra = {"trades": len(out.trades), "final": float(out.equity.iloc[-1])}
    secs = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    queue.put(
        {"what": what, "secs": secs, "heap_mb": peak / 2**20, "rss_mb": _rss_mb("VmHWM"), "rss0_mb": rss0, **extra}
    )


def _run(what, model_dir, symbols, bars) -> dict:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(what, str(model_dir), symbols, bars, queue))
    proc.start()
    out = queue.get()
    proc.join()
    out["load1"] = os.getloadavg()[0]  # the machine's 1-minute load average when the row ended
    print(out, flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--symbols", type=int, default=10)
    ap.add_argument("--bars", type=int, default=100_000)
    ap.add_argument("--engines", default="vectorbt,backtrader")
    ap.add_argument("--out", default=None)
    ap.add_argument(
        "--rows", default=None, help="only these rows besides scoring alone, e.g. vectorbt:shared,backtrader:shared"
    )
    args = ap.parse_args()

    from bench_engines import _export

    from effnet_trading.imaging import ImageSpec, load_ohlcv

    model = _export(
        "compact",
        ImageSpec("gasf", window=32, size=(32, 32)),
        load_ohlcv(DATA_5M).iloc[:2000],
        Path(tempfile.mkdtemp()) / "compact",
    )
    runs = [_run("score", model, args.symbols, args.bars)]
    wanted = [f"{e}:{split}" for split in ("shared", "sleeves") for e in args.engines.split(",")]
    for what in args.rows.split(",") if args.rows else wanted:
        runs.append(_run(what, model, args.symbols, args.bars))
    score = runs[0]["secs"]
    names = {
        "score": "scoring alone (predict_proba per symbol)",
        "vectorbt:sleeves": "vectorbt, separate sleeves",
        "backtrader:sleeves": "backtrader, separate sleeves",
        "vectorbt:shared": "vectorbt, cash sharing",
        "backtrader:shared": "backtrader, cash sharing (one broker)",
    }
    lines = [
        "## Several symbols (run_backtest_many)",
        "",
        f"Command: `python benchmarks/bench_portfolio.py --symbols {args.symbols} --bars {args.bars} --engines {args.engines}"
        f"{' --rows ' + args.rows if args.rows else ''}` "
        f"({platform.machine()}, 2 cores shared with other jobs, onnxruntime CPU; untrained compact @32 GASF; "
        f"{args.symbols} shifted copies of `binance_btcusdt_5m.csv.gz`, {args.bars:,} bars each, "
        f"{args.symbols * args.bars:,} bars in all). Fresh child process per row.",
        "",
        "| run | seconds | ratio to scoring alone | bars/s | peak RSS MB | RSS before MB | Python-heap peak MB | load at end |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in runs:
        lines.append(
            f"| {names[r['what']]} | {r['secs']:.1f} | {r['secs'] / score:.2f} | {args.symbols * args.bars / r['secs']:,.0f} | "
            f"{r['rss_mb']:.0f} | {r['rss0_mb']:.0f} | {r['heap_mb']:.0f} | {r['load1']:.1f} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
