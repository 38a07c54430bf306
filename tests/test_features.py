"""Frozen features -> GBM, and pattern embeddings with nearest-neighbour search."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from effnet_trading.errors import DataError, SpecError  # noqa: E402
from effnet_trading.model_zoo import create_model  # noqa: E402
from effnet_trading.model_zoo.embedding import (  # noqa: E402
    EmbeddingModel,
    PatternIndex,
    batch_all_triplet_loss,
    batch_hard_triplet_loss,
    contrastive_loss,
    embed,
    train_embedding,
    triplet_loss,
)
from effnet_trading.model_zoo.features import extract_features, fit_gbm_on_features  # noqa: E402


def _families(n: int, size: int = 16, noise: float = 0.35, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two pattern families of price-path pictures, ``(n, 1, size, size)`` float32: U-shaped (0) and inverted U (1)."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    t = np.linspace(-1, 1, size)
    rows = np.arange(size)[:, None]
    imgs = np.zeros((n, 1, size, size), np.float32)
    for i in range(n):
        curve = np.where(y[i] == 0, t**2, -(t**2)) * 0.6 + rng.uniform(-0.3, 0.3)
        px = np.round((1 - (curve + 1) / 2) * (size - 1)).astype(int)
        imgs[i, 0] = np.abs(rows - px[None, :]) <= 1
    return np.clip(imgs + rng.normal(0, noise, imgs.shape), 0, 1).astype(np.float32), y


def _knn_purity(model, x: np.ndarray, y: np.ndarray, k: int = 5) -> float:
    """Share of each image's k nearest neighbours (itself excluded) from its own family."""
    e = embed(model, x)
    idx, _ = PatternIndex(e).query(e, k + 1)
    return float((y[idx[:, 1:]] == y[:, None]).mean())


def test_extract_features_matches_forward_features():
    torch.manual_seed(0)
    model = create_model("small_cnn", in_chans=2, widths=(8, 16)).eval()
    imgs = np.random.default_rng(0).integers(0, 256, (7, 2, 16, 16), dtype=np.uint8)
    idx = pd.date_range("2024-01-01", periods=7, freq="5min", tz="UTC")
    mean, std = [0.4, 0.5], [0.2, 0.3]
    df = extract_features(model, imgs, batch_size=3, index=idx, mean=mean, std=std)
    assert list(df.columns) == [f"f{i}" for i in range(model.num_features)] and df.index.equals(idx)
    x = (torch.from_numpy(imgs.astype(np.float32) / 255) - torch.tensor(mean).view(1, 2, 1, 1)) / torch.tensor(
        std
    ).view(1, 2, 1, 1)
    with torch.no_grad():
        ref = model.forward_features(x).numpy()
    np.testing.assert_allclose(df.to_numpy(), ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        extract_features(model, imgs.astype(np.float32) / 255, mean=mean, std=std).to_numpy(), ref, rtol=1e-5, atol=1e-6
    )  # uint8 and float [0, 1] are the same images


def test_extract_features_errors():
    model = create_model("small_cnn", in_chans=1, widths=(8,))
    with pytest.raises(DataError, match="index has 2 labels for 3 images"):
        extract_features(model, np.zeros((3, 1, 8, 8), np.float32), index=[0, 1])
    with pytest.raises(DataError, match=r"must be \(N, C, H, W\)"):
        extract_features(model, np.zeros((3, 8, 8), np.float32))
    with pytest.raises(SpecError, match="no forward_features"):
        extract_features(torch.nn.Identity(), np.zeros((3, 1, 8, 8), np.float32))


@pytest.mark.parametrize("kind", ["lightgbm", "sklearn"])
def test_gbm_on_frozen_features_separates_pattern_families(kind):
    """Frozen features of a small CNN (random weights) already separate U from inverted-U paths."""
    torch.manual_seed(0)
    model = create_model("small_cnn", in_chans=1, widths=(8, 16, 32)).eval()
    x, y = _families(320, noise=0.3)
    f = extract_features(model, x).to_numpy()
    extra = {"n_jobs": 1} if kind == "lightgbm" else {}
    fitted, m = fit_gbm_on_features(f[:200], y[:200], f[200:], y[200:], kind=kind, **extra)
    assert m["n_train"] == 200 and m["n_valid"] == 120 and m["majority_rate"] == 0.5
    assert m["accuracy"] > 0.9, m
    assert fitted.predict_proba(f[:3]).shape == (3, 2)


def test_gbm_finds_nothing_in_random_labels():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(600, 8)), rng.integers(0, 3, 600)
    _, m = fit_gbm_on_features(x[:400], y[:400], x[400:], y[400:], kind="sklearn", max_iter=50)
    assert m["accuracy"] < m["majority_rate"] + 0.1 and m["log_loss"] > 1.0


