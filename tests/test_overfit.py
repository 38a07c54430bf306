"""Every registered classifier memorises a small fixed set: 64 images of the shipped planted data
to training accuracy >= 0.9 within a bounded number of full-batch steps. A net that cannot
memorise 64 images has a bug (a dead branch, a broken init, a stride that erases the input),
not a data problem. Registry-driven: a new variant is checked the day it is registered.

CI cost: 16x16 GADF images of returns (1 channel), full-batch AdamW. Every model is built with
its published layout (``input_size=None``): at 16 px an EfficientNet's maps are 1x1 from stage 4
on, which makes B5-B7 (30-66 M parameters) affordable on a 2-core CPU while every registered
module and parameter is still trained end to end (strides have no parameters, so the layout
for small images has exactly the same ones). The size-aware layout that training picks for
small images (``create_model(..., input_size=16)``: 2x2 maps, 4-16x the compute) is
memorised by the small EfficientNets in a second test. B1-B7 and EfficientNetV2-S/M/L (>= ``BIG``
parameters) memorise ``N_BIG`` of the 64 images (half the compute per step).

A broken net still fails at these sizes (measured, 150 steps each): with the stem's output zeroed
(the input erased) compact stayed at 0.33 on 64 images and the nano at 0.25 on 32; B0 with every
parameter zero-initialised at 0.38 on 64. No constant output can reach 0.9 while the largest class
is under half the set. The working models measured (small_cnn, compact, compact_v2, nano, B0, B1 on
64; B5, V2-S on 32) were at 1.0 by the first check (10 steps). A detached backbone (only the head
trained, on fixed random features) memorises 64 images, and did 256 too (compact: 0.90 after 130
steps): no sample count this test can afford tells it apart, which is why test_models checks that
every parameter gets a gradient.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch  # noqa: E402

from effnet_trading.imaging import ImageSpec  # noqa: E402
from effnet_trading.model_zoo import create_model, list_models  # noqa: E402
from effnet_trading.model_zoo._blocks import recalibrate_batchnorm  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

N, SIZE, MAX_STEPS, TARGET = 64, 16, 150, 0.9
BIG, N_BIG = 5_000_000, 32  # parameters; sample count for models at least this big
SPEC = ImageSpec("gadf", window=16, size=(SIZE, SIZE), returns=True)


@pytest.fixture(scope="module")
def small_set(planted):
    from effnet_trading.model_zoo.dataset import ImageDataset

    ds = ImageDataset.build(planted.iloc[:2000], SPEC, 6)
    idx = np.linspace(0, len(ds) - 1, N).astype(int)  # spread over the span: all three classes
    x = torch.from_numpy(ds.float_images(idx))
    mean, std = x.mean((0, 2, 3), keepdim=True), x.std((0, 2, 3), keepdim=True)
    return (x - mean) / std, torch.from_numpy(ds.labels[idx])


def _memorise(name: str, x: torch.Tensor, y: torch.Tensor, size: int | None = None) -> tuple[float, int]:
    """Full-batch AdamW (lr 3e-3, no decay, no dropout/drop-path: regularisers are not under test)
    until training accuracy (eval mode, recalibrated BN) reaches TARGET; (accuracy, steps)."""
    from effnet_trading.model_zoo.train import _param_groups

    torch.manual_seed(0)
    kw = {"drop_rate": 0.0} | ({"drop_path_rate": 0.0} if name != "small_cnn" else {})
    model = create_model(name, num_classes=3, in_chans=1, input_size=size, **kw)
    opt = torch.optim.AdamW(_param_groups(model, 0.0, False), lr=3e-3)
    acc, step = 0.0, 0
    while step < MAX_STEPS:
        model.train()
        for _ in range(10):
            opt.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
        step += 10
        recalibrate_batchnorm(model, [x])
        with torch.no_grad():
            acc = float((model(x).argmax(1) == y).float().mean())
        if acc >= TARGET:
            break
    return acc, step


@pytest.mark.parametrize("name", list_models())
def test_every_registered_classifier_memorises_64_images(name, small_set):
    x, y = small_set
    with torch.device("meta"):
        n_params = sum(p.numel() for p in create_model(name, num_classes=3, in_chans=1).parameters())
    if n_params >= BIG:
        x, y = x[:: N // N_BIG], y[:: N // N_BIG]
    assert len(torch.unique(y)) == 3
    acc, steps = _memorise(name, x, y)
    assert acc >= TARGET, (
        f"{name} reached training accuracy {acc:.3f} < {TARGET} after {steps} full-batch steps on {N} images"
    )


@pytest.mark.parametrize("name", ["compact", "efficientnet_nano"])
def test_size_aware_layout_memorises_too(name, small_set):
    """The stride schedule training picks for 16 px images (2x2 last maps) memorises as well."""
    x, y = small_set
    acc, steps = _memorise(name, x, y, size=SIZE)
    assert acc >= TARGET, f"{name} (input_size={SIZE}) reached {acc:.3f} < {TARGET} after {steps} steps"
