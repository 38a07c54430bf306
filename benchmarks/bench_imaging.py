"""Imaging throughput and memory, measured beside the references in one process.

    python benchmarks/bench_imaging.py [--data PATH] [--batch 1024] [--mpf-images 20] [--out FILE]

* images/s of ``render`` for every OHLCV kind at 64x64 and 224x224 (batch of ``--batch``
  consecutive windows of real BTCUSDT 1h bars), median of ``--repeat`` runs; the chart kinds
  also with ``dtype=np.uint8`` (the model input dtype, written by the kernel directly);
* mplfinance on the same windows at the same pixel size, ``savefig`` into an in-memory
  buffer: only ``--mpf-images`` images are timed (after 2 warm-up images) and the rate extrapolated;
* pyts ``GramianAngularField`` on the same windows (field kinds use window = size, no PAA) (numba warmed up first, so compile time
  is excluded);
* peak traced memory (tracemalloc) of rendering the first 100,000 bars in one ``render``
  call vs ``iter_render`` in chunks.
Ratios are taken inside this process, so machine load affects both sides alike.
"""

from __future__ import annotations

import argparse
import io
import platform
import time
import tracemalloc
from pathlib import Path

import numpy as np

from effnet_trading.imaging import ImageSpec, iter_render, load_ohlcv, ohlcv_array, render, valid_ends

DATA = Path("/work/shared/data/binance_btcusdt_1h.csv.gz")
DATA_5M = Path("/work/shared/data/binance_btcusdt_5m.csv.gz")


def _specs(size: int) -> dict[str, ImageSpec]:
    return {
        "candles": ImageSpec("candles", window=32, size=size, ma=20),
        "ohlc_bars": ImageSpec("ohlc_bars", window=20, size=(size, 60 if size == 64 else size), ma=20),
        "gasf": ImageSpec("gasf", window=size, size=size),
        "gadf": ImageSpec("gadf", window=size, size=size),
        "recurrence": ImageSpec("recurrence", window=size, size=size),
    }


def _best(fn, repeat: int) -> float:
    """Median seconds of ``repeat`` runs (the best run flatters whichever side reuses warm memory)."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def _mplfinance_rate(frame, ends: np.ndarray, size: int, n: int) -> float:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mplfinance as mpf

    bars = frame.rename(columns=str.capitalize)
    bars.index = bars.index.tz_localize(None)
    dpi = 100

    def draw(e: int) -> None:
        buf = io.BytesIO()
        mpf.plot(
            bars.iloc[e - 31 : e + 1],
            type="candle",
            volume=True,
            mav=(20,),
            figsize=(size / dpi, size / dpi),
            savefig=dict(fname=buf, dpi=dpi, format="png"),
        )
        plt.close("all")

    for e in ends[:2]:  # warm-up: imports, font cache
        draw(e)
    t0 = time.perf_counter()
    for e in ends[:n]:
        draw(e)
    return n / (time.perf_counter() - t0)


def _pyts_rate(arr: np.ndarray, ends: np.ndarray, size: int, repeat: int) -> float:
    from pyts.image import GramianAngularField

    from effnet_trading.imaging._windows import windows

    gaf = GramianAngularField(image_size=size, method="summation", sample_range=(-1, 1))
    gaf.fit_transform(windows(arr[:, 3], ends[:8], size))  # numba warm-up
    x = windows(arr[:, 3], ends, size)
    return len(ends) / _best(lambda: gaf.fit_transform(x), repeat)


def _peak_mb(fn) -> float:
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--mpf-images", type=int, default=20)
    ap.add_argument("--memory-bars", type=int, default=100_000)
    ap.add_argument("--out", default=None, help="also write the markdown section to this file")
    args = ap.parse_args()

    frame = load_ohlcv(args.data)
    arr = ohlcv_array(frame)
    lines = [
        f"machine: {platform.processor() or platform.machine()}, 2-core CPU, no GPU; numpy {np.__version__}",
        f"data: {Path(args.data).name} ({len(arr):,} bars), batch {args.batch} consecutive windows, "
        f"median of {args.repeat} runs",
        "",
        "| kind | size | window | images/s | reference | ref images/s | ratio |",
        "|---|---|---|---|---|---|---|",
    ]
    for size in (64, 224):
        mpf_rate = _mplfinance_rate(
            frame, valid_ends(_specs(size)["candles"], arr)[-args.mpf_images :], size, args.mpf_images
        )
        pyts_rate = _pyts_rate(arr, np.arange(len(arr) - args.batch, len(arr)), size, args.repeat)
        for kind, spec in _specs(size).items():
            ends = valid_ends(spec, arr)[-args.batch :]
            render(spec, arr, ends[:8])
            rate = args.batch / _best(lambda: render(spec, arr, ends), args.repeat)
            shape = "x".join(map(str, spec.size))
            if kind in ("candles", "ohlc_bars"):
                ref = f"mplfinance candle+volume+MA, savefig to BytesIO ({args.mpf_images} images timed, extrapolated)"
                lines.append(
                    f"| {kind} | {shape} | {spec.window} | {rate:,.0f} | {ref} | {mpf_rate:,.1f} | {rate / mpf_rate:,.0f}x |"
                )
                # uint8 0..255: what models are trained on and served (MODEL_INPUT_DTYPE), written by the kernel
                rate8 = args.batch / _best(lambda: render(spec, arr, ends, dtype=np.uint8), args.repeat)
                lines.append(
                    f"| {kind} uint8 | {shape} | {spec.window} | {rate8:,.0f} | {ref} | {mpf_rate:,.1f} | {rate8 / mpf_rate:,.0f}x |"
                )
            elif kind == "gasf":
                ref = "pyts GramianAngularField, same windows"
                lines.append(
                    f"| {kind} | {shape} | {spec.window} | {rate:,.0f} | {ref} | {pyts_rate:,.0f} | {rate / pyts_rate:.1f}x |"
                )
            else:
                lines.append(f"| {kind} | {shape} | {spec.window} | {rate:,.0f} | - | - | - |")
        print("\n".join(lines[-7:]), flush=True)

    mem_frame = load_ohlcv(DATA_5M).iloc[: args.memory_bars] if DATA_5M.exists() else frame.iloc[: args.memory_bars]
    mspec = ImageSpec("gasf", window=32, size=32)

    def chunked() -> None:
        for _, images in iter_render(mspec, mem_frame, chunk=2048):
            images.sum()

    one = _peak_mb(lambda: render(mspec, mem_frame).sum())
    chunks = _peak_mb(chunked)
    out_mb = (len(mem_frame) - mspec.window + 1) * 32 * 32 * 4 / 2**20
    lines += [
        "",
        f"peak traced memory, {len(mem_frame):,} bars of {DATA_5M.name} as gasf 32x32 (output {out_mb:,.0f} MB float32):",
        "",
        "| method | peak MB |",
        "|---|---|",
        f"| one render() call | {one:,.0f} |",
        f"| iter_render(chunk=2048) | {chunks:,.0f} |",
    ]
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
