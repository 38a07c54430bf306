"""Pattern embeddings: a backbone + projection to L2-normalised vectors, trained with triplets.

"Find similar historical patterns": train ``EmbeddingModel`` so windows with the same label
(e.g. the same forward-return class) lie close, embed history once, then
``PatternIndex.query`` returns the nearest past windows by cosine similarity.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from effnet_trading.errors import DataError, SpecError
from effnet_trading.model_zoo._blocks import recalibrate_batchnorm
from effnet_trading.model_zoo.features import _as_float_images, _batched
from effnet_trading.model_zoo.registry import create_model
from effnet_trading.model_zoo.threads import with_torch_threads

__all__ = [
    "EmbeddingModel",
    "triplet_loss",
    "contrastive_loss",
    "batch_hard_triplet_loss",
    "batch_all_triplet_loss",
    "train_embedding",
    "embed",
    "PatternIndex",
]


class EmbeddingModel(nn.Module):
    """``create_model(backbone_name)`` features -> linear -> L2-normalised ``(N, dim)`` embedding."""

    def __init__(self, backbone_name: str, in_chans: int = 3, dim: int = 64, **backbone_kw):
        super().__init__()
        self.backbone = create_model(backbone_name, num_classes=1, in_chans=in_chans, **backbone_kw)
        if hasattr(self.backbone, "classifier"):
            self.backbone.classifier = nn.Identity()
        self.proj = nn.Linear(self.backbone.num_features, dim)
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C, H, W)`` -> unit-length embeddings ``(N, dim)``."""
        return F.normalize(self.proj(self.backbone.forward_features(x)), dim=1)


