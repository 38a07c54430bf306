"""Live decision latency and idle CPU against the loopback fake Bybit (CPU only, no network).

1. Latency from the confirmed-candle WebSocket message (time of arrival, before JSON parsing) to
   the order request (or, on bars where the target does not change, to the end of the decision):
   ``SignalModel.update`` (render + ONNX) -> ``Policy.step`` -> ``Risk.step`` -> ``PaperBroker.submit``.
   Stream bars only (REST backfills excluded). efficientnet_b0 @64 GASF (window 64) and compact @32
   GASF (window 32), untrained weights (speed does not depend on them), onnxruntime on 1 thread,
   real Binance BTCUSDT 5m bars replayed by the fake exchange.
2. Idle CPU of a live session: ``effnet-trading live`` as a child process, one bar every
   ``--idle-bar-s`` seconds; its user + system CPU time (/proc) over ``--idle-s`` seconds after its
   first live bar, as a share of one core.

    OMP_NUM_THREADS=1 python benchmarks/bench_live.py [--bars 300] [--out benchmarks/RESULTS_live.md]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

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


def _latency(model_dir: Path, frame: pd.DataFrame, bars: int, bar_s: float, out: Path) -> dict:
    from effnet_trading.plugins.bybit import build_live_session
    from effnet_trading.plugins.bybit.fake_exchange import FakeBybit
    from effnet_trading.strategies import Policy

    start = len(frame) - bars - 2
    with FakeBybit(frame, start_index=start, bar_seconds=bar_s) as fake:
        session = build_live_session(
            model_dir,
            symbol="BTCUSDT",
            interval="5",
            out_dir=out,
            rest_url=fake.rest_url,
            ws_url=fake.ws_url,
            threads=1,
            policy=Policy(0.34),
        )
        session.run_sync(max_bars=bars)
    dec = pd.read_csv(out / "decisions.csv")
    live = dec[(dec["phase"] == "live") & (dec["source"] == "ws")]
    lat = live["latency_ms"].to_numpy()
    q = np.percentile(lat, [50, 95, 99])
    return {
        "n": len(lat),
        "p50": q[0],
        "p95": q[1],
        "p99": q[2],
        "max": lat.max(),
        "orders": len(pd.read_csv(out / "orders.csv")),
    }


def _proc_cpu_s(pid: int) -> float:
    """utime + stime of a process (and its threads) in seconds, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _idle_cpu(model_dir: Path, frame: pd.DataFrame, window_s: float, bar_s: float, out: Path) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of a running ``effnet-trading live`` child over ``window_s`` once it is live."""
    from effnet_trading.plugins.bybit.fake_exchange import FakeBybit

    with FakeBybit(frame, start_index=len(frame) - 200, bar_seconds=bar_s) as fake:
        cmd = [
            str(Path(sys.executable).with_name("effnet-trading")),
            "live",
            "--symbol",
            "BTCUSDT",
            "--interval",
            "5",
            "--model",
            str(model_dir),
            "--paper",
            "--out",
            str(out),
            "--duration",
            str(window_s + 60),
            "--rest-url",
            fake.rest_url,
            "--ws-url",
            fake.ws_url,
            "--threads",
            "1",
            "--stale-after",
            str(3 * bar_s),
        ]
        child = subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "OMP_NUM_THREADS": "1"}
        )
        try:
            status = out / "status.json"
            while not (status.exists() and '"live_bars": 1' in status.read_text()):  # warm-up done, first live bar seen
                time.sleep(0.05)
            c0, t0 = _proc_cpu_s(child.pid), time.perf_counter()
            time.sleep(window_s)
            c1, t1 = _proc_cpu_s(child.pid), time.perf_counter()
        finally:
            child.terminate()
            child.wait(30)
    return c1 - c0, t1 - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bars", type=int, default=300, help="live bars streamed per model")
    ap.add_argument("--bar-s", type=float, default=0.05, help="seconds between streamed bars (latency run)")
    ap.add_argument("--idle-bar-s", type=float, default=5.0, help="seconds between bars (idle-CPU run)")
    ap.add_argument(
        "--idle-s", type=float, default=30.0, help="seconds the idle CPU is measured over, once the session is live"
    )
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    from effnet_trading.imaging import ImageSpec, load_ohlcv

    frame = load_ohlcv(DATA_5M).iloc[-(args.bars + 1000) :]
    tmp = Path(tempfile.mkdtemp(prefix="bench_live_"))
    models = {
        "efficientnet_b0 @64 GASF": _export(
            "efficientnet_b0", ImageSpec("gasf", window=64, size=(64, 64)), frame, tmp / "b0"
        ),
        "compact @32 GASF": _export("compact", ImageSpec("gasf", window=32, size=(32, 32)), frame, tmp / "compact"),
    }
    rows = []
    for name, d in models.items():
        r = _latency(d, frame, args.bars, args.bar_s, tmp / f"live_{d.name}")
        rows.append((name, r))
        print(name, {k: round(float(v), 3) for k, v in r.items()}, flush=True)
    idle = {}
    for name in models:
        cpu, wall = _idle_cpu(models[name], frame, args.idle_s, args.idle_bar_s, tmp / f"idle_{models[name].name}")
        idle[name] = (cpu, wall)
        print(f"idle CPU {name}: {cpu:.2f} s CPU in {wall:.1f} s -> {cpu / wall:.2%} of one core", flush=True)

    lines = [
        "# Live decision latency and idle CPU (fake exchange, loopback)",
        "",
        f"`OMP_NUM_THREADS=1 python benchmarks/bench_live.py {' '.join(sys.argv[1:])}` on {platform.machine()} "
        f"({os.cpu_count()} cores, shared: load average {os.getloadavg()[0]:.1f} at the end), {pd.Timestamp.now(tz='UTC'):%Y-%m-%d}. onnxruntime CPU, 1 intra-op thread, "
        "spinning off; untrained weights; Binance BTCUSDT 5m bars replayed by `FakeBybit`, one bar every "
        f"{args.bar_s} s.",
        "",
        "Latency: confirmed-candle WebSocket message (arrival, before parsing) -> order request "
        "(`update` -> `Policy` -> `Risk` -> `PaperBroker.submit`; to the end of the decision on bars without an order). "
        "Stream bars only. With untrained weights the target never changed, so no order was sent in these runs and "
        "the time ends with the decision (`PaperBroker.submit` itself is a few microseconds).",
        "",
        "| model | bars | p50 ms | p95 ms | p99 ms | max ms |",
        "|---|---|---|---|---|---|",
        *[f"| {n} | {r['n']} | {r['p50']:.2f} | {r['p95']:.2f} | {r['p99']:.2f} | {r['max']:.2f} |" for n, r in rows],
        "",
        f"Idle CPU of a running `effnet-trading live --paper` process (one bar every {args.idle_bar_s:g} s; user + system "
        "time of the process and all its threads from /proc, measured after the first live bar, so start-up is excluded; "
        "onnxruntime spinning off):",
        "",
        "| model | CPU s | wall s | share of one core |",
        "|---|---|---|---|",
        *[f"| {n} | {c:.2f} | {w:.1f} | {c / w:.2%} |" for n, (c, w) in idle.items()],
        "",
    ]
    text = "\n".join(lines)
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
