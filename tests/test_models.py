"""Architectures: EfficientNet B0-B7 against torchvision's parameter counts, every registered model
builds/runs/exports, and the tables become the modules they describe."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from effnet_trading.errors import SpecError  # noqa: E402
from effnet_trading.imaging import ImageSpec  # noqa: E402
from effnet_trading.model_zoo import create_model, list_models, model_info  # noqa: E402
from effnet_trading.model_zoo._blocks import DropPath, MBConv, make_divisible  # noqa: E402
from effnet_trading.model_zoo.efficientnet import STAGES, VARIANTS, round_filters, round_repeats  # noqa: E402

# torchvision.models.efficientnet_b{0..7}(): sum(p.numel() for p in m.parameters()), 1000 classes, 3 channels
TORCHVISION_PARAMS = {
    "efficientnet_b0": 5_288_548,
    "efficientnet_b1": 7_794_184,
    "efficientnet_b2": 9_109_994,
    "efficientnet_b3": 12_233_232,
    "efficientnet_b4": 19_341_616,
    "efficientnet_b5": 30_389_784,
    "efficientnet_b6": 43_040_704,
    "efficientnet_b7": 66_347_960,
}
# torchvision.models.efficientnet_v2_{s,m,l}(), same count
TORCHVISION_V2_PARAMS = {
    "efficientnetv2_s": 21_458_488,
    "efficientnetv2_m": 54_139_356,
    "efficientnetv2_l": 118_515_272,
}
# paper resolutions (Tan & Le 2019)
RESOLUTION = {f"efficientnet_b{i}": r for i, r in enumerate((224, 240, 260, 300, 380, 456, 528, 600))}
RUN_FORWARD_BELOW = 5_000_000  # params; bigger models are only built on the meta device
EXPORT_SPEC = ImageSpec("gadf", window=16, size=(32, 32), fields=("open", "close"))  # 2 channels, 32 x 32
EXPORT_BELOW = 10_000_000  # params: registry models below this also export to ONNX in the test below


def _n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def _meta(name: str, **kw):
    with torch.device("meta"):
        return create_model(name, **kw)


def _test_size(name: str) -> int:
    return min(model_info(name).default_size, 64)


@pytest.mark.parametrize("name", sorted(TORCHVISION_PARAMS | TORCHVISION_V2_PARAMS))
def test_parameter_counts_equal_torchvision(name):
    assert _n_params(_meta(name, num_classes=1000, in_chans=3)) == (TORCHVISION_PARAMS | TORCHVISION_V2_PARAMS)[name]


@pytest.mark.parametrize("name", sorted(RESOLUTION))
def test_registry_default_size_is_paper_resolution(name):
    info = model_info(name)
    assert info.default_size == RESOLUTION[name] and info.family == "efficientnet"


def test_every_efficientnet_variant_is_registered():
    assert set(VARIANTS) <= set(list_models("*"))
    assert list_models("efficientnet_b?") == sorted(TORCHVISION_PARAMS)
    assert list_models("efficientnetv2_?") == sorted(TORCHVISION_V2_PARAMS)


@pytest.mark.parametrize("name", list_models())
@pytest.mark.parametrize("in_chans", [1, 3, 5])
def test_every_registered_model_builds_and_runs(name, in_chans):
    meta = _meta(name, num_classes=3, in_chans=in_chans)
    n = _n_params(meta)
    assert n > 0
    if n >= RUN_FORWARD_BELOW:  # big: check the shapes of the first and last layers only
        first = next(p for p in meta.parameters() if p.ndim == 4)
        assert first.shape[1] == in_chans and meta(torch.empty(2, in_chans, 64, 64, device="meta")).shape == (2, 3)
        return
    torch.manual_seed(0)
    model = create_model(name, num_classes=3, in_chans=in_chans).eval()
    s = _test_size(name)
    x = torch.rand(2, in_chans, s, s)
    with torch.no_grad():
        out, feats = model(x), model.forward_features(x)
    assert out.shape == (2, 3) and torch.isfinite(out).all()
    assert feats.shape == (2, model.num_features)


def test_stage_table_becomes_the_b0_modules():
    """B0 as in the paper's Table 1: repeats 1,2,2,3,3,4,1; channels 16..320; kernels 3/5; head 1280."""
    m = _meta("efficientnet_b0", num_classes=1000)
    assert [len(s) for s in m.stages] == [1, 2, 2, 3, 3, 4, 1]
    assert [s[-1].out_channels for s in m.stages] == [16, 24, 40, 80, 112, 192, 320]
    first = [s[0] for s in m.stages]
    dw = [blk.block[-3][0] for blk in first]  # depthwise conv is the 3rd-last module (before SE, project)
    assert [c.kernel_size[0] for c in dw] == [3, 3, 5, 3, 5, 5, 3]
    assert [c.stride[0] for c in dw] == [1, 2, 2, 2, 1, 2, 1]
    assert all(c.groups == c.in_channels for c in dw)
    assert len(first[0].block) == 3 and len(first[1].block) == 4  # expand ratio 1 skips the expand conv
    se = first[1].block[2]
    assert se.fc1.out_channels == 16 // 4 and se.fc1.in_channels == 16 * 6  # SE squeezes the block *input* / 4
    assert m.num_features == 1280 and m.features[0][0].stride == (2, 2)
    assert isinstance(m.features[0][2], torch.nn.SiLU)


