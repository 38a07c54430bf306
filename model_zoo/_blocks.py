"""EfficientNet building blocks (torchvision module layout, so its state dicts load by name).

``ConvBNAct`` is torchvision's ``Conv2dNormActivation`` (children ``0`` conv, ``1`` BN,
``2`` activation), ``SqueezeExcite`` its ``SqueezeExcitation`` (``fc1``/``fc2``) and ``MBConv``
and ``FusedMBConv`` (EfficientNetV2) keep the ``block`` Sequential, so ``features.3.1.block.2.fc1.weight`` means the same tensor
here and there. Activations are plain ``nn.SiLU`` / ``nn.Sigmoid``: they export to ONNX as
ordinary ops (the "memory-efficient Swish" custom autograd function does not).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = [
    "recalibrate_batchnorm",
    "make_divisible",
    "SmallMapConv2d",
    "ConvBNAct",
    "SqueezeExcite",
    "DropPath",
    "MBConv",
    "FusedMBConv",
]


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round a channel count to a multiple of ``divisor``, never more than 10% below ``value``."""
    new = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * value else new


class SmallMapConv2d(nn.Conv2d):
    """``nn.Conv2d`` that leaves out the kernel rows and columns which only ever meet zero padding.

    On a map smaller than the kernel (zero ``k // 2`` padding, any stride) the outer taps multiply padding
    only: a 5x5 depthwise conv on a 1x1 map is a per-channel scale. Cropping them is exact (outputs
    are the same sums without the zero terms, and those taps' weight gradient is 0 either way) and avoids
    oneDNN's slow path for such convs, which dominated EfficientNet training on small images (B0 at
    16 px, batch 256: one 5x5 depthwise conv on 1152 channels at 1x1 took 0.9 s of a 12 s step;
    measured in docs/training.md). Same parameters and state-dict names as ``nn.Conv2d``.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.jit.is_tracing() or torch.onnx.is_in_onnx_export():
            return super().forward(x)  # exported graphs keep the plain conv (and any input size)
        kh, kw = self.kernel_size
        h, w = int(x.shape[-2]), int(x.shape[-1])
        if (
            (h >= kh and w >= kw)
            or isinstance(self.padding, str)  # "same"/"valid": left to nn.Conv2d
            or self.dilation != (1, 1)
            or self.padding_mode != "zeros"
        ):
            return super().forward(x)
        (ph, pw), (sh, sw) = self.padding, self.stride  # type: ignore[misc]
        hout, wout = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
        # taps a (rows) used by some output: 0 <= i*s + a - p <= n - 1 for an i < out
        top, bottom = max(0, ph - sh * (hout - 1)), min(kh - 1, ph + h - 1)
        left, right = max(0, pw - sw * (wout - 1)), min(kw - 1, pw + w - 1)
        if top == 0 and left == 0 and bottom == kh - 1 and right == kw - 1:
            return super().forward(x)
        weight = self.weight[:, :, top : bottom + 1, left : right + 1]
        pad_t, pad_l = ph - top, pw - left
        pad_b = max(0, sh * (hout - 1) + (bottom - top + 1) - pad_t - h)
        pad_r = max(0, sw * (wout - 1) + (right - left + 1) - pad_l - w)
        if (pad_t, pad_l) == (pad_b, pad_r):
            out = nn.functional.conv2d(x, weight, self.bias, self.stride, (pad_t, pad_l), 1, self.groups)
        else:
            x = nn.functional.pad(x, (pad_l, pad_r, pad_t, pad_b))
            out = nn.functional.conv2d(x, weight, self.bias, self.stride, 0, 1, self.groups)
        return out[..., :hout, :wout]


class ConvBNAct(nn.Sequential):
    """Conv (no bias, symmetric ``k // 2`` padding) -> BatchNorm -> optional SiLU."""

    def __init__(
        self,
        cin: int,
        cout: int,
        kernel: int = 1,
        stride: int = 1,
        groups: int = 1,
        act: bool = True,
        bn_eps: float = 1e-5,
        bn_momentum: float = 0.1,
    ):
        layers: list[nn.Module] = [
            (SmallMapConv2d if kernel > 1 else nn.Conv2d)(
                cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False
            ),
            nn.BatchNorm2d(cout, eps=bn_eps, momentum=bn_momentum),
        ]
        if act:
            layers.append(nn.SiLU())
        super().__init__(*layers)


class SqueezeExcite(nn.Module):
    """Channel attention: ``x * sigmoid(fc2(silu(fc1(mean_hw(x)))))``; fc1/fc2 are 1x1 convs with bias."""

    def __init__(self, channels: int, squeeze: int):
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.fc2 = nn.Conv2d(squeeze, channels, 1)
        self.activation = nn.SiLU()
        self.scale_activation = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.scale_activation(self.fc2(self.activation(self.fc1(self.avgpool(x)))))
        return x * s


class DropPath(nn.Module):
    """Stochastic depth ("row" mode): drop the whole residual branch per sample with probability ``p``."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"p={self.p}"


class _ResidualBlock(nn.Module):
    """``block`` (+ drop-path residual when stride 1 and ``cin == cout``): what MBConv and Fused-MBConv share."""

    def _set_block(self, layers: list[nn.Module], cin: int, cout: int, stride: int, drop_path: float) -> None:
        self.block = nn.Sequential(*layers)
        self.use_res = stride == 1 and cin == cout
        self.stochastic_depth = DropPath(drop_path)
        self.out_channels = cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        if self.use_res:
            out = self.stochastic_depth(out) + x
        return out


class MBConv(_ResidualBlock):
    """Inverted residual: [1x1 expand] -> depthwise kxk -> SE -> 1x1 project (+ drop-path residual).

    SE squeezes to ``max(1, cin * se_ratio)`` channels of the *block input* (torchvision/paper).
    """

    def __init__(
        self,
        cin: int,
        cout: int,
        expand: int,
        kernel: int,
        stride: int,
        se_ratio: float,
        drop_path: float,
        bn_eps: float = 1e-5,
        bn_momentum: float = 0.1,
    ):
        super().__init__()
        bn = {"bn_eps": bn_eps, "bn_momentum": bn_momentum}
        mid = make_divisible(cin * expand)
        layers: list[nn.Module] = []
        if mid != cin:
            layers.append(ConvBNAct(cin, mid, 1, **bn))
        layers.append(ConvBNAct(mid, mid, kernel, stride, groups=mid, **bn))
        layers.append(SqueezeExcite(mid, max(1, int(cin * se_ratio))))
        layers.append(ConvBNAct(mid, cout, 1, act=False, **bn))
        self._set_block(layers, cin, cout, stride, drop_path)


class FusedMBConv(_ResidualBlock):
    """EfficientNetV2's Fused-MBConv: one full kxk conv replaces [1x1 expand -> depthwise kxk]; no SE.

    expand > 1: kxk conv (stride) to ``cin * expand`` -> 1x1 project; expand 1: a single kxk conv
    with activation (torchvision ``FusedMBConv`` layout, residual with drop-path when shapes allow).
    """

    def __init__(
        self,
        cin: int,
        cout: int,
        expand: int,
        kernel: int,
        stride: int,
        drop_path: float,
        bn_eps: float = 1e-5,
        bn_momentum: float = 0.1,
    ):
        super().__init__()
        bn = {"bn_eps": bn_eps, "bn_momentum": bn_momentum}
        mid = make_divisible(cin * expand)
        if mid != cin:
            layers = [ConvBNAct(cin, mid, kernel, stride, **bn), ConvBNAct(mid, cout, 1, act=False, **bn)]
        else:
            layers = [ConvBNAct(cin, cout, kernel, stride, **bn)]
        self._set_block(layers, cin, cout, stride, drop_path)


def recalibrate_batchnorm(model: nn.Module, inputs, *, stochastic: bool = False) -> None:
    """Re-estimate every BatchNorm's running statistics as exact averages over ``inputs``
    (an iterable of normalised ``(N, C, H, W)`` tensors), then put the model in eval mode.

    Fresh BN statistics (mean 0, var 1) shrink an untrained deep net's outputs to constants
    in eval mode, and a short training run leaves statistics that lag the weights; averaging
    afresh fixes both. Dropout and drop-path stay off while the statistics are collected,
    unless ``stochastic`` (statistics of a training-mode forward pass).
    """
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [b.momentum for b in bns]
    for b in bns:
        b.reset_running_stats()
        b.momentum = None  # cumulative moving average = plain mean over the batches below
    model.train(stochastic)
    for b in bns:
        b.train()
    with torch.no_grad():
        for x in inputs:
            model(x)
    for b, mom in zip(bns, saved):
        b.momentum = mom
    model.eval()
