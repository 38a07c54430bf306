"""backtrader once() vs per-bar next(): the indicator alone (bench_engines._indicator_only), PandasData
(bar-by-bar preload, the figure before ArrayData) vs ArrayData, 3 repeats each, medians; plus the ONNX
per-image cost batched vs batch 1 (the ceiling of the ratio: once() is mostly batched inference).

    python benchmarks/bench_once_next.py
"""

import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import backtrader as bt
from bench_engines import DATA_1H, _export, _indicator_only

from effnet_trading.imaging import ImageSpec, load_ohlcv, render, valid_ends
from effnet_trading.model_zoo.runtime import Predictor


def main() -> None:
    h = load_ohlcv(DATA_1H)
    m = _export("compact", ImageSpec("gasf", window=32, size=(32, 32)), h, Path(tempfile.mkdtemp()) / "c")
    f = h.iloc[-1500:]
    _indicator_only(m, f.iloc[:300])
    res = {"PandasData": [], "ArrayData": []}
    for rep in range(3):
        for fn, feed in (("PandasData", bt.feeds.PandasData), ("ArrayData", None)):
            r = _indicator_only(m, f, feed)
            res[fn].append(r)
            print(fn, r, flush=True)
    for fn, rs in res.items():
        print(
            fn,
            "median once",
            statistics.median(r["once_s"] for r in rs),
            "next",
            statistics.median(r["next_s"] for r in rs),
            "ratio",
            statistics.median(r["ratio"] for r in rs),
        )
    pred = Predictor(m, providers="cpu")
    imgs = render(pred.spec, f, valid_ends(pred.spec, f))[:1024]
    pred.predict(imgs[:64])
    t0 = time.perf_counter()
    pred.predict(imgs)
    tb = (time.perf_counter() - t0) / len(imgs)
    t0 = time.perf_counter()
    for i in range(300):
        pred.predict(imgs[i : i + 1])
    t1 = (time.perf_counter() - t0) / 300
    print(f"ONNX per image: batched {tb * 1e3:.3f} ms, batch 1 {t1 * 1e3:.3f} ms, ratio {t1 / tb:.1f}")


if __name__ == "__main__":
    main()