def test_v2_stage_table_becomes_the_v2_s_modules():
    """V2-S as in Tan & Le 2021, Table 4: Fused-MBConv 1/4/4 (no SE) then MBConv 4/6/6 with SE;
    repeats 2,4,4,6,9,15; channels 24..256; stem 24; head 1280."""
    from effnet_trading.model_zoo._blocks import FusedMBConv, SqueezeExcite

    m = _meta("efficientnetv2_s", num_classes=1000)
    assert [len(s) for s in m.stages] == [2, 4, 4, 6, 9, 15]
    assert [s[-1].out_channels for s in m.stages] == [24, 48, 64, 128, 160, 256]
    kinds = [type(s[0]) for s in m.stages]
    assert kinds == [FusedMBConv] * 3 + [MBConv] * 3
    first = [s[0] for s in m.stages]
    assert len(first[0].block) == 1 and len(first[1].block) == 2  # expand 1: one 3x3 conv; else 3x3 expand + 1x1
    assert first[1].block[0][0].kernel_size == (3, 3) and first[1].block[0][0].groups == 1  # full conv, not depthwise
    assert first[1].block[0][0].out_channels == 24 * 4 and first[1].block[0][0].stride == (2, 2)
    assert not any(isinstance(x, SqueezeExcite) for s in m.stages[:3] for x in s.modules())
    se = first[3].block[2]
    assert isinstance(se, SqueezeExcite) and se.fc1.out_channels == 64 // 4 and se.fc1.in_channels == 64 * 4
    assert m.features[0][0].out_channels == 24 and m.num_features == 1280
    assert m.features[0][1].eps == 1e-3 and m.classifier[0].p == 0.2
    assert m.strides == (2, 1, 2, 2, 2, 1, 2)


def test_v2_residual_blocks_start_as_identity():
    m = create_model("compact_v2", num_classes=3, in_chans=1).eval()
    res = [b for stage in m.stages[:3] for b in stage if b.use_res]
    assert res and all(float(b.block[-1][1].weight.detach().abs().max()) == 0.0 for b in res)
    x = torch.randn(2, res[0].out_channels, 8, 8)
    with torch.no_grad():
        assert torch.equal(res[0](x), x)


def test_compact_variant_is_small_and_keeps_resolution():
    m = create_model("compact", num_classes=3, in_chans=1)
    assert 100_000 < _n_params(m) < 400_000
    assert m.features[0][0].stride == (1, 1)
    x = m.features(torch.rand(1, 1, 32, 32))
    assert x.shape[-2:] == (2, 2)  # 32 px / 16 (stem stride 1, four stride-2 stages)


def test_channel_and_depth_rounding_match_published_rules():
    # torchvision _make_divisible / efficientnet-pytorch round_filters
    assert [round_filters(c, 1.1) for c in (32, 16, 24, 40, 80, 112, 192, 320)] == [32, 16, 24, 48, 88, 120, 208, 352]
    assert [round_filters(c, 2.0) for c in (32, 320)] == [64, 640]
    assert make_divisible(11.2) == 16  # never more than 10% below: 8 < 0.9 * 11.2
    assert [round_repeats(r, 3.1) for r in (1, 2, 3, 4)] == [4, 7, 10, 13]
    assert sum(round_repeats(s.repeats, 2.0) for s in STAGES) == 32