def _dist(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Cosine distance ``1 - a.b`` of unit vectors (row-wise)."""
    return 1.0 - (a * b).sum(-1)


def triplet_loss(
    anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor, margin: float = 0.2
) -> torch.Tensor:
    """``mean(relu(d(a, p) - d(a, n) + margin))`` with cosine distance on unit embeddings ``(N, D)``."""
    return F.relu(_dist(anchor, positive) - _dist(anchor, negative) + margin).mean()


def contrastive_loss(x1: torch.Tensor, x2: torch.Tensor, same: torch.Tensor, margin: float = 0.5) -> torch.Tensor:
    """Pairs ``(N, D)``: ``same * d^2 + (1 - same) * relu(margin - d)^2``, d = cosine distance."""
    d = _dist(x1, x2)
    same = same.to(d.dtype)
    return (same * d.pow(2) + (1 - same) * F.relu(margin - d).pow(2)).mean()


def batch_hard_triplet_loss(emb: torch.Tensor, labels: torch.Tensor, margin: float = 0.2) -> torch.Tensor:
    """Batch-hard mining (Hermans et al. 2017): per anchor the farthest positive and nearest negative in the batch."""
    d = 1.0 - emb @ emb.T
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool, device=emb.device)
    pos = torch.where(same & ~eye, d, torch.full_like(d, -1.0)).max(1).values
    neg = torch.where(~same, d, torch.full_like(d, 3.0)).min(1).values
    ok = (pos >= 0) & (neg <= 2.0)  # anchors with both a positive and a negative in the batch
    if not ok.any():
        return emb.sum() * 0.0
    return F.relu(pos[ok] - neg[ok] + margin).mean()


def batch_all_triplet_loss(emb: torch.Tensor, labels: torch.Tensor, margin: float = 0.2) -> torch.Tensor:
    """Every valid (anchor, positive, negative) triplet in the batch; mean over those with positive loss."""
    d = 1.0 - emb @ emb.T
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool, device=emb.device)
    valid = (same & ~eye)[:, :, None] & (~same)[:, None, :]
    loss = F.relu(d[:, :, None] - d[:, None, :] + margin)[valid]
    active = loss > 1e-12
    return loss[active].mean() if active.any() else emb.sum() * 0.0


def _balanced_batches(labels: np.ndarray, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """One epoch of batches holding about ``batch_size / n_classes`` samples of every class."""
    classes = [np.flatnonzero(labels == c) for c in np.unique(labels)]
    per = max(2, batch_size // len(classes))
    n_batches = max(1, len(labels) // (per * len(classes)))
    return [np.concatenate([rng.choice(ix, per, replace=len(ix) < per) for ix in classes]) for _ in range(n_batches)]


@with_torch_threads(lambda *a, num_threads=None, **k: num_threads)  # restored on return
def train_embedding(
    model: nn.Module,
    images: np.ndarray,
    labels: np.ndarray,
    epochs: int = 5,
    *,
    batch_size: int = 64,
    lr: float = 1e-3,
    margin: float = 0.2,
    mining: str = "batch_all",
    seed: int = 0,
    num_threads: int | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> list[float]:
    """Train in place on triplets mined by label in each batch (same label = positive); returns mean loss per epoch.

    ``mining``: ``"batch_all"`` (every valid triplet; robust from a random start) or ``"batch_hard"``.

    images: ``(N, C, H, W)`` uint8 or float in [0, 1]; labels: ``(N,)`` ints (e.g. forward-return class).
    Every batch holds every class, so each anchor has positives and negatives to mine from.
    """
    labels = np.asarray(labels).astype(np.int64)
    if len(images) != len(labels):
        raise DataError(f"{len(images)} images but {len(labels)} labels; pass one label per image.")
    if len(np.unique(labels)) < 2:
        raise DataError(f"labels hold a single class {np.unique(labels).tolist()}; triplets need at least two classes.")
    losses_by_mining = {"batch_all": batch_all_triplet_loss, "batch_hard": batch_hard_triplet_loss}
    if mining not in losses_by_mining:
        raise SpecError(f"mining={mining!r} is unknown; use 'batch_all' or 'batch_hard'.")
    loss_fn = losses_by_mining[mining]
    if epochs < 1:
        raise SpecError(f"epochs={epochs} must be >= 1.")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    c = images.shape[1]
    m = torch.tensor(mean if mean is not None else [0.0] * c, dtype=torch.float32).view(1, -1, 1, 1)
    s = torch.tensor(std if std is not None else [1.0] * c, dtype=torch.float32).view(1, -1, 1, 1)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    history = []
    model.train()
    for _ in range(epochs):
        losses = []
        for idx in _balanced_batches(labels, batch_size, rng):
            x = (torch.from_numpy(_as_float_images(images[np.sort(idx)])) - m) / s
            y = torch.from_numpy(labels[np.sort(idx)])
            loss = loss_fn(model(x), y, margin)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
        history.append(float(np.mean(losses)))
    # a short run leaves BN running stats lagging the weights: eval-mode embeddings drift otherwise
    recalibrate_batchnorm(
        model,
        (
            (torch.from_numpy(_as_float_images(images[i : i + 128])) - m) / s
            for i in range(0, min(1024, len(images)), 128)
        ),
    )
    return history


def embed(
    model: nn.Module,
    images: np.ndarray,
    batch_size: int = 256,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> np.ndarray:
    """Embeddings ``(N, dim)`` float32 of ``(N, C, H, W)`` images (model in eval mode, no gradients)."""
    was = model.training
    model.eval()
    try:
        return _batched(model, images, batch_size, mean, std)
    finally:
        model.train(was)


class PatternIndex:
    """Cosine nearest-neighbour search over stored embeddings ``(N, D)``; ``meta`` (DataFrame, N rows) labels them."""

    def __init__(self, embeddings: np.ndarray, meta: pd.DataFrame | None = None):
        e = np.asarray(embeddings, dtype=np.float32)
        if e.ndim != 2 or len(e) == 0:
            raise DataError(f"embeddings must be a non-empty (N, D) array; got shape {e.shape}.")
        if meta is not None and len(meta) != len(e):
            raise DataError(f"meta has {len(meta)} rows for {len(e)} embeddings; pass one row per embedding.")
        self.embeddings = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
        self.meta = meta

    def __len__(self) -> int:
        return len(self.embeddings)

    def query(self, emb: np.ndarray, k: int = 5, exclude: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``k`` most similar stored rows for each query ``(Q, D)`` (or ``(D,)``): indices ``(Q, k)``, cosine ``(Q, k)``.

        ``exclude``: boolean ``(N,)`` (or ``(Q, N)``) mask of stored rows not to return, e.g. windows that
        end after the query's time (keeps a historical lookup causal).
        """
        q = np.atleast_2d(np.asarray(emb, dtype=np.float32))
        if q.shape[1] != self.embeddings.shape[1]:
            raise DataError(
                f"query has dimension {q.shape[1]}, the index {self.embeddings.shape[1]}; embed with the same model."
            )
        k = int(min(k, len(self)))
        if k < 1:
            raise SpecError(f"k={k} must be >= 1.")
        q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
        sims = q @ self.embeddings.T
        if exclude is not None:
            sims = np.where(np.broadcast_to(np.asarray(exclude, bool), sims.shape), -np.inf, sims)
        idx = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        part = np.take_along_axis(sims, idx, 1)
        order = np.argsort(-part, axis=1, kind="stable")
        return np.take_along_axis(idx, order, 1), np.take_along_axis(part, order, 1)

    def neighbours(self, emb: np.ndarray, k: int = 5) -> pd.DataFrame:
        """One query ``(D,)`` -> its ``k`` nearest rows of ``meta`` with a ``similarity`` column."""
        idx, sim = self.query(emb, k)
        rows = self.meta.iloc[idx[0]].copy() if self.meta is not None else pd.DataFrame(index=idx[0])
        rows["similarity"] = sim[0]
        return rows
