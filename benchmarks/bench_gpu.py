"""GPU checks and figures: torch inference latency per EfficientNet variant at its native size,
the CUDA training path (AMP + channels_last) end to end, and which onnxruntime providers exist.

Run on a machine with a CUDA GPU (the project's CI has none; these paths are selected when one
is present). Every latency is measured beside a reference in the same process: fp32 eager
batch-1 latency is the reference for fp16 and for batch 64, and the CPU forward pass is the
numerical reference for the GPU one.

    python benchmarks/bench_gpu.py --out gpu.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from effnet_trading.model_zoo import create_model, model_info

# Per-image GPU latencies the product brief quoted (hypotheses to test, not targets to hit).
CLAIMS_MS = {"efficientnet_b0": 2.3, "efficientnet_b3": 8.7, "efficientnet_b5": 21.4}


def _cuda_ms(fn, reps: int) -> np.ndarray:
    """Per-call milliseconds of ``fn()`` timed with CUDA events (after 5 warm-up calls)."""
    for _ in range(5):
        fn()
    torch.cuda.synchronize()
    out = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        torch.cuda.synchronize()
        out.append(a.elapsed_time(b))
    return np.asarray(out)


def inference(name: str, reps: int) -> dict:
    """Batch-1 and batch-64 latency of one variant at its native size: fp32, fp16 (autocast), channels_last."""
    size = model_info(name).default_size
    torch.manual_seed(0)
    net = create_model(name, num_classes=3, in_chans=3).eval()
    x1 = torch.rand(1, 3, size, size)
    with torch.no_grad():
        ref = torch.softmax(net(x1), 1)
    net = net.cuda()
    xg = x1.cuda()
    row: dict = {"model": name, "size": size, "params": sum(p.numel() for p in net.parameters())}
    with torch.no_grad():
        row["max_abs_diff_gpu_vs_cpu_fp32"] = float((torch.softmax(net(xg), 1).cpu() - ref).abs().max())
        fp32 = _cuda_ms(lambda: net(xg), reps)
        with torch.autocast("cuda", dtype=torch.float16):
            fp16 = _cuda_ms(lambda: net(xg), reps)
        cl = net.to(memory_format=torch.channels_last)
        xcl = xg.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cuda", dtype=torch.float16):
            fp16_cl = _cuda_ms(lambda: cl(xcl), reps)
            x64 = torch.rand(64, 3, size, size, device="cuda").contiguous(memory_format=torch.channels_last)
            b64 = _cuda_ms(lambda: cl(x64), max(5, reps // 5))
    row.update(
        {
            "b1_fp32_ms_p50": float(np.median(fp32)),
            "b1_fp32_ms_p99": float(np.percentile(fp32, 99)),
            "b1_fp16_ms_p50": float(np.median(fp16)),
            "b1_fp16_cl_ms_p50": float(np.median(fp16_cl)),
            "b64_fp16_cl_ms_per_image": float(np.median(b64) / 64),
            "fp16_speedup_vs_fp32_b1": float(np.median(fp32) / np.median(fp16_cl)),
            "claim_ms": CLAIMS_MS.get(name),
        }
    )
    return row


def training(data: Path, model: str, size: int, epochs: int) -> dict:
    """The CUDA training path end to end (AMP, channels_last) on the shipped planted data, then the
    exported ONNX model checked against the trained torch model on CPU."""
    import tempfile

    from effnet_trading.imaging.data import load_ohlcv
    from effnet_trading.imaging.spec import ImageSpec
    from effnet_trading.model_zoo.card import load_card
    from effnet_trading.model_zoo.train import TrainConfig, train_and_export

    ohlcv = load_ohlcv(data)
    cfg = TrainConfig(
        model=model,
        spec=ImageSpec("candles", window=32, size=(size, size)),
        epochs=epochs,
        device="cuda",
        amp=True,
        channels_last=True,
        progress=False,
    )
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        res = train_and_export(ohlcv, cfg, tmp)
        load_card(Path(tmp) / "model")  # raises unless the ONNX file's sha256 and the spec check out
    wall = time.perf_counter() - t0
    test = res.metrics["test"]
    return {
        "model": model,
        "size": size,
        "epochs": epochs,
        "wall_s": round(wall, 1),
        "test_accuracy": test["accuracy"],
        "majority_rate": test["majority_rate"],
        "n_test": res.metrics["split"].get("n_test"),
        "card_loads": True,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="efficientnet_b0,efficientnet_b3,efficientnet_b5")
    ap.add_argument("--reps", type=int, default=50)
    ap.add_argument("--data", default="sample_data/planted_5m.csv")
    ap.add_argument("--train", default="compact:32,efficientnet_b0:64", help="model:size pairs trained on CUDA")
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--out", default="gpu.json")
    a = ap.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("no CUDA GPU visible to torch: this benchmark needs one.")
    torch.backends.cudnn.benchmark = True
    import onnxruntime as ort

    env = {
        "gpu": torch.cuda.get_device_name(0),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "onnxruntime": ort.__version__,
        "ort_providers": ort.get_available_providers(),
        "python": platform.python_version(),
    }
    print(json.dumps(env), flush=True)
    rows = []
    for name in a.models.split(","):
        rows.append(inference(name, a.reps))
        print(json.dumps(rows[-1]), flush=True)
    trained = []
    for pair in filter(None, a.train.split(",")):
        model, size = pair.split(":")
        trained.append(training(Path(a.data), model, int(size), a.epochs))
        print(json.dumps(trained[-1]), flush=True)
    Path(a.out).write_text(json.dumps({"env": env, "inference": rows, "training": trained}, indent=2))


if __name__ == "__main__":
    main()