def test_stochastic_depth_rises_linearly_to_rate():
    m = _meta("efficientnet_b0", drop_path_rate=0.2)
    probs = [blk.stochastic_depth.p for stage in m.stages for blk in stage]
    assert probs[0] == 0.0 and probs == sorted(probs)
    assert probs[-1] == pytest.approx(0.2 * 15 / 16)
    assert np.allclose(np.diff(probs), 0.2 / 16)


def test_drop_path_drops_whole_samples_in_training_only():
    dp = DropPath(0.5)
    x = torch.ones(2000, 4, 3, 3)
    torch.manual_seed(0)
    y = dp.train()(x)
    per_sample = y.flatten(1)
    assert set(torch.unique(per_sample).tolist()) == {0.0, 2.0}  # kept samples are rescaled by 1 / (1 - p)
    assert (per_sample.min(1).values == per_sample.max(1).values).all()
    assert abs(float(y.mean()) - 1.0) < 0.1
    assert torch.equal(dp.eval()(x), x)


def test_mbconv_residual_only_when_shapes_allow():
    assert MBConv(16, 16, 6, 3, 1, 0.25, 0.0).use_res
    assert not MBConv(16, 24, 6, 3, 1, 0.25, 0.0).use_res
    assert not MBConv(16, 16, 6, 3, 2, 0.25, 0.0).use_res


def test_dropout_and_bn_follow_the_variant_table():
    b0, b7 = _meta("efficientnet_b0"), _meta("efficientnet_b7")
    assert b0.classifier[0].p == 0.2 and b7.classifier[0].p == 0.5
    assert b0.features[0][1].eps == 1e-5 and b7.features[0][1].eps == 1e-3
    assert _meta("efficientnet_b0", drop_rate=0.0).classifier[0].p == 0.0


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_every_variant_keeps_batchnorm_momentum_0_1(name):
    """TensorFlow's 0.01 (torchvision's for B5-B7) left B5's running statistics so far behind its weights
    after a short training run that eval mode gave one constant prediction (docs/training.md)."""
    bns = [m for m in _meta(name).modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and {m.momentum for m in bns} == {0.1}


@pytest.mark.slow
def test_b5_predicts_from_its_input_in_eval_mode_after_a_short_training():
    """50 steps of B5 from scratch on a learnable toy task: in eval mode (running statistics) the predictions
    must still depend on the input. With momentum 0.01 they were one constant (std ~1e-7) after 50 steps,
    as on the literature window's real data; with 0.1 they spread (std ~0.2)."""
    torch.manual_seed(0)
    model = create_model("efficientnet_b5", num_classes=3, in_chans=1, input_size=16)
    opt = torch.optim.AdamW(model.parameters(), 3e-3)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(256, 1, 16, 16, generator=g)
    x[:, :, :8] += torch.randn(256, 1, 1, 1, generator=g) * 2  # the label is in the top half's level
    level = x[:, 0, :8].mean((1, 2))
    y = (level > 0.3).long() + (level > -0.3).long()
    model.train()
    for _ in range(50):
        b = torch.randint(0, 192, (16,), generator=g)
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x[b]), y[b]).backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        proba = torch.softmax(model(x[192:]), 1)
    assert proba.std(0).max() > 1e-2, "eval-mode predictions are one constant: BatchNorm running statistics lag"
    assert len(proba.argmax(1).unique()) > 1


def test_unknown_model_names_the_registered_ones():
    with pytest.raises(SpecError, match="unknown model 'efficientnet_b9'.*efficientnet_b0"):
        create_model("efficientnet_b9")


@pytest.mark.parametrize("name", list_models())
def test_every_registered_model_trains_and_exports(name, tmp_path):
    """Registry-driven: every model in ``list_models()`` runs forward and backward on a tiny CPU
    batch (2 x 2 x 32 x 32) and, below EXPORT_BELOW parameters, exports to ONNX through the project's
    exporter, which checks ONNX against torch to 1e-4 (then Predictor's output is checked again here)."""
    from effnet_trading.model_zoo.export import export_onnx
    from effnet_trading.model_zoo.runtime import Predictor

    torch.manual_seed(0)
    model = create_model(name, num_classes=3, in_chans=EXPORT_SPEC.channels)
    model.train()
    x = torch.rand(2, EXPORT_SPEC.channels, *EXPORT_SPEC.size)
    loss = torch.nn.functional.cross_entropy(model(x), torch.tensor([0, 2]))
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads), "a parameter got no/inf gradient"
    assert any(g.abs().sum() > 0 for g in grads)
    if _n_params(model) >= EXPORT_BELOW:
        return  # B3-B7: tracing the export alone takes 10-30 s each on 2 cores; they are B0's blocks in other counts
    model.zero_grad()
    with torch.no_grad():
        for _ in range(2):  # training-mode steps so BN running stats are not the identity
            model(torch.rand(4, EXPORT_SPEC.channels, *EXPORT_SPEC.size))
    model.eval()
    card = export_onnx(model, tmp_path / name, spec=EXPORT_SPEC, architecture=name)  # verifies ONNX == torch to 1e-4
    assert card.input_shape == (EXPORT_SPEC.channels, *EXPORT_SPEC.size)
    xs = np.random.default_rng(1).random((2, EXPORT_SPEC.channels, *EXPORT_SPEC.size), dtype=np.float32)
    with torch.no_grad():
        ref = torch.softmax(model((torch.from_numpy(xs) - 0.5) / 0.25), 1).numpy()
    assert np.abs(Predictor(tmp_path / name, "cpu").predict(xs) - ref).max() < 1e-4


