"""Training throughput (images/s, forward + backward + AdamW step) per model and image size.

Ratios are against small_cnn at 32 px measured in the same process; the data path
(uint8 dataset -> float32 batches) is timed beside it to show it is not the bottleneck.

    OMP_NUM_THREADS=2 python benchmarks/bench_training.py --models small_cnn,compact,efficientnet_b0 --sizes 32,64

``--memory-format`` instead times each model in the contiguous (NCHW) and channels-last (NHWC)
layouts, interleaved (contiguous, channels-last, contiguous, ... ``--repeats`` times each; the median
rate of each), training steps and inference, and prints channels-last's speed-up over contiguous:

    python benchmarks/bench_training.py --memory-format --threads 1 --models small_cnn,compact,efficientnet_b0 --sizes 32,64

``--memory-format --fit DATA.csv`` times whole ``train_model`` runs (``TrainConfig.channels_last`` on and
off, after one untimed run, alternating which goes first): candles of the last ``--fit-bars`` bars, one
fold, ``--steps`` epochs.
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import torch
from torch import nn

from effnet_trading.model_zoo import create_model, list_models


def _model_and_batch(
    name: str, size: int, batch: int, in_chans: int, channels_last: bool, size_aware: bool
) -> tuple[nn.Module, torch.Tensor]:
    """A freshly seeded model and a random batch, both in the channels-last layout when asked."""
    torch.manual_seed(0)
    kw = {"input_size": size} if size_aware else {}
    model = create_model(name, num_classes=3, in_chans=in_chans, **kw)
    x = torch.rand(batch, in_chans, size, size)
    if channels_last:
        model, x = model.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    return model, x


def train_rate(
    name: str,
    size: int,
    batch: int,
    steps: int,
    in_chans: int = 3,
    channels_last: bool = False,
    size_aware: bool = False,
) -> float:
    """Images per second of training steps on random inputs (after 2 warm-up steps).

    size_aware: build the model for ``size`` (EfficientNets pick their strides from it, as training does)."""
    model, x = _model_and_batch(name, size, batch, in_chans, channels_last, size_aware)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    y = torch.randint(0, 3, (batch,))
    loss_fn = nn.CrossEntropyLoss()
    for i in range(steps + 2):
        if i == 2:
            t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        opt.step()
    return batch * steps / (time.perf_counter() - t0)


def predict_rate(name: str, size: int, batch: int, steps: int, in_chans: int, channels_last: bool) -> float:
    """Images per second of inference (eval mode, no grad) on random inputs (after 2 warm-up batches)."""
    model, x = _model_and_batch(name, size, batch, in_chans, channels_last, size_aware=True)
    model.eval()
    with torch.no_grad():
        for i in range(steps + 2):
            if i == 2:
                t0 = time.perf_counter()
            model(x)
    return batch * steps / (time.perf_counter() - t0)


def memory_format_table(
    models: list[str], sizes: list[int], chans: list[int], batch: int, steps: int, repeats: int
) -> None:
    """Channels-last vs contiguous, interleaved in this process: median rates and the speed-up."""
    print("| model | size | channels | train img/s NCHW | train img/s NHWC | train speed-up | predict speed-up |")
    print("|---|---|---|---|---|---|---|")
    for name in models:
        for size in sizes:
            for c in chans:
                rates: dict[tuple[str, bool], list[float]] = {}
                for _ in range(repeats):
                    for cl in (False, True):
                        rates.setdefault(("train", cl), []).append(
                            train_rate(name, size, batch, steps, c, channels_last=cl, size_aware=True)
                        )
                        rates.setdefault(("predict", cl), []).append(predict_rate(name, size, batch * 2, steps, c, cl))
                med = {k: float(np.median(v)) for k, v in rates.items()}
                print(
                    f"| {name} | {size} | {c} | {med['train', False]:,.0f} | {med['train', True]:,.0f} | "
                    f"{med['train', True] / med['train', False]:.2f}x | "
                    f"{med['predict', True] / med['predict', False]:.2f}x |",
                    flush=True,
                )


def fit_table(data: str, models: list[str], size: int, bars: int, epochs: int, repeats: int, threads: int) -> None:
    """Wall seconds of ``train_model`` (one fold, candles) with channels_last off and on, interleaved."""
    import warnings

    from effnet_trading.imaging import ImageSpec, load_ohlcv
    from effnet_trading.model_zoo.metrics import CollapseWarning
    from effnet_trading.model_zoo.train import TrainConfig, train_model

    warnings.simplefilter("ignore", CollapseWarning)  # one epoch often collapses; only the time is measured here
    frame = load_ohlcv(data).iloc[-bars:]
    print(
        f"train_model on the last {len(frame):,} bars of {data}: candles {size} px (window 32), 1 fold, {epochs} epochs"
    )
    print("| model | seconds NCHW | seconds NHWC | speed-up |")
    print("|---|---|---|---|")
    for name in models:

        def run(cl: bool) -> float:
            cfg = TrainConfig(
                model=name,
                spec=ImageSpec("candles", window=32, size=(size, size)),
                epochs=epochs,
                patience=epochs,
                channels_last=cl,
                num_threads=threads,
                progress=False,
            )
            t0 = time.perf_counter()
            train_model(frame, cfg)
            return time.perf_counter() - t0

        run(False)  # untimed: the process's first run pays one-off costs
        secs: dict[bool, list[float]] = {False: [], True: []}
        for r in range(repeats):
            for cl in (False, True) if r % 2 == 0 else (True, False):  # alternate which layout goes first
                secs[cl].append(run(cl))
        a, b = float(np.median(secs[False])), float(np.median(secs[True]))
        print(f"| {name} | {a:.1f} | {b:.1f} | {a / b:.2f}x |", flush=True)


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
    ap.add_argument("--memory-format", action="store_true", help="channels-last vs contiguous, interleaved")
    ap.add_argument("--channels", default="3", help="input channels (--memory-format), e.g. 1,3")
    ap.add_argument("--repeats", type=int, default=3, help="interleaved repeats per layout (--memory-format)")
    ap.add_argument(
        "--fit",
        default=None,
        metavar="DATA.csv",
        help="with --memory-format: time whole train_model runs (first --sizes value; --steps epochs; "
        "--batch and --channels do not apply)",
    )
    ap.add_argument("--fit-bars", type=int, default=4000)
    a = ap.parse_args()
    if a.fit and not a.memory_format:
        ap.error("--fit times the two memory layouts: give it with --memory-format")
    torch.set_num_threads(a.threads)
    if a.memory_format and a.fit:
        sizes = [int(s) for s in a.sizes.split(",")]
        fit_table(a.fit, a.models.split(","), sizes[0], a.fit_bars, a.steps, a.repeats, a.threads)
        return
    print(
        f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, threads {a.threads}, batch {a.batch}"
    )
    if a.memory_format:
        memory_format_table(
            a.models.split(","),
            [int(s) for s in a.sizes.split(",")],
            [int(c) for c in a.channels.split(",")],
            a.batch,
            a.steps,
            a.repeats,
        )
        return
    known = set(list_models())
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
