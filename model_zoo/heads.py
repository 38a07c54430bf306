"""Multi-task heads on one shared backbone (direction, regime, volatility, return, ...).

A head with ``n >= 2`` outputs is a classifier (logits ``(N, n)``, cross-entropy; target -1
or NaN = missing); a head with ``n == 1`` is a regressor (output ``(N,)``, Huber or MSE;
target NaN = missing). ``DirectionOnly`` exposes one head as a plain logits model, which is
what ``export_onnx`` and the runtime expect (one probabilities output).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from effnet_trading.errors import SpecError
from effnet_trading.model_zoo.registry import create_model

__all__ = ["DEFAULT_HEADS", "MultiTaskModel", "DirectionOnly", "head_losses", "multitask_loss"]

DEFAULT_HEADS = {"direction": 3, "regime": 2, "volatility": 1, "return": 1}


class MultiTaskModel(nn.Module):
    """``create_model(backbone_name)`` features shared by one linear head per task; forward -> dict of outputs."""

    def __init__(
        self,
        backbone_name: str,
        in_chans: int = 3,
        heads: Mapping[str, int] | None = None,
        drop_rate: float = 0.2,
        **backbone_kw,
    ):
        super().__init__()
        heads = dict(DEFAULT_HEADS if heads is None else heads)
        if not heads or any(int(n) < 1 for n in heads.values()):
            raise SpecError(
                f"heads {heads!r} must map each task name to its output count >= 1, "
                "e.g. {'direction': 3, 'volatility': 1}."
            )
        self.backbone = create_model(backbone_name, num_classes=1, in_chans=in_chans, **backbone_kw)
        if hasattr(self.backbone, "classifier"):
            self.backbone.classifier = nn.Identity()  # the heads replace it; keeps parameter counts honest
        self.backbone_name, self.head_sizes = backbone_name, {k: int(n) for k, n in heads.items()}
        f = self.backbone.num_features
        self.heads = nn.ModuleDict(
            {k: nn.Sequential(nn.Dropout(drop_rate), nn.Linear(f, n)) for k, n in self.head_sizes.items()}
        )

    @property
    def num_features(self) -> int:
        return self.backbone.num_features

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C, H, W)`` -> shared pooled features ``(N, F)``."""
        return self.backbone.forward_features(x)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """``(N, C, H, W)`` -> ``{task: logits (N, n) or regression (N,)}``."""
        f = self.forward_features(x)
        return {k: (h(f) if self.head_sizes[k] > 1 else h(f).squeeze(1)) for k, h in self.heads.items()}


class DirectionOnly(nn.Module):
    """Wrap a MultiTaskModel as a single-output logits model (for ``export_onnx``)."""

    def __init__(self, model: MultiTaskModel, head: str = "direction"):
        super().__init__()
        if head not in model.head_sizes or model.head_sizes[head] < 2:
            raise SpecError(
                f"head {head!r} is not a classification head of this model; its heads are {model.head_sizes}."
            )
        self.model, self.head = model, head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.heads[self.head](self.model.forward_features(x))


def _zero(out: torch.Tensor) -> torch.Tensor:
    return out.sum() * 0.0  # keeps the graph connected when a batch has no valid target


def head_losses(
    outputs: Mapping[str, torch.Tensor],
    targets: Mapping[str, torch.Tensor],
    *,
    regression: str = "huber",
    delta: float = 1.0,
) -> dict[str, torch.Tensor]:
    """Per-head mean loss over the samples whose target is present; heads without targets are left out."""
    if regression not in ("huber", "mse"):
        raise SpecError(f"regression={regression!r} is unknown; use 'huber' or 'mse'.")
    losses = {}
    for name, out in outputs.items():
        if name not in targets or targets[name] is None:
            continue
        t = torch.as_tensor(targets[name], device=out.device)
        if out.ndim == 2:  # classifier
            tf = t.to(torch.float64)
            valid = torch.isfinite(tf) & (tf >= 0)
            if not valid.any():
                losses[name] = _zero(out)
                continue
            losses[name] = F.cross_entropy(out[valid], t[valid].long())
        else:
            t = t.to(out.dtype).reshape(out.shape)
            valid = torch.isfinite(t)
            if not valid.any():
                losses[name] = _zero(out)
                continue
            fn = F.huber_loss if regression == "huber" else F.mse_loss
            losses[name] = fn(out[valid], t[valid], delta=delta) if regression == "huber" else fn(out[valid], t[valid])
    return losses


def multitask_loss(
    outputs: Mapping[str, torch.Tensor],
    targets: Mapping[str, torch.Tensor],
    weights: Mapping[str, float] | None = None,
    *,
    regression: str = "huber",
    delta: float = 1.0,
) -> torch.Tensor:
    """``sum_k weights[k] * loss_k``: cross-entropy for classifiers, Huber/MSE for regressors, missing targets ignored."""
    losses = head_losses(outputs, targets, regression=regression, delta=delta)
    if not losses:
        raise SpecError(
            f"no targets for any head: outputs {sorted(outputs)}, targets {sorted(targets)}; "
            "pass targets keyed by head name."
        )
    weights = dict(weights or {})
    unknown = set(weights) - set(outputs)
    if unknown:
        raise SpecError(f"loss weights name unknown heads {sorted(unknown)}; heads are {sorted(outputs)}.")
    return sum(weights.get(k, 1.0) * v for k, v in losses.items())
