"""Engine benchmarks on real Binance BTCUSDT bars (ratios measured in one process).

    python benchmarks/bench_engines.py [--bars 20000] [--b0-bars 4000] [--next-bars 1500]
                                       [--mem-bars 200000] [--out benchmarks/RESULTS_engines.md]

1. End-to-end bars/s (render -> ONNX -> policy -> fills) of backtrader (runonce) and vectorbt,
   next to pure ``Predictor.predict`` throughput on the same, pre-rendered images, for untrained
   ``efficientnet_b0`` @64 and ``compact`` @32 exported to ONNX (1h bars, the last N).
2. backtrader ``once()`` (batched) vs per-bar ``next()`` (``runonce=False``), compact model.
3. Peak memory scoring 5m history with chunked scoring (compact): Python-heap peak (tracemalloc)
   and the process's peak RSS, in a fresh child process per measurement.
"""

from __future__ import annotations

import argparse
import gc
import multiprocessing as mp
import platform
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

DATA_1H = "/work/shared/data/binance_btcusdt_1h.csv.gz"
DATA_5M = "/work/shared/data/binance_btcusdt_5m.csv.gz"


def _export(name: str, spec, frame, out_dir: Path) -> Path:
    import torch

    from effnet_trading.imaging import render
    from effnet_trading.model_zoo import create_model
    from effnet_trading.model_zoo.export import export_onnx

    torch.manual_seed(0)
    model = create_model(name, num_classes=3, in_chans=spec.channels).eval()
    export_onnx(model, out_dir, spec=spec, architecture=name, sample_images=render(spec, frame.iloc[:256]))
    return out_dir


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def _throughput(model_dir: Path, frame) -> dict:
    """Bars/s of the predictor alone and of each engine end to end, on the same bars."""
    from effnet_trading.imaging import render, valid_ends
    from effnet_trading.model_zoo.runtime import Predictor
    from effnet_trading.plugins.backtrader import run_backtrader
    from effnet_trading.plugins.vectorbt import EfficientNetIndicator, portfolio_from_signals
    from effnet_trading.strategies import Policy, SignalModel

    pred = Predictor(model_dir, providers="cpu")
    ends = valid_ends(pred.spec, frame)
    images = render(pred.spec, frame, ends)
    pred.predict(images[:256])  # warm the session
    _, t_pred = _timed(lambda: pred.predict(images))
    n = len(ends)
    images = None  # free the rendered batch before the engines run

    def vbt_run(f):
        ind = EfficientNetIndicator.run(
            f.open, f.high, f.low, f.close, f.volume, model=SignalModel(pred), threshold=0.4
        )
        return portfolio_from_signals(f, ind, fees=0.001).value()

    run_backtrader(frame.iloc[:300], SignalModel(pred), policy=Policy(0.4))  # warm-up: imports, numba compilation
    vbt_run(frame.iloc[:300])
    bt_res, t_bt = _timed(lambda: run_backtrader(frame, SignalModel(pred), policy=Policy(0.4)))
    vb_val, t_vb = _timed(lambda: vbt_run(frame))
    assert np.allclose(bt_res.equity.to_numpy(), np.asarray(vb_val), rtol=1e-9), "engines disagree"
    return {"scored": n, "predictor": n / t_pred, "backtrader": n / t_bt, "vectorbt": n / t_vb}


def _once_vs_next(model_dir: Path, frame) -> dict:
    from effnet_trading.model_zoo.runtime import Predictor
    from effnet_trading.plugins.backtrader import run_backtrader
    from effnet_trading.strategies import Policy, SignalModel

    pred = Predictor(model_dir, providers="cpu")
    once, t_once = _timed(lambda: run_backtrader(frame, SignalModel(pred), policy=Policy(0.4), runonce=True))
    nxt, t_next = _timed(lambda: run_backtrader(frame, SignalModel(pred), policy=Policy(0.4), runonce=False))
    assert np.allclose(once.probs.to_numpy(), nxt.probs.to_numpy(), rtol=1e-5, equal_nan=True), "once != next"
    return {"bars": len(frame), "once_s": t_once, "next_s": t_next, "ratio": t_next / t_once}


