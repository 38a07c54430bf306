"""Signal-engine benchmarks on real Binance BTCUSDT 5m bars (ratios measured in one process).

    python benchmarks/bench_strategies.py [--bars 20000] [--live-bars 1000]

1. SignalModel.predict_proba (batched render -> infer in chunks) vs update() one bar at a time,
   with an untrained small_cnn on 32x32 GASF exported to ONNX (CPU), and with parity checked.
2. Peak Python-heap memory of predict_proba with chunk=2048 vs one chunk holding every image.
3. simulate() (walks target changes, vectorised marking) vs a plain per-bar loop.
4. Policy.positions (batch) vs Policy.step per bar.
5. update() on timeframe specs (``--timeframes``): ms per base bar for a 5m-only spec, one 1h spec
   and a 5m + 1h + 4h stack, incremental (per-member partial bars) vs the previous path (resample
   the whole buffer per bar, reproduced here), with a numpy stand-in model so the figure is the
   engine's own cost; outputs compared bar by bar.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import tracemalloc

import numpy as np
import pandas as pd

DATA = "/work/shared/data/binance_btcusdt_5m.csv.gz"


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def _export_tiny(spec, frame, out_dir):
    import torch

    from effnet_trading.imaging import render
    from effnet_trading.model_zoo import create_model
    from effnet_trading.model_zoo.export import export_onnx

    torch.manual_seed(0)
    model = create_model("small_cnn", num_classes=3, in_chans=spec.channels).eval()
    export_onnx(
        model,
        out_dir,
        spec=spec,
        architecture="small_cnn",
        label={"rule": "forward_return", "horizon": 6},
        sample_images=render(spec, frame.iloc[:64]),
    )
    return out_dir


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bars", type=int, default=20_000)
    ap.add_argument("--live-bars", type=int, default=1_000)
    ap.add_argument("--timeframes", action="store_true", help="only the update()-on-timeframe-specs benchmark")
    args = ap.parse_args()
    if args.timeframes:
        return _timeframe_update(args.live_bars)
    from effnet_trading.imaging import ImageSpec, load_ohlcv
    from effnet_trading.strategies import Policy, SignalModel, simulate

    frame = load_ohlcv(DATA).iloc[-args.bars :]
    spec = ImageSpec("gasf", window=32, size=(32, 32))
    with tempfile.TemporaryDirectory() as tmp:
        sm = SignalModel(_export_tiny(spec, frame, os.path.join(tmp, "tiny")))
        sm.predict_proba(frame.iloc[:200])  # warm the session
        probs, t_batch = _timed(lambda: sm.predict_proba(frame))
        live = frame.iloc[-args.live_bars :]
        sm.reset()
        rows, t_live = _timed(lambda: [sm.update(bar) for _, bar in live.iterrows()])
        got = np.array([r.to_numpy() for r in rows if r is not None])
        ref = probs.to_numpy()[-len(got) :]
        per_bar_batch = t_batch / len(frame) * 1e3
        per_bar_live = t_live / len(live) * 1e3
        print(f"| SignalModel.predict_proba, {len(frame)} bars | {t_batch:.2f} s | {per_bar_batch:.3f} ms/bar |")
        print(f"| SignalModel.update, {len(live)} bars | {t_live:.2f} s | {per_bar_live:.3f} ms/bar |")
        print(
            f"| batch speed-up per bar | {per_bar_live / per_bar_batch:.1f}x | max abs diff live vs batch {np.abs(got - ref).max():.2e} |"
        )

        for chunk in (2048, len(frame)):
            sm.chunk = chunk
            tracemalloc.start()
            sm.predict_proba(frame)
            peak = tracemalloc.get_traced_memory()[1] / 2**20
            tracemalloc.stop()
            print(f"| predict_proba peak heap, chunk={chunk} | {peak:.0f} MiB |")

    rng = np.random.default_rng(0)
    target = pd.Series(
        rng.choice([-1.0, 0.0, 1.0, np.nan], len(frame), p=[0.02, 0.02, 0.02, 0.94]), index=frame.index
    ).ffill()
    res, t_sim = _timed(lambda: simulate(frame, target, fees=0.001, slippage=0.0002))

    def slow():
        cash, units, last, eq = 10_000.0, 0.0, 0.0, []
        o, c, tg = frame["open"].to_numpy(), frame["close"].to_numpy(), np.nan_to_num(target.to_numpy())
        for t in range(len(frame)):
            if t and tg[t - 1] != last:
                want = tg[t - 1] * (cash + units * o[t]) / o[t]
                d = want - units
                px = o[t] * (1 + 0.0002 * np.sign(d))
                if d > 0 and d * px * 1.001 > cash:
                    d = max(cash, 0.0) / (px * 1.001)
                    want = units + d
                cash -= d * px + 0.001 * abs(d) * px
                units, last = want, tg[t - 1]
            eq.append(cash + units * c[t])
        return np.array(eq)

    eq, t_slow = _timed(slow)
    assert np.allclose(eq, res.equity.to_numpy(), rtol=1e-12)
    print(
        f"| simulate, {len(frame)} bars, {len(res.orders)} orders | {t_sim * 1e3:.1f} ms | per-bar loop {t_slow * 1e3:.1f} ms ({t_slow / t_sim:.1f}x) |"
    )

    pf = pd.DataFrame(rng.dirichlet([1, 1, 1], len(frame)), index=frame.index, columns=["sell", "hold", "buy"])
    pol = Policy(threshold=0.5, hysteresis=0.05)
    _, t_pos = _timed(lambda: pol.positions(pf))
    pol.reset()
    _, t_step = _timed(lambda: [pol.step(r) for r in pf.to_numpy()])
    print(
        f"| Policy.positions, {len(frame)} rows | {t_pos * 1e3:.1f} ms | step loop {t_step * 1e3:.1f} ms ({t_step / t_pos:.1f}x) |"
    )


class _StatModel:
    """numpy stand-in for a network (image statistics -> softmax): isolates the engine's cost."""

    def __init__(self, spec):
        self.spec, self.class_names, self.input_shape = spec, ("sell", "hold", "buy"), (spec.channels, *spec.size)

    def predict(self, images, closes=None):
        m = images.reshape(len(images), -1).astype(np.float64) / 255.0
        e = np.exp(np.stack([m.mean(1), m.std(1), m[:, ::7].mean(1)], 1))
        return (e / e.sum(1, keepdims=True)).astype(np.float32)