@pytest.mark.parametrize("name", list_models())
def test_channels_last_layout_computes_the_same(name):
    """Training runs in the channels-last (NHWC) layout (``TrainConfig.channels_last``, on CPU too): every
    registered model gives the same logits and gradients in it as in the default (NCHW) layout."""
    import copy

    torch.manual_seed(0)
    nchw = create_model(name, num_classes=3, in_chans=3, input_size=32).train()
    nhwc = copy.deepcopy(nchw).to(memory_format=torch.channels_last)
    assert nhwc.state_dict().keys() == nchw.state_dict().keys()
    x = torch.rand(4, 3, 32, 32)
    y = torch.tensor([0, 1, 2, 0])
    out = {}
    for tag, net, xin in (("nchw", nchw, x), ("nhwc", nhwc, x.contiguous(memory_format=torch.channels_last))):
        torch.manual_seed(1)  # the same dropout / drop-path draws in both layouts
        logits = net(xin)
        torch.nn.functional.cross_entropy(logits, y).backward()
        out[tag] = (logits.detach(), [p.grad for p in net.parameters() if p.requires_grad])
    assert torch.allclose(out["nhwc"][0], out["nchw"][0], rtol=1e-4, atol=1e-5)
    for g_nhwc, g_nchw in zip(out["nhwc"][1], out["nchw"][1], strict=True):
        assert torch.allclose(g_nhwc, g_nchw, rtol=1e-3, atol=1e-5)


def test_export_size_rule_covers_the_small_models():
    """The export above runs for B0-B2 and every smaller model (a size rule, not a hand-kept list)."""
    assert TORCHVISION_PARAMS["efficientnet_b2"] < EXPORT_BELOW < TORCHVISION_PARAMS["efficientnet_b3"]


def test_initial_loss_is_near_chance_for_three_classes():
    """A fresh 3-class network must start near ln(3), not with saturated logits."""
    torch.manual_seed(0)
    m = create_model("efficientnet_b0", num_classes=3, in_chans=3).train()
    x = torch.randn(32, 3, 32, 32)
    loss = torch.nn.functional.cross_entropy(m(x), torch.randint(0, 3, (32,)))
    assert loss.item() < 1.5 * np.log(3), loss.item()


# -- input-size-aware stride schedule and residual initialisation --------------------------------------
@pytest.mark.parametrize("name", sorted(TORCHVISION_PARAMS | TORCHVISION_V2_PARAMS))
@pytest.mark.parametrize("size", [16, 32, 64])
def test_size_aware_schedule_keeps_the_parameter_count(name, size):
    """Strides have no parameters: the schedule picked for small images changes no published count."""
    n = _n_params(_meta(name, num_classes=1000, in_chans=3, input_size=size))
    assert n == (TORCHVISION_PARAMS | TORCHVISION_V2_PARAMS)[name]


@pytest.mark.parametrize(
    "name, size, strides", [("efficientnetv2_s", 32, (1, 1, 2, 2, 2, 1, 2)), ("compact_v2", 16, (1, 1, 1, 2, 2, 1, 2))]
)
def test_v2_size_aware_schedule_keeps_a_2px_last_map(name, size, strides):
    m = create_model(name, num_classes=3, in_chans=1, input_size=size).eval()
    assert m.strides == strides
    with torch.no_grad():
        assert m.features(torch.rand(1, 1, size, size)).shape[-1] == 2
    assert "dropped" in model_info(name).input_note(size) or name == "compact_v2"