def _reset_peak_rss() -> None:
    """Linux: writing 5 to clear_refs resets the peak RSS (VmHWM) to the current RSS."""
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")


def _rss_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _indicator_only(model_dir: Path, frame, feed=None) -> dict:
    """The indicator alone under a strategy that does nothing (no broker orders): once() vs next().
    feed: the data feed class (default ``ArrayData``, what ``run_backtrader`` uses; ``bt.feeds.PandasData``
    loads bar by bar, the figure before ArrayData)."""
    import backtrader as bt

    from effnet_trading.plugins.backtrader import ArrayData

    feed = feed or ArrayData

    from effnet_trading.model_zoo.runtime import Predictor
    from effnet_trading.plugins.backtrader import EfficientNetSignal
    from effnet_trading.strategies import Policy, SignalModel

    pred = Predictor(model_dir, providers="cpu")

    class Idle(bt.Strategy):
        def __init__(self):
            self.sig = EfficientNetSignal(self.data, model=SignalModel(pred), policy=Policy(0.4))

    def run(runonce: bool):
        cerebro = bt.Cerebro(runonce=runonce, stdstats=False)
        cerebro.adddata(feed(dataname=frame))
        cerebro.addstrategy(Idle)
        return cerebro.run()[0]

    _, t_once = _timed(lambda: run(True))
    _, t_next = _timed(lambda: run(False))
    return {"bars": len(frame), "once_s": t_once, "next_s": t_next, "ratio": t_next / t_once}


def _memory_child(model_dir: str, bars: int, chunk: int, queue) -> None:
    from effnet_trading.imaging import load_ohlcv
    from effnet_trading.strategies import SignalModel

    frame = load_ohlcv(DATA_5M).iloc[-bars:].copy()
    sm = SignalModel(model_dir, chunk=chunk)
    sm.predict_proba(frame.iloc[:100])  # warm the session
    gc.collect()
    _reset_peak_rss()
    rss0 = _rss_mb("VmRSS")
    tracemalloc.start()
    t0 = time.perf_counter()
    probs = sm.predict_proba(frame)
    secs = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss1 = _rss_mb("VmHWM")
    queue.put(
        {
            "bars": len(frame),
            "chunk": chunk,
            "heap_peak_mb": peak / 2**20,
            "rss_before_mb": rss0,
            "rss_peak_mb": rss1,
            "secs": secs,
            "scored": int(probs["buy"].notna().sum()),
        }
    )