def _resample_path(sm, bar):
    """The pre-incremental update(): the buffer as a frame, resampled and rendered in full for each bar."""
    from effnet_trading.imaging import MODEL_INPUT_DTYPE, OHLCV_COLUMNS, render, warmup

    sm._ring.push(int(bar.name.as_unit("ns").value), bar.to_numpy(dtype=np.float64))
    times, bars = sm._ring.ordered()
    data = pd.DataFrame(bars, index=pd.DatetimeIndex(pd.to_datetime(times, utc=True)), columns=list(OHLCV_COLUMNS))
    data.attrs["repairs"] = []
    if len(bars) < 2 or warmup(sm.spec, data) > len(bars) - 1:
        return None
    images = render(sm.spec, data, np.array([len(bars) - 1]), dtype=MODEL_INPUT_DTYPE)
    return sm.model.predict(images)[0]


def _timeframe_update(n_live: int) -> None:
    from effnet_trading.imaging import ImageSpec, StackSpec, load_ohlcv
    from effnet_trading.strategies import SignalModel

    frame = load_ohlcv(DATA).iloc[-(n_live + 12_000) :]
    g = dict(size=(32, 32), returns=True)
    specs = {
        "gasf 32, 5m": ImageSpec("gasf", window=32, **g),
        "gasf 32, 1h": ImageSpec("gasf", window=32, timeframe="1h", **g),
        "stack 5m + 1h + 4h": StackSpec(
            tuple(ImageSpec("gasf", window=32, timeframe=tf, **g) for tf in (None, "1h", "4h"))
        ),
    }
    print("| spec | buffer bars | incremental update() ms/bar | resample-the-buffer ms/bar | ratio | max abs diff |")
    print("|---|---|---|---|---|---|")
    for name, spec in specs.items():
        sm = SignalModel(_StatModel(spec), base_interval="5m")
        warm, live = frame.iloc[:-n_live], frame.iloc[-n_live:]
        for _, bar in warm.iloc[-sm.history - 5 :].iterrows():  # fill the buffer
            sm.update(bar)
        bars = list(live.iterrows())
        t_inc, t_old, diff = [], [], 0.0
        timeframes = any(s.timeframe for s in spec.specs)
        for _, bar in bars:  # interleaved: both paths see the same machine load
            t0 = time.perf_counter()
            new = sm.update(bar)
            t_inc.append(time.perf_counter() - t0)
            if not timeframes:
                continue  # plain specs always rendered from the buffer array: no previous path to compare
            sm._ring.count -= 1  # the reference re-pushes the same bar into the same buffer slot
            t0 = time.perf_counter()
            old = _resample_path(sm, bar)
            t_old.append(time.perf_counter() - t0)
            if new is not None and old is not None:
                diff = max(diff, float(np.abs(new.to_numpy() - old).max()))
        inc = np.median(t_inc) * 1e3
        if not timeframes:
            print(f"| {name} | {sm.history} | {inc:.3f} | (no resampling) | - | - |")
            continue
        ref = np.median(t_old) * 1e3
        print(f"| {name} | {sm.history} | {inc:.3f} | {ref:.3f} | {ref / inc:.1f}x | {diff:.1e} |")


if __name__ == "__main__":
    main()
