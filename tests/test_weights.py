"""Pretrained-weight mapping: torchvision and efficientnet-pytorch (lukemelas) state dicts land on the right tensors."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F  # noqa: E402

from effnet_trading.errors import ModelCardError, SpecError  # noqa: E402
from effnet_trading.model_zoo import create_model  # noqa: E402
from effnet_trading.model_zoo.heads import MultiTaskModel  # noqa: E402
from effnet_trading.model_zoo.weights import detect_naming, load_pretrained  # noqa: E402

# efficientnet-pytorch's blocks_args for B0 (utils.py: 'r1_k3_s11_e1_i32_o16_se0.25', ...):
# (repeats, kernel, expand, in, out)
LUKE_B0_ARGS = [
    (1, 3, 1, 32, 16),
    (2, 3, 6, 16, 24),
    (2, 5, 6, 24, 40),
    (3, 3, 6, 40, 80),
    (3, 5, 6, 80, 112),
    (4, 5, 6, 112, 192),
    (1, 3, 6, 192, 320),
]
LUKE_PARAMS = {"efficientnet-b0": (1.0, 1.0), "efficientnet-b4": (1.4, 1.8)}  # (width, depth)
BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def _luke_round_filters(f: int, w: float) -> int:
    """efficientnet_pytorch.utils.round_filters (divisor 8)."""
    f *= w
    new = max(8, int(f + 4) // 8 * 8)
    return int(new + 8) if new < 0.9 * f else int(new)


def _luke_state(variant: str, num_classes: int = 1000, device: str = "cpu") -> dict[str, torch.Tensor]:
    """A state dict with efficientnet-pytorch's names and shapes, written from its own rules (random values)."""
    w, d = LUKE_PARAMS[variant]
    g = torch.Generator().manual_seed(0)

    def t(*shape):
        if device == "meta":
            return torch.empty(*shape, device="meta")
        return torch.randn(*shape, generator=g)

    def bn(prefix, c):
        return {f"{prefix}.{k}": (torch.tensor(7) if k == "num_batches_tracked" else t(c)) for k in BN}

    sd = {"_conv_stem.weight": t(_luke_round_filters(32, w), 3, 3, 3)} | bn("_bn0", _luke_round_filters(32, w))
    i = 0
    for reps, k, e, cin, cout in LUKE_B0_ARGS:
        cin, cout = _luke_round_filters(cin, w), _luke_round_filters(cout, w)
        for r in range(int(math.ceil(d * reps))):
            inp = cin if r == 0 else cout
            oup = inp * e
            p = f"_blocks.{i}"
            if e != 1:
                sd |= {f"{p}._expand_conv.weight": t(oup, inp, 1, 1)} | bn(f"{p}._bn0", oup)
            sq = max(1, int(inp * 0.25))
            sd |= {f"{p}._depthwise_conv.weight": t(oup, 1, k, k)} | bn(f"{p}._bn1", oup)
            sd |= {
                f"{p}._se_reduce.weight": t(sq, oup, 1, 1),
                f"{p}._se_reduce.bias": t(sq),
                f"{p}._se_expand.weight": t(oup, sq, 1, 1),
                f"{p}._se_expand.bias": t(oup),
            }
            sd |= {f"{p}._project_conv.weight": t(cout, oup, 1, 1)} | bn(f"{p}._bn2", cout)
            i += 1
    head = _luke_round_filters(1280, w)
    sd |= {"_conv_head.weight": t(head, _luke_round_filters(320, w), 1, 1)} | bn("_bn1", head)
    sd |= {"_fc.weight": t(num_classes, head), "_fc.bias": t(num_classes)}
    return sd


def test_torchvision_naming_round_trips_through_a_file(tmp_path):
    torch.manual_seed(0)
    src = create_model("efficientnet_b0", num_classes=3).eval()
    path = tmp_path / "b0.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in src.state_dict().items()}}, path)  # DataParallel + wrapper
    torch.manual_seed(1)
    dst = create_model("efficientnet_b0", num_classes=3).eval()
    report = load_pretrained(dst, path)
    assert report.naming == "torchvision" and not report.missing and not report.unexpected and not report.skipped
    for k, v in src.state_dict().items():
        assert torch.equal(dst.state_dict()[k], v), k
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(dst(x), src(x))