def _memory(model_dir: Path, bars: int, chunk: int) -> dict:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_memory_child, args=(str(model_dir), bars, chunk, queue))
    proc.start()
    out = queue.get()
    proc.join()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bars", type=int, default=20_000, help="last 1h bars for compact throughput")
    ap.add_argument("--b0-bars", type=int, default=4_000, help="last 1h bars for efficientnet_b0 throughput")
    ap.add_argument("--next-bars", type=int, default=1_500, help="bars for once() vs next()")
    ap.add_argument("--mem-bars", type=int, default=200_000, help="last 5m bars for the memory run (0 = all)")
    ap.add_argument("--out", default=None, help="write the markdown section here")
    args = ap.parse_args()

    from effnet_trading.imaging import ImageSpec, load_ohlcv
    from effnet_trading.model_zoo.runtime import default_threads

    hourly = load_ohlcv(DATA_1H)
    tmp = Path(tempfile.mkdtemp(prefix="bench_engines_"))
    compact = _export("compact", ImageSpec("gasf", window=32, size=(32, 32)), hourly, tmp / "compact")
    b0 = _export("efficientnet_b0", ImageSpec("gasf", window=64, size=(64, 64)), hourly, tmp / "b0")

    rows = []
    for name, model_dir, n in (
        ("compact @32 GASF", compact, args.bars),
        ("efficientnet_b0 @64 GASF", b0, args.b0_bars),
    ):
        r = _throughput(model_dir, hourly.iloc[-n:])
        rows.append((name, n, r))
        print(name, r, flush=True)
    ovn = _once_vs_next(compact, hourly.iloc[-args.next_bars :])
    print("once vs next", ovn, flush=True)
    import backtrader as bt

    ind = {
        f"{name}, {feed_name}": _indicator_only(d, hourly.iloc[-args.next_bars :], feed)
        for name, d in (("compact @32", compact), ("efficientnet_b0 @64", b0))
        for feed_name, feed in (("PandasData (before)", bt.feeds.PandasData), ("ArrayData", None))
    }
    print("indicator only", ind, flush=True)
    mem_bars = args.mem_bars or 10**9
    mem = [_memory(compact, mem_bars, chunk) for chunk in (2048, 8192)]
    print("memory", mem, flush=True)

    lines = [
        "## Engines (backtrader / vectorbt plugins)",
        "",
        f"Command: `python benchmarks/bench_engines.py --bars {args.bars} --b0-bars {args.b0_bars} --next-bars {args.next_bars} "
        f"--mem-bars {args.mem_bars}`",
        f"Machine: 2-core CPU, no GPU ({platform.processor() or platform.machine()}, onnxruntime CPU, {default_threads()} threads), "
        "shared with other jobs while measured, so absolute numbers are noisy; ratios come from the same process, back to back.",
        f"Data: last N bars of `{Path(DATA_1H).name}` (throughput), last {mem[0]['bars']:,} bars of `{Path(DATA_5M).name}` (memory). "
        "Untrained models exported to ONNX (`model_zoo.export.export_onnx`), threshold 0.4, fees 0.001.",
        "",
        "| model | bars | predictor img/s (pre-rendered) | backtrader runonce bars/s | ratio | vectorbt bars/s | ratio |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, n, r in rows:
        lines.append(
            f"| {name} | {n:,} | {r['predictor']:,.0f} | {r['backtrader']:,.0f} | {r['backtrader'] / r['predictor']:.2f} | "
            f"{r['vectorbt']:,.0f} | {r['vectorbt'] / r['predictor']:.2f} |"
        )
    lines += [
        "",
        "End to end = render + inference + policy + fills (+ backtrader's own loop / vectorbt's portfolio), divided by the",
        "number of scored bars; the predictor column times only `Predictor.predict` on images rendered beforehand (target: engines",
        ">= 0.8 of it). Both engines' equity curves are asserted equal (rtol 1e-9) in the run.",
        "",
        f"backtrader `once()` vs per-bar `next()` (`runonce=False`), compact, {ovn['bars']:,} bars: once {ovn['once_s']:.2f} s, "
        f"next {ovn['next_s']:.2f} s, **{ovn['ratio']:.1f}x** (target >= 10x); probabilities asserted equal.",
        "",
        "The indicator alone (a strategy that places no orders), same bars:",
        "",
        "| model, feed | once() s | next() s | next / once |",
        "|---|---:|---:|---:|",
        *[f"| {k} | {v['once_s']:.2f} | {v['next_s']:.2f} | **{v['ratio']:.1f}x** |" for k, v in ind.items()],
        "",
        "Peak memory of chunked scoring (`SignalModel.predict_proba`, compact @32, fresh child process each):",
        "",
        "| bars | chunk | Python-heap peak MB (tracemalloc) | peak RSS while scoring MB | RSS before scoring MB | seconds | bars/s |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for m in mem:
        lines.append(
            f"| {m['bars']:,} | {m['chunk']} | {m['heap_peak_mb']:.0f} | {m['rss_peak_mb']:.0f} | {m['rss_before_mb']:.0f} | "
            f"{m['secs']:.0f} | {m['scored'] / m['secs']:,.0f} |"
        )
    full = mem[0]["scored"] * 1 * 32 * 32 * 4 / 2**20
    lines += ["", f"For scale: all {mem[0]['scored']:,} images at once would take {full:,.0f} MB as float32.", ""]
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
