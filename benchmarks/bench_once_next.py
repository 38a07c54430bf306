"""backtrader once() vs per-bar next(): the indicator alone (bench_engines._indicator_only, ArrayData),
interleaved with what bounds the ratio, in each of 3 repeats: batched ONNX inference of the same bars'
images (once()'s floor) and batch-1 inference (next()'s). Medians over the repeats; every figure of a
repeat is taken back to back, so a loaded machine moves them together.

    python benchmarks/bench_once_next.py [--bars 1500] [--repeats 3]
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_engines import DATA_1H, _export, _indicator_only

from effnet_trading.imaging import ImageSpec, load_ohlcv, render, valid_ends
from effnet_trading.model_zoo.runtime import Predictor


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bars", type=int, default=1500)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    h = load_ohlcv(DATA_1H)
    m = _export("compact", ImageSpec("gasf", window=32, size=(32, 32)), h, Path(tempfile.mkdtemp()) / "c")
    f = h.iloc[-args.bars :]
    _indicator_only(m, f.iloc[:300])  # warm-up
    pred = Predictor(m, providers="cpu")
    imgs = render(pred.spec, f, valid_ends(pred.spec, f))
    pred.predict(imgs[:64])
    rows = []
    for _ in range(args.repeats):
        r = _indicator_only(m, f)
        t0 = time.perf_counter()
        for i in range(0, len(imgs), 2048):  # once()'s chunks
            pred.predict(imgs[i : i + 2048])
        batched = time.perf_counter() - t0
        t0 = time.perf_counter()
        for i in range(len(imgs)):
            pred.predict(imgs[i : i + 1])
        single = time.perf_counter() - t0
        row = {**r, "onnx_batched_s": batched, "onnx_batch1_s": single, "ceiling": r["next_s"] / batched}
        rows.append(row)
        print(row, flush=True)
    med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
    n = len(imgs)
    print(
        f"medians of {args.repeats}, {len(f)} bars ({n} scored): once {med['once_s']:.2f} s, next {med['next_s']:.2f} s, "
        f"next/once {med['ratio']:.1f}x; ONNX batched {med['onnx_batched_s']:.2f} s ({med['onnx_batched_s'] / n * 1e3:.3f} "
        f"ms/img), batch 1 {med['onnx_batch1_s']:.2f} s ({med['onnx_batch1_s'] / n * 1e3:.3f} ms/img); "
        f"once() minus batched inference {med['once_s'] - med['onnx_batched_s']:.2f} s; next() minus batch-1 inference "
        f"{med['next_s'] - med['onnx_batch1_s']:.2f} s; ceiling next / batched inference {med['ceiling']:.1f}x"
    )


if __name__ == "__main__":
    main()