def test_efficientnet_pytorch_naming_lands_on_the_right_tensors():
    sd = _luke_state("efficientnet-b0")
    model = create_model("efficientnet_b0", num_classes=1000)
    report = load_pretrained(model, sd)
    assert report.naming == "efficientnet_pytorch" and not report.missing and not report.unexpected
    assert len(report.loaded) == len(sd)
    f = model.features
    assert torch.equal(f[0][0].weight, sd["_conv_stem.weight"])
    assert torch.equal(f[0][1].running_var, sd["_bn0.running_var"])
    assert torch.equal(f[1][0].block[0][0].weight, sd["_blocks.0._depthwise_conv.weight"])  # no expand conv
    assert torch.equal(f[1][0].block[1].fc2.bias, sd["_blocks.0._se_expand.bias"])
    # flat block 3 = stage 3 (features[3]), second block
    assert torch.equal(f[3][1].block[0][0].weight, sd["_blocks.4._expand_conv.weight"])
    assert torch.equal(f[3][0].block[1][1].running_mean, sd["_blocks.3._bn1.running_mean"])
    assert torch.equal(f[3][0].block[2].fc1.weight, sd["_blocks.3._se_reduce.weight"])
    assert torch.equal(f[3][0].block[3][1].bias, sd["_blocks.3._bn2.bias"])
    assert torch.equal(f[7][0].block[3][0].weight, sd["_blocks.15._project_conv.weight"])
    assert torch.equal(f[8][0].weight, sd["_conv_head.weight"])
    assert torch.equal(f[8][1].weight, sd["_bn1.weight"])
    assert torch.equal(model.classifier[1].weight, sd["_fc.weight"])


def test_efficientnet_pytorch_b4_maps_every_key_on_meta():
    """A bigger variant (32 blocks, width 1.4): names and shapes only, on the meta device."""
    sd = _luke_state("efficientnet-b4", device="meta")
    with torch.device("meta"):
        model = create_model("efficientnet_b4", num_classes=1000)
    report = load_pretrained(model, sd)
    assert len(report.loaded) == len(sd) and not report.missing


@pytest.mark.parametrize("in_chans", [1, 2, 5])
def test_first_conv_is_adapted_to_other_channel_counts(in_chans):
    sd = _luke_state("efficientnet-b0")
    model = create_model("efficientnet_b0", num_classes=1000, in_chans=in_chans)
    report = load_pretrained(model, sd)
    assert report.adapted == ["features.0.0.weight"]
    rgb = sd["_conv_stem.weight"]
    w = model.features[0][0].weight
    assert w.shape == (rgb.shape[0], in_chans, 3, 3)
    # a grey image repeated over the channels gives the response of the same grey image in RGB
    grey = torch.rand(1, 1, 16, 16)
    ours = F.conv2d(grey.repeat(1, in_chans, 1, 1), w, padding=1)
    ref = F.conv2d(grey.repeat(1, 3, 1, 1), rgb, padding=1)
    assert torch.allclose(ours, ref, atol=1e-5)


def test_classifier_is_dropped_when_classes_differ():
    sd = _luke_state("efficientnet-b0", num_classes=1000)
    torch.manual_seed(0)
    model = create_model("efficientnet_b0", num_classes=3)
    before = model.classifier[1].weight.clone()
    report = load_pretrained(model, sd)
    assert sorted(report.skipped) == ["classifier.1.bias", "classifier.1.weight"]
    assert torch.equal(model.classifier[1].weight, before)
    assert torch.equal(model.features[8][0].weight, sd["_conv_head.weight"])


def test_loads_into_a_multitask_backbone():
    src = create_model("efficientnet_b0", num_classes=1000).state_dict()
    mt = MultiTaskModel("efficientnet_b0", in_chans=1)
    report = load_pretrained(mt, src)
    assert report.adapted and not report.missing
    assert torch.equal(mt.backbone.features[5][2].block[2].fc1.weight, src["features.5.2.block.2.fc1.weight"])


def test_missing_backbone_tensor_is_an_error_naming_it():
    sd = _luke_state("efficientnet-b0")
    del sd["_blocks.5._depthwise_conv.weight"]
    with pytest.raises(
        SpecError, match=r"1 backbone tensors missing.*features\.4\.0\.block\.1\.0\.weight.*strict_backbone=False"
    ):
        load_pretrained(create_model("efficientnet_b0"), sd)


def test_unknown_key_is_an_error():
    sd = create_model("efficientnet_b0").state_dict()
    sd["features.0.0.extra"] = torch.zeros(1)
    with pytest.raises(SpecError, match=r"map to no tensor.*features\.0\.0\.extra"):
        load_pretrained(create_model("efficientnet_b0"), sd)


def test_wrong_variant_is_an_error_and_non_strict_loads_what_fits():
    sd = _luke_state("efficientnet-b0")
    model = create_model("compact")
    with pytest.raises(SpecError, match="shape mismatches.*Check the variant"):
        load_pretrained(model, sd)
    report = load_pretrained(model, sd, strict_backbone=False)
    assert report.skipped and report.unexpected  # b0 has 16 blocks, compact fewer


def test_bad_inputs_are_clear_errors(tmp_path):
    with pytest.raises(ModelCardError, match="does not exist.*nothing is downloaded"):
        load_pretrained(create_model("compact"), tmp_path / "nope.pth")
    with pytest.raises(SpecError, match="cannot tell the naming"):
        detect_naming(["conv1.weight", "fc.bias"])
    with pytest.raises(SpecError, match="naming='resnet' is unknown"):
        load_pretrained(create_model("compact"), create_model("compact").state_dict(), naming="resnet")
    with pytest.raises(SpecError, match="needs an EfficientNet"):
        load_pretrained(create_model("small_cnn"), {"features.0.weight": torch.zeros(1)})