@pytest.mark.parametrize(
    "size, strides, last",
    [
        (None, (2, 1, 2, 2, 2, 1, 2, 1), 7),  # published: 224 px -> 7x7
        (224, (2, 1, 2, 2, 2, 1, 2, 1), 7),
        (64, (2, 1, 2, 2, 2, 1, 2, 1), 2),
        (32, (1, 1, 2, 2, 2, 1, 2, 1), 2),  # stem stride dropped: 2x2 instead of 1x1
        (16, (1, 1, 1, 2, 2, 1, 2, 1), 2),  # stem and stage-2 strides dropped (CIFAR-style)
        (8, (1, 1, 1, 1, 2, 1, 2, 1), 2),
    ],
)
def test_stride_schedule_drops_the_earliest_strides_for_small_images(size, strides, last):
    from effnet_trading.model_zoo.efficientnet import MIN_FEATURE_PX

    m = create_model("efficientnet_b0", num_classes=3, in_chans=1, input_size=size)
    assert m.strides == strides
    s = size or 224
    dw = [blk.block[-3][0].stride[0] for blk in (stage[0] for stage in m.stages)]
    assert (m.features[0][0].stride[0], *dw) == strides  # the modules carry the schedule they report
    with torch.no_grad():
        assert m.features(torch.rand(1, 1, s, s)).shape[-1] == last
    assert last >= MIN_FEATURE_PX or size is None


def test_registry_states_the_schedule_per_image_size():
    note = model_info("efficientnet_b0").input_note(32)
    assert "stem 1" in note and "total 16" in note and "2x2" in note and "dropped" in note
    assert "published" in model_info("efficientnet_b0").input_note(224)
    assert "published" in model_info("compact").input_note(32)  # compact was designed for 32-64 px
    assert "total 8" in model_info("compact").input_note(16)
    assert model_info("efficientnet_b0").size_aware and not model_info("small_cnn").size_aware
    assert "same layout" in model_info("small_cnn").input_note(32)
    assert isinstance(create_model("small_cnn", input_size=32), torch.nn.Module)  # size-agnostic models ignore it


def test_residual_blocks_start_as_identity():
    """Zero-initialised gamma of each residual block's last BN: the branch adds nothing at init."""
    m = create_model("efficientnet_nano", num_classes=3, in_chans=3).eval()
    blocks = [b for stage in m.stages for b in stage]
    res = [b for b in blocks if b.use_res]
    assert res and all(float(b.block[-1][1].weight.detach().abs().max()) == 0.0 for b in res)
    assert all(float(b.block[-1][1].weight.detach().min()) == 1.0 for b in blocks if not b.use_res)
    x = torch.randn(2, res[0].out_channels, 8, 8)
    with torch.no_grad():
        assert torch.equal(res[0](x), x)
    plain = create_model("efficientnet_nano", num_classes=3, in_chans=3, zero_init_last_bn=False)
    assert all(float(b.block[-1][1].weight.detach().min()) == 1.0 for stage in plain.stages for b in stage)


@pytest.mark.parametrize("kernel, stride", [(3, 1), (5, 1), (5, 2), (3, 2), (7, 1)])
def test_small_map_conv_equals_conv2d(kernel, stride):
    """The cropped-kernel conv (taps that only meet padding left out) gives the same outputs and
    gradients as nn.Conv2d on maps smaller than, equal to and larger than the kernel."""
    from torch import nn

    from effnet_trading.model_zoo._blocks import SmallMapConv2d

    torch.manual_seed(0)
    for h, w in [(1, 1), (2, 2), (1, 3), (3, 5), (4, 4), (9, 9)]:
        for groups in (1, 8):
            ref = nn.Conv2d(8, 8, kernel, stride, kernel // 2, groups=groups, bias=False).double()
            new = SmallMapConv2d(8, 8, kernel, stride, kernel // 2, groups=groups, bias=False).double()
            new.load_state_dict(ref.state_dict())
            x = torch.randn(3, 8, h, w, dtype=torch.double, requires_grad=True)
            a, b = ref(x), new(x)
            assert a.shape == b.shape
            torch.testing.assert_close(b, a, rtol=0, atol=1e-12)
            ga = torch.autograd.grad(a.square().sum(), [x, ref.weight])
            gb = torch.autograd.grad(b.square().sum(), [x, new.weight])
            for u, v in zip(ga, gb):
                torch.testing.assert_close(v, u, rtol=0, atol=1e-12)
