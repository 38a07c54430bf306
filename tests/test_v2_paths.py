"""EfficientNetV2 through the paths B0 and compact take: train -> ONNX + card -> fp16 / INT8 variants ->
Predictor -> both backtest engines. compact_v2 carries V2's blocks (Fused-MBConv stages, MBConv + SE,
fixed-width head) at CPU size; V2-S/M/L are the same blocks in other counts (tests/test_models.py checks
their tables and parameter counts, tests/test_overfit.py that each trains)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import TRAINED_SPEC

from effnet_trading.imaging import render, valid_ends
from effnet_trading.model_zoo import Predictor, load_card

pytestmark = pytest.mark.usefixtures("one_torch_thread")
N_BARS = 300


@pytest.fixture(scope="module")
def v2_model(planted, tmp_path_factory):
    """compact_v2 with BatchNorm statistics of real images (untrained weights: plumbing, not skill; training
    is tested by tests/test_overfit.py), exported with fp16 and INT8 variants like any zoo model."""
    import torch

    from effnet_trading.model_zoo import create_model
    from effnet_trading.model_zoo._blocks import recalibrate_batchnorm
    from effnet_trading.model_zoo.export import export_onnx

    frame = planted.iloc[:N_BARS]
    images = render(TRAINED_SPEC, frame, valid_ends(TRAINED_SPEC, frame))
    torch.manual_seed(0)
    model = create_model("compact_v2", num_classes=3, in_chans=1, input_size=16, zero_init_last_bn=False)
    recalibrate_batchnorm(model, [(torch.from_numpy(images[:128]) - 0.5) / 0.25], stochastic=True)
    out = tmp_path_factory.mktemp("v2") / "compact_v2"
    export_onnx(
        model,
        out,
        spec=TRAINED_SPEC,
        architecture="compact_v2",
        sample_images=images[-64:],
        fp16=True,
        int8=True,
        calib_images=images[:128],
        holdout_images=images[-64:],
    )
    return out, images


def test_v2_exports_with_a_card_and_variants(v2_model):
    model_dir, images = v2_model
    card = load_card(model_dir)
    assert card.architecture == "compact_v2"
    assert card.metrics["export_max_abs_err"] < 1e-4 and set(card.variants) == {"fp16", "int8"}
    ref = Predictor(model_dir, "cpu").predict(images[-64:])
    assert ref.shape == (64, 3) and ref.std(0).max() > 1e-4  # outputs depend on the image
    fp16 = Predictor(model_dir, "cpu", variant="fp16").predict(images[-64:])
    int8 = Predictor(model_dir, "cpu", variant="int8").predict(images[-64:])
    assert np.abs(fp16 - ref).max() < 1e-2
    assert np.abs(int8 - ref).mean() < 0.05 and card.variants["int8"]["checked_on"] == "held-out images"


def test_v2_scores_the_same_in_both_engines(v2_model, planted):
    from effnet_trading.plugins.backtest import build_scorer, run_backtest
    from effnet_trading.strategies import Policy

    model_dir, _ = v2_model
    frame = planted.iloc[:N_BARS]
    outs = {
        e: run_backtest(frame, build_scorer([str(model_dir)], None), engine=e, policy=Policy(threshold=0.34))
        for e in ("backtrader", "vectorbt")
    }
    a, b = outs["backtrader"], outs["vectorbt"]
    assert a.probs.notna().sum().min() > N_BARS - 40
    pd.testing.assert_frame_equal(a.probs, b.probs, rtol=1e-6)
    assert a.summary["strategy"]["total_return"] == pytest.approx(b.summary["strategy"]["total_return"], abs=1e-9)
