"""B5's BatchNorm momentum, 0.01 (TensorFlow's, the old table) against 0.1: same initial weights, same batches.

Trains two copies of EfficientNet-B5 on the shipped planted candles (32 px) for ``--steps`` AdamW steps
(lr 3e-3, batch 64), then scores ``--test-bars`` (768) held-out bars three ways. The first is eval mode, with the running
statistics. The second is training mode's batch statistics, with dropout and drop-path off. The third is
eval mode after ``recalibrate_batchnorm``. docs/training.md, "B5 and BatchNorm momentum", has the figures
(100 steps, 2 threads: about 9 minutes).

    python benchmarks/bn_momentum_check.py --steps 100 --threads 2
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]


def _score(tag: str, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
    with torch.no_grad():
        p = torch.softmax(torch.cat([model(x[i : i + 128]) for i in range(0, len(x), 128)]), 1)
    pred = p.argmax(1)
    top = np.bincount(pred.numpy(), minlength=3).max() / len(x)
    print(
        f"{tag:34s} accuracy {(pred == y).float().mean():.3f}  top class on {top:.0%} of inputs  "
        f"spread of probabilities across inputs {p.std(0).mean():.4f}",
        flush=True,
    )


def main() -> None:
    from effnet_trading.imaging import ImageSpec, load_ohlcv
    from effnet_trading.model_zoo import create_model
    from effnet_trading.model_zoo._blocks import DropPath, recalibrate_batchnorm
    from effnet_trading.model_zoo.dataset import ImageDataset

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--test-bars", type=int, default=768)
    args = p.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    ds = ImageDataset.build(
        load_ohlcv(ROOT / "sample_data" / "planted_5m.csv"), ImageSpec("candles", window=32, size=(32, 32)), horizon=6
    )
    x = (torch.from_numpy(ds.images.astype(np.float32) / 255.0) - 0.5) / 0.25
    y = torch.from_numpy(ds.labels.astype(np.int64))
    n = len(y)
    train, test = (
        np.arange(0, int(n * 0.8)),
        np.arange(int(n * 0.8) + 12, n)[: args.test_bars],
    )  # 12 bars: purge + embargo
    base = create_model("efficientnet_b5", num_classes=3, in_chans=x.shape[1], input_size=32)
    models = {"momentum 0.01": copy.deepcopy(base), "momentum 0.1": base}
    for name, m in models.items():
        for bn in m.modules():
            if isinstance(bn, torch.nn.BatchNorm2d):
                bn.momentum = 0.01 if name == "momentum 0.01" else 0.1
    rng = np.random.default_rng(0)
    batches = [rng.choice(train, 64, replace=False) for _ in range(args.steps)]
    print(f"{n} samples; test majority rate {np.bincount(ds.labels[test]).max() / len(test):.3f}", flush=True)
    for name, m in models.items():
        torch.manual_seed(1)  # the same dropout and drop-path draws for both copies: only momentum differs
        t0 = time.perf_counter()
        opt = torch.optim.AdamW(m.parameters(), 3e-3, weight_decay=1e-2)
        m.train()
        for b in batches:
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(m(x[b]), y[b])
            loss.backward()
            opt.step()
        print(f"{name}: last training loss {loss.item():.3f} ({time.perf_counter() - t0:.0f} s)", flush=True)
    xt, yt = x[test], y[test]
    for name, m in models.items():
        m.eval()
        _score(f"{name}, eval (running statistics)", m, xt, yt)
        m.train()
        for mod in m.modules():  # batch statistics, without the stochastic layers
            if isinstance(mod, (torch.nn.Dropout, DropPath)):
                mod.eval()
        _score(f"{name}, batch statistics", m, xt, yt)
        recalibrate_batchnorm(m, [x[train[i : i + 128]] for i in range(0, 1024, 128)])
        _score(f"{name}, eval, recalibrated BN", m, xt, yt)


if __name__ == "__main__":
    main()
