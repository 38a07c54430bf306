"""onnxruntime session options, one at a time, vs torch eager: EfficientNet-B0 fp32, 64 px, batch 64, CPU.

    OMP_NUM_THREADS=1 python benchmarks/bench_ort_options.py [--rounds 5] [--calls 4] [--model efficientnet_b0]

The ``Predictor``'s session (graph optimisation ENABLE_ALL, 1 intra-op thread, spinning off) is
the baseline; each other row changes one option. torch eager runs with 1 thread (and once with
``channels_last`` as information). Engines are interleaved over ``--rounds`` rounds so load from
other jobs hits them alike; the figure is the median batch time over all calls, as img/s.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from bench_zoo import _estimate_bn_stats, _images  # same inputs and BN statistics as the zoo benchmark


def _session(path: Path, level: str = "ALL", threads: int = 1, spinning: bool = False, **extra):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = getattr(ort.GraphOptimizationLevel, f"ORT_ENABLE_{level}")
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    for key, value in extra.items():
        if key in ("enable_mem_pattern", "enable_cpu_mem_arena"):
            setattr(opts, key, value)
        else:
            opts.add_session_config_entry(key, value)
    sess = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return lambda x: sess.run(None, {name: x})[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="efficientnet_b0")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--calls", type=int, default=4, help="batch-64 calls per engine per round")
    args = ap.parse_args()

    import torch

    from effnet_trading.model_zoo import create_model
    from effnet_trading.model_zoo.export import export_onnx
    from effnet_trading.model_zoo.runtime import Predictor

    torch.set_num_threads(1)
    spec, imgs = _images(args.size, 128)
    torch.manual_seed(0)
    model = create_model(args.model, num_classes=3, in_chans=spec.channels)
    _estimate_bn_stats(model, (torch.from_numpy(imgs[:64]) - 0.5) / 0.25)
    model.eval()
    x = np.ascontiguousarray(imgs[64:128])
    tx = torch.from_numpy(x)
    mean, std = torch.full((1, spec.channels, 1, 1), 0.5), torch.full((1, spec.channels, 1, 1), 0.25)
    cl_model = create_model(args.model, num_classes=3, in_chans=spec.channels)
    cl_model.load_state_dict(model.state_dict())
    cl_model = cl_model.eval().to(memory_format=torch.channels_last)

    def eager(net, t):
        with torch.inference_mode():
            return torch.softmax(net((t - mean) / std), 1).numpy()

    with tempfile.TemporaryDirectory() as tmp:
        export_onnx(model, Path(tmp) / "m", spec=spec, architecture=args.model, sample_images=x)
        path = Path(tmp) / "m" / "model.onnx"
        pred = Predictor(Path(tmp) / "m", "cpu", batch_size=64, intra_op_threads=1)
        engines = {
            "torch eager, 1 thread (reference)": lambda: eager(model, tx),
            "torch eager, channels_last (information)": lambda: eager(
                cl_model, tx.to(memory_format=torch.channels_last)
            ),
            "Predictor: ENABLE_ALL, 1 thread, spinning off": lambda: pred.predict(x),
            "ENABLE_EXTENDED (no NCHWc layout transform)": (lambda f=_session(path, "EXTENDED"): f(x)),
            "ENABLE_BASIC (constant folding, BN fusion only)": (lambda f=_session(path, "BASIC"): f(x)),
            "ENABLE_ALL, spinning on": (lambda f=_session(path, spinning=True): f(x)),
            "ENABLE_ALL, denormals as zero": (lambda f=_session(path, **{"session.set_denormal_as_zero": "1"}): f(x)),
            "ENABLE_ALL, no memory pattern / arena": (
                lambda f=_session(path, enable_mem_pattern=False, enable_cpu_mem_arena=False): f(x)
            ),
            "ENABLE_ALL, 2 intra-op threads": (lambda f=_session(path, threads=2): f(x)),
        }
        ref = eager(model, tx)
        for name, fn in engines.items():  # warm-up, and every engine computes the same probabilities
            got = fn()
            assert np.abs(got - ref).max() < 1e-3, (name, np.abs(got - ref).max())
        times: dict[str, list[float]] = {k: [] for k in engines}
        for _ in range(args.rounds):
            for name, fn in engines.items():
                for _ in range(args.calls):
                    t0 = time.perf_counter()
                    fn()
                    times[name].append(time.perf_counter() - t0)
    base = 64 / np.median(times["torch eager, 1 thread (reference)"])
    print(
        f"| {args.model} fp32, {args.size} px, batch 64 | img/s (median of {args.rounds * args.calls}) | vs torch eager |"
    )
    print("|---|---|---|")
    for name, ts in times.items():
        rate = 64 / np.median(ts)
        print(f"| {name} | {rate:,.0f} | {rate / base:.2f}x |")


if __name__ == "__main__":
    main()
