"""Training throughput (images/s, forward + backward + AdamW step) per model and image size.

Ratios are against small_cnn at 32 px measured in the same process; the data path
(uint8 dataset -> float32 batches) is timed beside it to show it is not the bottleneck.

    OMP_NUM_THREADS=2 python benchmarks/bench_training.py --models small_cnn,compact,efficientnet_b0 --sizes 32,64
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import torch
from torch import nn

from effnet_trading.model_zoo import create_model, list_models


def train_rate(name: str, size: int, batch: int, steps: int, in_chans: int = 3) -> float:
    """Images per second of training steps on random inputs (after 2 warm-up steps)."""
    torch.manual_seed(0)
    model = create_model(name, num_classes=3, in_chans=in_chans).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.rand(batch, in_chans, size, size)
    y = torch.randint(0, 3, (batch,))
    loss_fn = nn.CrossEntropyLoss()
    for i in range(steps + 2):
        if i == 2:
            t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        opt.step()
    return batch * steps / (time.perf_counter() - t0)


def batch_rate(size: int, batch: int, n: int = 8192, in_chans: int = 3) -> float:
    """Images per second through ImageDataset.batches (uint8 gather -> float32 tensor), shuffled."""
    from effnet_trading.model_zoo.dataset import ImageDataset

    ds = ImageDataset.__new__(ImageDataset)
    ds.images = np.random.default_rng(0).integers(0, 256, (n, in_chans, size, size), dtype=np.uint8)
    ds.labels = np.zeros(n, np.int64)
    t0 = time.perf_counter()
    for _ in ds.batches(np.arange(n), batch, shuffle=True):
        pass
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="small_cnn,compact,efficientnet_b0")
    ap.add_argument("--sizes", default="32,64")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    known = set(list_models())
    print(
        f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, threads {a.threads}, batch {a.batch}"
    )
    ref = train_rate("small_cnn", 32, a.batch, a.steps)
    print("| model | size | train img/s | vs small_cnn@32 | data path img/s |")
    print("|---|---|---|---|---|")
    for name in a.models.split(","):
        if name not in known:
            print(f"| {name} | - | not registered | - | - |")
            continue
        for size in (int(s) for s in a.sizes.split(",")):
            r = ref if (name, size) == ("small_cnn", 32) else train_rate(name, size, a.batch, a.steps)
            print(f"| {name} | {size} | {r:,.0f} | {r / ref:.3f} | {batch_rate(size, a.batch):,.0f} |")


if __name__ == "__main__":
    main()
