"""Training step time with and without ``SmallMapConv2d`` (kernel taps that only meet padding left out),
in one process: fwd+bwd of a batch, median of interleaved repeats, per model and image size.

    python benchmarks/bench_smallmap.py [--threads 1] [--repeats 5]

The reference is the same model with every ``SmallMapConv2d`` running ``nn.Conv2d.forward``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from effnet_trading.model_zoo import create_model
from effnet_trading.model_zoo._blocks import SmallMapConv2d

CASES = [  # (model, input px, input_size for the layout (None = published strides), batch)
    ("efficientnet_b0", 16, None, 256),
    ("efficientnet_b0", 32, 32, 64),
    ("efficientnet_b0", 64, 64, 64),
    ("compact", 32, 32, 64),
    ("efficientnet_b3", 32, 32, 64),
]


def _step(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    t = time.perf_counter()
    nn.functional.cross_entropy(model(x), y).backward()
    return time.perf_counter() - t


def _compare(model: nn.Module, x: torch.Tensor, y: torch.Tensor, repeats: int) -> tuple[float, float]:
    """Median step seconds (plain conv, small-map conv), the two interleaved so load drifts hit both."""
    saved = SmallMapConv2d.forward
    _step(model, x, y)  # warm-up
    old, new = [], []
    try:
        for _ in range(repeats):
            SmallMapConv2d.forward = nn.Conv2d.forward  # type: ignore[method-assign]
            old.append(_step(model, x, y))
            SmallMapConv2d.forward = saved  # type: ignore[method-assign]
            new.append(_step(model, x, y))
    finally:
        SmallMapConv2d.forward = saved  # type: ignore[method-assign]
    return statistics.median(old), statistics.median(new)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    print("| model | px | batch | plain conv s/step | small-map conv s/step | speed-up |\n|---|---|---|---|---|---|")
    for name, px, layout, batch in CASES:
        torch.manual_seed(0)
        model = create_model(name, num_classes=3, in_chans=3, input_size=layout)
        x, y = torch.randn(batch, 3, px, px), torch.randint(0, 3, (batch,))
        old, new = _compare(model, x, y, a.repeats)
        print(f"| {name} | {px} | {batch} | {old:.3f} | {new:.3f} | {old / new:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
