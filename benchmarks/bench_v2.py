"""EfficientNetV2 beside B0 and compact on CPU: parameters, training images/s, time to reach the planted
edge, and ONNX Runtime inference images/s, at 32 and 64 px. All models in one process, one after the
other, so the ratios (vs compact at the same size) are comparable on a shared machine.

Training throughput: forward + backward + AdamW on random 1-channel images, the size-aware layout that
``train`` builds (``input_size``). Time to edge: ``train_model`` on the shipped planted set (GADF of
returns, window 32), the wall time until the validation accuracy first reaches the majority rate + 0.05
(None if it does not within the budget). Inference: the exported ONNX model, ``Predictor`` on CPU.

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/bench_v2.py --sizes 32,64 --out benchmarks/RESULTS_v2.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from effnet_trading.model_zoo import Predictor, create_model

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("compact", "compact_v2", "efficientnet_b0", "efficientnetv2_s")


def n_params(name: str) -> int:
    with torch.device("meta"):
        return sum(p.numel() for p in create_model(name, num_classes=3, in_chans=1).parameters())


def train_rate(name: str, size: int, batch: int, steps: int) -> float:
    """Training images/s (after 2 warm-up steps), size-aware layout."""
    torch.manual_seed(0)
    model = create_model(name, num_classes=3, in_chans=1, input_size=size).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x, y = torch.rand(batch, 1, size, size), torch.randint(0, 3, (batch,))
    for i in range(steps + 2):
        if i == 2:
            t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return batch * steps / (time.perf_counter() - t0)


def infer_rate(name: str, size: int, batch: int = 64, reps: int = 5) -> float:
    """ONNX Runtime (CPU) images/s of the exported model, batch ``batch``."""
    from effnet_trading.imaging import ImageSpec
    from effnet_trading.model_zoo.export import export_onnx

    spec = ImageSpec("gadf", window=32, size=(size, size), returns=True)
    model = create_model(name, num_classes=3, in_chans=1, input_size=size).eval()
    with tempfile.TemporaryDirectory() as tmp:
        export_onnx(model, Path(tmp) / name, spec=spec, architecture=name)
        pred = Predictor(Path(tmp) / name, "cpu")
        x = np.random.default_rng(0).random((batch, 1, size, size), dtype=np.float32)
        pred.predict(x)
        t0 = time.perf_counter()
        for _ in range(reps):
            pred.predict(x)
        return batch * reps / (time.perf_counter() - t0)


def time_to_edge(name: str, size: int, frame, train: int, epochs: int, margin: float = 0.05) -> dict:
    """Train on the planted set; wall seconds until validation accuracy >= majority + margin."""
    from effnet_trading.imaging import ImageSpec
    from effnet_trading.model_zoo.dataset import ImageDataset
    from effnet_trading.model_zoo.train import TrainConfig, train_model

    spec = ImageSpec("gadf", window=32, size=(size, size), returns=True)
    ds = ImageDataset.build(frame, spec, 6)
    rows, t0 = [], time.perf_counter()

    def stop(row: dict) -> bool:
        rows.append(row | {"wall": time.perf_counter() - t0})
        return False

    cfg = TrainConfig(model=name, spec=spec, epochs=epochs, max_train_samples=train, progress=False, num_threads=1)
    res = train_model(frame, cfg, dataset=ds, callbacks=[stop])
    yv = ds.labels[res.split.valid] if hasattr(res.split, "valid") else ds.labels[res.split.test]
    majority = float(np.bincount(yv, minlength=3).max() / len(yv))
    reached = next((r["wall"] for r in rows if r.get("val_acc", 0.0) >= majority + margin), None)
    return {
        "seconds_to_edge": reached,
        "val_acc": [round(r.get("val_acc", float("nan")), 3) for r in rows],
        "majority": round(majority, 3),
        "test_accuracy": round(res.metrics["test"]["accuracy"], 3),
        "test_majority": round(res.metrics["test"]["majority_rate"], 3),
        "seconds": round(time.perf_counter() - t0, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--sizes", default="32,64")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--train", type=int, default=2000, help="training images for the time-to-edge runs")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--bars", type=int, default=6000, help="planted bars used for time to edge")
    ap.add_argument("--skip-edge", action="store_true")
    ap.add_argument("--skip-ort", action="store_true")
    ap.add_argument(
        "--rounds", type=int, default=1, help="training img/s: best of this many interleaved rounds (shared CPUs)"
    )
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    from effnet_trading.imaging import load_ohlcv

    frame = load_ohlcv(ROOT / "sample_data" / "planted_5m.csv").iloc[: args.bars]
    models, sizes = args.models.split(","), [int(s) for s in args.sizes.split(",")]
    rates: dict[tuple[str, int], float] = {}
    for _ in range(args.rounds):  # interleaved, so a load change hits every model alike
        for size in sizes:
            for name in models:
                r = train_rate(name, size, args.batch, args.steps)
                rates[name, size] = max(rates.get((name, size), 0.0), r)
    records = []
    for size in sizes:
        for name in models:
            rec = {"model": name, "size": size, "params": n_params(name)}
            rec["train_img_s"] = round(rates[name, size], 1)
            rec["ort_img_s"] = None if args.skip_ort else round(infer_rate(name, size), 1)
            if not args.skip_edge:
                rec |= time_to_edge(name, size, frame, args.train, args.epochs)
            records.append(rec)
            print(json.dumps(rec), flush=True)
    for r in records:
        base = next(b for b in records if b["model"] == "compact" and b["size"] == r["size"])
        r["train_vs_compact"] = round(r["train_img_s"] / base["train_img_s"], 3)
    print(
        f"# {platform.machine()}, torch {torch.__version__}, threads {torch.get_num_threads()}, load {os.getloadavg()}"
    )
    print(
        "| model | px | params | train img/s | vs compact | ORT img/s | s to edge | val acc by epoch (majority) | test acc (majority) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in records:
        edge = r.get("seconds_to_edge")
        print(
            f"| {r['model']} | {r['size']} | {r['params']:,} | {r['train_img_s']} | {r['train_vs_compact']} | "
            f"{r['ort_img_s']} | {'-' if edge is None else f'{edge:.0f}'} | {r.get('val_acc', '-')} ({r.get('majority', '-')}) | "
            f"{r.get('test_accuracy', '-')} ({r.get('test_majority', '-')}) |"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(records, indent=2))


if __name__ == "__main__":
    main()