def test_gbm_errors():
    x = np.zeros((10, 2))
    with pytest.raises(SpecError, match="kind='xgboost' is unknown"):
        fit_gbm_on_features(x, np.arange(10) % 2, x, np.arange(10) % 2, kind="xgboost")
    with pytest.raises(DataError, match="single class"):
        fit_gbm_on_features(x, np.zeros(10), x, np.zeros(10))
    with pytest.raises(DataError, match="NaN/inf"):
        fit_gbm_on_features(np.full((10, 2), np.nan), np.arange(10) % 2, x, np.arange(10) % 2)


def test_losses_against_hand_computed_values():
    e = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0], [-1.0, 0.0]]), dim=1)
    # cosine distances from e0: e1 0.2, e2 1.0, e3 2.0
    assert triplet_loss(e[:1], e[1:2], e[2:3], margin=0.2).item() == pytest.approx(0.0)
    assert triplet_loss(e[:1], e[2:3], e[1:2], margin=0.2).item() == pytest.approx(1.0)
    assert contrastive_loss(e[:1], e[1:2], torch.tensor([1.0])).item() == pytest.approx(0.04)
    assert contrastive_loss(e[:1], e[1:2], torch.tensor([0.0]), margin=0.5).item() == pytest.approx(0.09)
    labels = torch.tensor([0, 0, 1, 1])
    # batch-hard, anchor e0: hardest positive e1 (0.2), nearest negative e2 (1.0) -> 0
    # anchor e2: positive e3 at d=1.0, nearest negative e1 at 1-0.6=0.4 -> 1.0 - 0.4 + 0.2 = 0.8
    hard = batch_hard_triplet_loss(e, labels, margin=0.2)
    d = (1 - e @ e.T).numpy()
    ref = np.mean(
        [
            max(0.0, d[a, p] - min(d[a, n] for n in range(4) if labels[n] != labels[a]) + 0.2)
            for a, p in [(0, 1), (1, 0), (2, 3), (3, 2)]
        ]
    )
    assert hard.item() == pytest.approx(ref, rel=1e-5)
    trip = [
        max(0.0, d[a, p] - d[a, n] + 0.2)
        for a, p in [(0, 1), (1, 0), (2, 3), (3, 2)]
        for n in range(4)
        if labels[n] != labels[a]
    ]
    assert batch_all_triplet_loss(e, labels, 0.2).item() == pytest.approx(np.mean([t for t in trip if t > 0]), rel=1e-5)


def test_pattern_index_matches_brute_force():
    rng = np.random.default_rng(0)
    emb, q = rng.normal(size=(50, 8)), rng.normal(size=(4, 8))
    meta = pd.DataFrame({"ts": pd.date_range("2024", periods=50, freq="h")})
    index = PatternIndex(emb, meta)
    idx, sim = index.query(q, k=5)
    cos = (q / np.linalg.norm(q, axis=1, keepdims=True)) @ (emb / np.linalg.norm(emb, axis=1, keepdims=True)).T
    assert np.array_equal(idx, np.argsort(-cos, axis=1)[:, :5])
    np.testing.assert_allclose(sim, np.sort(cos, axis=1)[:, ::-1][:, :5], rtol=1e-5)
    later = np.arange(50) >= 25  # a causal lookup: only windows before the query
    idx2, _ = index.query(q[0], k=3, exclude=later)
    assert (idx2 < 25).all()
    nb = index.neighbours(q[0], k=2)
    assert list(nb.columns) == ["ts", "similarity"] and nb["ts"].iloc[0] == meta["ts"].iloc[idx[0, 0]]
    with pytest.raises(DataError, match="dimension 3, the index 8"):
        index.query(np.zeros(3))


@pytest.mark.slow
def test_embedding_training_groups_pattern_families():
    """After brief triplet training, nearest neighbours are mostly the same family, unlike before training."""
    x, y = _families(256)
    xt, yt = _families(200, seed=1)
    torch.manual_seed(0)
    model = EmbeddingModel("compact", in_chans=1, dim=32)
    before = _knn_purity(model, xt, yt)
    history = train_embedding(model, x, y, epochs=4, batch_size=32, lr=1e-3, seed=0)
    after = _knn_purity(model, xt, yt)
    assert len(history) == 4
    assert after > 0.8 and after > before + 0.15, (before, after, history)
    e = embed(model, xt[:4])
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, rtol=1e-5)


def test_train_embedding_errors():
    model = EmbeddingModel("small_cnn", in_chans=1, dim=4, widths=(4,))
    x = np.zeros((4, 1, 8, 8), np.float32)
    with pytest.raises(DataError, match="single class"):
        train_embedding(model, x, np.zeros(4), epochs=1)
    with pytest.raises(DataError, match="4 images but 3 labels"):
        train_embedding(model, x, np.zeros(3), epochs=1)
    with pytest.raises(SpecError, match="mining='semi' is unknown"):
        train_embedding(model, x, np.arange(4) % 2, epochs=1, mining="semi")
