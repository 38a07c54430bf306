"""EfficientNet B0-B7, EfficientNetV2-S/M/L and small CPU variants, built from two tables (architecture as data).

Stage table (B0 baseline, Tan & Le 2019, Table 1; SE ratio 0.25 of the block *input*):

    stage  expand  kernel  stride  repeats  out_ch
      1      1       3       1        1       16
      2      6       3       2        2       24
      3      6       5       2        2       40
      4      6       3       2        3       80
      5      6       5       1        3      112
      6      6       5       2        4      192
      7      6       3       1        1      320

Stem: 3x3 conv stride 2 (``stem_stride``) to 32 channels; head: 1x1 conv to 4x the last
stage's channels (1280 for B0) -> global average pool -> dropout -> linear.

Compound scaling (``VARIANTS``): channels ``make_divisible(c * width, 8)``, repeats
``ceil(r * depth)``; ``resolution`` is the registry's ``default_size``. Stochastic depth rises
linearly over the blocks from 0 to ``drop_path_rate`` (0.2).

    variant            width  depth  res  dropout  stem_stride  params (1000 cls, 3 ch)
    efficientnet_b0    1.0    1.0    224  0.2      2             5,288,548
    efficientnet_b1    1.0    1.1    240  0.2      2             7,794,184
    efficientnet_b2    1.1    1.2    260  0.3      2             9,109,994
    efficientnet_b3    1.2    1.4    300  0.3      2            12,233,232
    efficientnet_b4    1.4    1.8    380  0.4      2            19,341,616
    efficientnet_b5    1.6    2.2    456  0.4      2            30,389,784
    efficientnet_b6    1.8    2.6    528  0.5      2            43,040,704
    efficientnet_b7    2.0    3.1    600  0.5      2            66,347,960
    efficientnet_nano  0.5    0.5     64  0.2      2            (small images, CPU)
    compact            0.35   0.35    32  0.1      1            (32-64 px images, CPU)

EfficientNetV2 (Tan & Le 2021) uses the same builder with its own stage tables (``STAGES_V2_S/M/L``,
torchvision's layouts): Fused-MBConv rows (``fused=True``: one full 3x3 conv instead of 1x1 expand +
depthwise, no SE) in the early high-resolution stages, MBConv with SE later, a stem of the first
stage's width and a fixed 1280-channel head. BatchNorm eps 1e-3 (torchvision's V2 norm layer).

    variant            table   width  depth  res  dropout  stem_stride  params (1000 cls, 3 ch)
    efficientnetv2_s   V2-S    1.0    1.0    384  0.2      2            21,458,488
    efficientnetv2_m   V2-M    1.0    1.0    480  0.3      2            54,139,356
    efficientnetv2_l   V2-L    1.0    1.0    480  0.4      2            118,515,272
    compact_v2         V2-S    0.35   0.25    32  0.1      1            (32-64 px images, CPU)

The module layout and parameter counts are torchvision's, so its state dicts load by
name (``weights.load_pretrained``). BatchNorm eps follows torchvision: 1e-5 for B0-B4 and the
small variants, 1e-3 for B5-B7, whose reference weights were ported from TensorFlow. Momentum is
0.1 for every variant. torchvision gives B5-B7 TensorFlow's 0.01 (a decay of 0.99, made for 350
epochs at batch 4096); over the few hundred steps trained here, running statistics that slow lag
the weights, and B5 then gave one constant prediction in eval mode. It had learned in training
mode (docs/training.md, "B5 and BatchNorm momentum"). Padding is symmetric
(``k // 2``), not TF "same", so the graph exports cleanly.

Small inputs (``input_size``): the paper's schedule halves the resolution five times (stem +
four stages: total stride 32), so a 32 px chart reaches B0's last six stages as 1x1 maps.
Given the image size, ``stride_schedule`` keeps the published schedule when the last feature
map is at least ``MIN_FEATURE_PX`` (2) pixels and otherwise turns the *earliest* stride-2
layers into stride 1 (stem first, then stage 2, ...), as CIFAR-style variants do: B0 at 32 px
-> total stride 16 (2x2 before the head, the layout of ``compact`` at 32 px, which was
measured to learn; docs/training.md), at >= 64 px the published 32; compact at 16 px -> 8.
Strides have no parameters, so the parameter count is unchanged; the schedule is recorded on
the model (``model.strides``) and stated by ``describe_strides`` / the registry.
Residual branches start as identities (zero-initialised gamma of each residual block's last
BatchNorm, Goyal et al. 2017), which ``docs/training.md`` measured to matter for the deep
variants at small data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from effnet_trading.model_zoo._blocks import ConvBNAct, FusedMBConv, MBConv, _ResidualBlock, make_divisible
from effnet_trading.model_zoo.registry import register_model

__all__ = [
    "StageSpec",
    "Variant",
    "STAGES",
    "STAGES_V2_S",
    "STAGES_V2_M",
    "STAGES_V2_L",
    "VARIANTS",
    "MIN_FEATURE_PX",
    "EfficientNet",
    "build_efficientnet",
    "round_filters",
    "round_repeats",
    "stride_schedule",
    "describe_strides",
]


@dataclass(frozen=True)
class StageSpec:
    """One row of a stage table (unscaled channels; scaled by the variant). ``fused``: Fused-MBConv
    (EfficientNetV2's early stages; no SE) instead of MBConv."""

    expand: int
    kernel: int
    stride: int
    repeats: int
    out_ch: int
    se_ratio: float = 0.25
    fused: bool = False


STEM_CH = 32
HEAD_RATIO = 4  # head conv width = 4 x last stage channels (1280 for B0)
DROP_PATH_RATE = 0.2
MIN_FEATURE_PX = 2  # smallest last feature map (pixels) the size-aware stride schedule allows

STAGES: tuple[StageSpec, ...] = (
    StageSpec(1, 3, 1, 1, 16),
    StageSpec(6, 3, 2, 2, 24),
    StageSpec(6, 5, 2, 2, 40),
    StageSpec(6, 3, 2, 3, 80),
    StageSpec(6, 5, 1, 3, 112),
    StageSpec(6, 5, 2, 4, 192),
    StageSpec(6, 3, 1, 1, 320),
)


def _fused(expand: int, stride: int, repeats: int, out_ch: int) -> StageSpec:
    return StageSpec(expand, 3, stride, repeats, out_ch, se_ratio=0.0, fused=True)


# EfficientNetV2 (Tan & Le 2021, Table 4 for S; M and L as torchvision/timm): 3x3 kernels throughout
STAGES_V2_S: tuple[StageSpec, ...] = (
    _fused(1, 1, 2, 24),
    _fused(4, 2, 4, 48),
    _fused(4, 2, 4, 64),
    StageSpec(4, 3, 2, 6, 128),
    StageSpec(6, 3, 1, 9, 160),
    StageSpec(6, 3, 2, 15, 256),
)
STAGES_V2_M: tuple[StageSpec, ...] = (
    _fused(1, 1, 3, 24),
    _fused(4, 2, 5, 48),
    _fused(4, 2, 5, 80),
    StageSpec(4, 3, 2, 7, 160),
    StageSpec(6, 3, 1, 14, 176),
    StageSpec(6, 3, 2, 18, 304),
    StageSpec(6, 3, 1, 5, 512),
)
STAGES_V2_L: tuple[StageSpec, ...] = (
    _fused(1, 1, 4, 32),
    _fused(4, 2, 7, 64),
    _fused(4, 2, 7, 96),
    StageSpec(4, 3, 2, 10, 192),
    StageSpec(6, 3, 1, 19, 224),
    StageSpec(6, 3, 2, 25, 384),
    StageSpec(6, 3, 1, 7, 640),
)


@dataclass(frozen=True)
class Variant:
    """One row of the compound-scaling table: multipliers for a stage table, stem and head widths."""

    width: float
    depth: float
    resolution: int
    dropout: float
    stem_stride: int = 2
    bn_eps: float = 1e-5
    bn_momentum: float = 0.1
    description: str = ""
    stages: tuple[StageSpec, ...] = STAGES
    stem_ch: int = STEM_CH
    head_ch: int | None = None  # None: HEAD_RATIO x last stage (V1); V2 uses a fixed 1280 (scaled by width)


_TF_BN = {"bn_eps": 1e-3}  # torchvision: momentum 0.01 too, which collapsed B5 in eval mode here (docstring)
_V2_BN = {"bn_eps": 1e-3}  # torchvision's EfficientNetV2 norm layer (momentum stays 0.1)
VARIANTS: dict[str, Variant] = {
    "efficientnet_b0": Variant(1.0, 1.0, 224, 0.2),
    "efficientnet_b1": Variant(1.0, 1.1, 240, 0.2),
    "efficientnet_b2": Variant(1.1, 1.2, 260, 0.3),
    "efficientnet_b3": Variant(1.2, 1.4, 300, 0.3),
    "efficientnet_b4": Variant(1.4, 1.8, 380, 0.4),
    "efficientnet_b5": Variant(1.6, 2.2, 456, 0.4, **_TF_BN),
    "efficientnet_b6": Variant(1.8, 2.6, 528, 0.5, **_TF_BN),
    "efficientnet_b7": Variant(2.0, 3.1, 600, 0.5, **_TF_BN),
    "efficientnet_nano": Variant(
        0.5, 0.5, 64, 0.2, description="EfficientNet at half width/depth for small images on CPU"
    ),
    "compact": Variant(
        0.35,
        0.35,
        32,
        0.1,
        stem_stride=1,
        description="tiny EfficientNet (stem stride 1) for 32-64 px images; trains in seconds on CPU",
    ),
    "efficientnetv2_s": Variant(
        1.0, 1.0, 384, 0.2, **_V2_BN, stages=STAGES_V2_S, stem_ch=24, head_ch=1280, description="EfficientNetV2-S"
    ),
    "efficientnetv2_m": Variant(
        1.0, 1.0, 480, 0.3, **_V2_BN, stages=STAGES_V2_M, stem_ch=24, head_ch=1280, description="EfficientNetV2-M"
    ),
    "efficientnetv2_l": Variant(
        1.0, 1.0, 480, 0.4, **_V2_BN, stages=STAGES_V2_L, stem_ch=32, head_ch=1280, description="EfficientNetV2-L"
    ),
    "compact_v2": Variant(
        0.35,
        0.25,
        32,
        0.1,
        stem_stride=1,
        **_V2_BN,
        stages=STAGES_V2_S,
        stem_ch=24,
        head_ch=1280,
        description="tiny EfficientNetV2 (V2-S table, Fused-MBConv early stages, stem stride 1) for 32-64 px on CPU",
    ),
}


def round_filters(channels: int, width: float) -> int:
    """Scale a channel count by ``width`` and round to a multiple of 8."""
    return make_divisible(channels * width, 8)


def round_repeats(repeats: int, depth: float) -> int:
    """Scale a stage's block count by ``depth``, rounding up."""
    return int(math.ceil(repeats * depth))


def _size(input_size) -> int | None:
    if input_size is None:
        return None
    return int(min(input_size)) if isinstance(input_size, (tuple, list)) else int(input_size)


def stride_schedule(
    variant: Variant, input_size: int | tuple[int, int] | None = None, stages: tuple[StageSpec, ...] | None = None
) -> tuple[int, tuple[int, ...]]:
    """``(stem_stride, per-stage first-block strides)`` for images of ``input_size`` pixels.

    None: the published schedule. Otherwise the earliest stride-2 layers become stride 1 until
    the last feature map is at least ``MIN_FEATURE_PX`` pixels (or no stride is left)."""
    strides = [variant.stem_stride] + [s.stride for s in (stages or variant.stages)]
    size = _size(input_size)
    if size is None:
        return strides[0], tuple(strides[1:])
    total = math.prod(strides)
    for i, st in enumerate(strides):
        if size // total >= MIN_FEATURE_PX:
            break
        if st > 1:
            strides[i], total = 1, total // st
    return strides[0], tuple(strides[1:])


def describe_strides(name: str, input_size: int | tuple[int, int] | None) -> str:
    """One line saying which stride schedule ``create_model(name, input_size=...)`` uses."""
    v = VARIANTS[name]
    stem, st = stride_schedule(v, input_size)
    total = stem * math.prod(st)
    paper = stride_schedule(v, None)
    size = _size(input_size)
    where = "published schedule" if (stem, st) == paper else "early strides dropped for small images"
    last = f", last feature map {size // total}x{size // total}" if size else ""
    return f"strides stem {stem}, stages {list(st)} (total {total}; {where}{last})"


class EfficientNet(nn.Module):
    """``features`` (stem, stages, head conv) -> ``avgpool`` -> ``classifier`` (dropout, linear)."""

    def __init__(
        self,
        variant: Variant,
        stages: tuple[StageSpec, ...] | None = None,
        num_classes: int = 3,
        in_chans: int = 3,
        drop_rate: float | None = None,
        drop_path_rate: float = DROP_PATH_RATE,
        input_size: int | tuple[int, int] | None = None,
        zero_init_last_bn: bool = True,
    ):
        super().__init__()
        bn = {"bn_eps": variant.bn_eps, "bn_momentum": variant.bn_momentum}
        stages = stages or variant.stages
        stem_stride, stage_strides = stride_schedule(variant, input_size, stages)
        self.strides = (stem_stride, *stage_strides)
        self.input_size = _size(input_size)
        cin = round_filters(variant.stem_ch, variant.width)
        layers: list[nn.Module] = [ConvBNAct(in_chans, cin, 3, stem_stride, **bn)]
        depths = [round_repeats(s.repeats, variant.depth) for s in stages]
        total, block_id = sum(depths), 0
        for spec, stride, n in zip(stages, stage_strides, depths):
            cout = round_filters(spec.out_ch, variant.width)
            blocks = []
            for i in range(n):
                dp = drop_path_rate * block_id / total
                st = stride if i == 0 else 1
                if spec.fused:
                    blocks.append(FusedMBConv(cin, cout, spec.expand, spec.kernel, st, dp, **bn))
                else:
                    blocks.append(MBConv(cin, cout, spec.expand, spec.kernel, st, spec.se_ratio, dp, **bn))
                cin, block_id = cout, block_id + 1
            layers.append(nn.Sequential(*blocks))
        self.num_features = (
            HEAD_RATIO * cin if variant.head_ch is None else round_filters(variant.head_ch, variant.width)
        )
        layers.append(ConvBNAct(cin, self.num_features, 1, **bn))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(
            nn.Dropout(variant.dropout if drop_rate is None else drop_rate, inplace=True),
            nn.Linear(self.num_features, num_classes),
        )
        self.in_chans, self.num_classes = in_chans, num_classes
        self._init_weights(zero_init_last_bn)

    def _init_weights(self, zero_init_last_bn: bool = True) -> None:
        """torchvision's initialisation (kaiming fan-out convs, unit BN, uniform linear), except the
        linear range: torchvision's 1/sqrt(out_features) assumes 1000 classes; with 3 classes it
        gives initial logits of std ~8 (loss ~5 instead of ln 3), so use 1/sqrt(max(in, out))."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                r = 1.0 / math.sqrt(max(m.in_features, m.out_features))
                nn.init.uniform_(m.weight, -r, r)
                nn.init.zeros_(m.bias)
        if zero_init_last_bn:  # each residual block starts as the identity (Goyal et al. 2017)
            for m in self.modules():
                if isinstance(m, _ResidualBlock) and m.use_res:
                    nn.init.zeros_(m.block[-1][1].weight)

    @property
    def stages(self) -> list[nn.Sequential]:
        """The (Fused-)MBConv stages (``features[1:-1]``)."""
        return list(self.features)[1:-1]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C, H, W)`` -> pooled ``(N, num_features)``."""
        return self.avgpool(self.features(x)).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C, H, W)`` -> logits ``(N, num_classes)``."""
        return self.classifier(self.forward_features(x))


def build_efficientnet(name: str, num_classes: int = 3, in_chans: int = 3, **kw) -> EfficientNet:
    """Build the ``VARIANTS[name]`` row; ``kw``: ``drop_rate``, ``drop_path_rate``, ``input_size`` (pixels: picks the
    stride schedule, see ``stride_schedule``), ``zero_init_last_bn``."""
    return EfficientNet(VARIANTS[name], num_classes=num_classes, in_chans=in_chans, **kw)


def _register(name: str, v: Variant) -> None:
    def builder(
        num_classes: int = 3, in_chans: int = 3, input_size: int | tuple[int, int] | None = None, **kw
    ) -> EfficientNet:
        return build_efficientnet(name, num_classes=num_classes, in_chans=in_chans, input_size=input_size, **kw)

    builder.__name__ = name
    desc = (
        v.description
        or f"EfficientNet-{name.rsplit('_', 1)[-1].upper()} (width {v.width}, depth {v.depth}, {v.resolution} px)"
    )
    register_model(
        name,
        family="efficientnet",
        default_size=v.resolution,
        description=desc,
        describe_input=lambda size: describe_strides(name, size),
    )(builder)


for _name, _variant in VARIANTS.items():
    _register(_name, _variant)
