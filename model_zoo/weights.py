"""Load user-supplied pretrained EfficientNet weights (never downloads anything).

Two state-dict namings are understood:

* ``torchvision`` (``features.0.0.weight``, ``features.3.1.block.2.fc1.bias``, ``classifier.1.weight``):
  our modules have torchvision's layout, so keys map one to one.
* ``efficientnet_pytorch`` (lukemelas; ``_conv_stem``, ``_bn0``, ``_blocks.N._expand_conv`` /
  ``_bn0`` / ``_depthwise_conv`` / ``_bn1`` / ``_se_reduce`` / ``_se_expand`` / ``_project_conv`` /
  ``_bn2``, ``_conv_head``, ``_bn1``, ``_fc``): block ``N`` is counted over all stages.
  Those weights were trained with TF "same" padding; our symmetric padding shifts stride-2
  layers by one pixel, so expect small output differences until fine-tuned.

The first conv is adapted when ``in_chans != 3`` (mean over RGB, repeated, scaled by
``3 / in_chans`` so a grey image replicated over channels gives the RGB response) and the
classifier is dropped when its shape differs (e.g. 1000 ImageNet classes -> 3).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from effnet_trading.errors import ModelCardError, SpecError
from effnet_trading.model_zoo.efficientnet import EfficientNet

__all__ = ["LoadReport", "load_pretrained", "detect_naming", "to_torchvision_names"]

NAMINGS = ("torchvision", "efficientnet_pytorch")
_STEM_KEY = "features.0.0.weight"
_CLASSIFIER = ("classifier.1.weight", "classifier.1.bias")


@dataclass
class LoadReport:
    """What ``load_pretrained`` did: tensors loaded, adapted (first conv), skipped (classifier), left as initialised."""

    naming: str
    loaded: list[str] = field(default_factory=list)
    adapted: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)


def detect_naming(keys) -> str:
    """``"torchvision"`` or ``"efficientnet_pytorch"`` from the state-dict keys; SpecError if neither."""
    keys = list(keys)
    if any(k.startswith(("_conv_stem.", "_blocks.")) for k in keys):
        return "efficientnet_pytorch"
    if any(k.startswith("features.") for k in keys):
        return "torchvision"
    raise SpecError(
        f"cannot tell the naming of this state dict (first keys: {keys[:4]}); expected torchvision keys "
        "('features.0.0.weight', ...) or efficientnet_pytorch keys ('_conv_stem.weight', ...). "
        "Pass naming='torchvision' or 'efficientnet_pytorch' explicitly, or convert the file."
    )


def _block_positions(model: EfficientNet) -> list[tuple[int, int, bool]]:
    """Flat block number -> (features index, index in stage, has expand conv)."""
    out = []
    for s, stage in enumerate(model.stages, start=1):
        for j, blk in enumerate(stage):
            out.append((s, j, len(blk.block) == 4))
    return out


_LUKE_BLOCK = re.compile(r"_blocks\.(\d+)\.(_\w+?)\.(.+)")


def _luke_to_tv(key: str, blocks: list[tuple[int, int, bool]], head_idx: int) -> str | None:
    """Map one efficientnet_pytorch key to torchvision naming (None when it is not part of the network)."""
    m = _LUKE_BLOCK.fullmatch(key)
    if m:
        n, part, rest = int(m.group(1)), m.group(2), m.group(3)
        if n >= len(blocks):
            return None
        s, j, has_expand = blocks[n]
        d = 1 if has_expand else 0  # index of the depthwise conv inside ``block``
        sub = {
            "_expand_conv": "0.0",
            "_bn0": "0.1",
            "_depthwise_conv": f"{d}.0",
            "_bn1": f"{d}.1",
            "_se_reduce": f"{d + 1}.fc1",
            "_se_expand": f"{d + 1}.fc2",
            "_project_conv": f"{d + 2}.0",
            "_bn2": f"{d + 2}.1",
        }.get(part)
        if sub is None or (part in ("_expand_conv", "_bn0") and not has_expand):
            return None
        return f"features.{s}.{j}.block.{sub}.{rest}"
    top = {
        "_conv_stem": "features.0.0",
        "_bn0": "features.0.1",
        "_conv_head": f"features.{head_idx}.0",
        "_bn1": f"features.{head_idx}.1",
        "_fc": "classifier.1",
    }
    head, _, rest = key.partition(".")
    return f"{top[head]}.{rest}" if head in top and rest else None


def to_torchvision_names(state: Mapping[str, torch.Tensor], model: EfficientNet, naming: str) -> tuple[dict, list[str]]:
    """Rename ``state`` to our (torchvision) keys for ``model``; returns (renamed, keys that map nowhere)."""
    if naming == "torchvision":
        return dict(state), []
    blocks, head_idx = _block_positions(model), len(model.features) - 1
    renamed, unknown = {}, []
    for k, v in state.items():
        new = _luke_to_tv(k, blocks, head_idx)
        if new is None:
            unknown.append(k)
        else:
            renamed[new] = v
    return renamed, unknown


def _read_state(source) -> dict[str, torch.Tensor]:
    if isinstance(source, Mapping):
        state = dict(source)
    else:
        path = Path(os.fspath(source))
        if not path.is_file():
            raise ModelCardError(
                f"pretrained weights file {str(path)!r} does not exist; pass the path of a state dict "
                "saved with torch.save(model.state_dict(), path) (nothing is downloaded)."
            )
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise ModelCardError(
                f"could not read {str(path)!r} as a torch state dict ({exc}); "
                "save weights with torch.save(model.state_dict(), path)."
            ) from exc
    for wrapper in ("state_dict", "model", "model_state_dict"):
        if isinstance(state.get(wrapper), Mapping):
            state = dict(state[wrapper])
    if not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelCardError("the weights file does not hold a state dict of tensors (name -> tensor).")
    return {k.removeprefix("module."): v for k, v in state.items()}


def _adapt_stem(w: torch.Tensor, in_chans: int) -> torch.Tensor:
    """``(O, 3, k, k)`` RGB stem -> ``(O, in_chans, k, k)``: mean over RGB, repeated, times ``3 / in_chans``."""
    return w.mean(dim=1, keepdim=True).repeat(1, in_chans, 1, 1) * (3.0 / in_chans)


def _backbone(model: nn.Module) -> EfficientNet:
    if isinstance(model, EfficientNet):
        return model
    inner = getattr(model, "backbone", None)
    if isinstance(inner, EfficientNet):
        return inner
    raise SpecError(
        f"load_pretrained needs an EfficientNet (create_model('efficientnet_b0', ...)) or a model with one "
        f"as .backbone; got {type(model).__name__}."
    )


def load_pretrained(model: nn.Module, path, naming: str = "auto", strict_backbone: bool = True) -> LoadReport:
    """Copy a user-supplied state dict (file path or mapping) into ``model`` in place.

    ``naming``: ``"auto"`` | ``"torchvision"`` | ``"efficientnet_pytorch"``. With ``strict_backbone``,
    any backbone tensor missing from the file, any key that maps nowhere, or any shape
    mismatch (other than the adapted stem and a dropped classifier) raises SpecError.
    """
    net = _backbone(model)
    state = _read_state(path)
    if naming == "auto":
        naming = detect_naming(state)
    if naming not in NAMINGS:
        raise SpecError(f"naming={naming!r} is unknown; use 'auto', 'torchvision' or 'efficientnet_pytorch'.")
    renamed, unknown = to_torchvision_names(state, net, naming)
    own = net.state_dict()
    report = LoadReport(naming)
    report.unexpected = unknown + sorted(k for k in renamed if k not in own and k not in _CLASSIFIER)
    bad_shape, new = [], {}
    for k, v in renamed.items():
        if k not in own:
            if k in _CLASSIFIER:  # the model has no classifier (heads / embedding replace it)
                report.skipped.append(k)
            continue
        target = own[k]
        if (
            k == _STEM_KEY
            and v.ndim == 4
            and v.shape[1] == 3
            and target.shape[1] != 3
            and v.shape[0] == target.shape[0]
        ):
            v = _adapt_stem(v, target.shape[1])
            report.adapted.append(k)
        if k in _CLASSIFIER and v.shape != target.shape:
            report.skipped.append(k)
            continue
        if v.shape != target.shape:
            bad_shape.append(f"{k}: file {tuple(v.shape)} vs model {tuple(target.shape)}")
            report.skipped.append(k)
            continue
        new[k] = v.to(target.dtype)
        report.loaded.append(k)
    report.missing = sorted(
        k for k in own if k not in renamed and k not in _CLASSIFIER and not k.endswith("num_batches_tracked")
    )
    if strict_backbone and (bad_shape or report.missing or report.unexpected):
        parts = []
        if bad_shape:
            parts.append(f"{len(bad_shape)} shape mismatches (e.g. {bad_shape[:3]})")
        if report.missing:
            parts.append(f"{len(report.missing)} backbone tensors missing from the file (e.g. {report.missing[:3]})")
        if report.unexpected:
            parts.append(f"{len(report.unexpected)} keys that map to no tensor (e.g. {report.unexpected[:3]})")
        raise SpecError(
            f"pretrained weights ({naming} naming) do not fit this {type(net).__name__} "
            f"({len(net.stages)} stages, {net.num_features} head features): "
            + "; ".join(parts)
            + ". Check the variant (b0 weights need efficientnet_b0) and the naming, "
            "or pass strict_backbone=False to load only what fits."
        )
    with torch.no_grad():
        for k, v in new.items():
            own[k].copy_(v)
    return report
