"""Multi-task heads: shared backbone, loss that ignores missing targets, single-head ONNX export."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from effnet_trading.errors import SpecError  # noqa: E402
from effnet_trading.imaging import ImageSpec  # noqa: E402
from effnet_trading.model_zoo.heads import DirectionOnly, MultiTaskModel, head_losses, multitask_loss  # noqa: E402

NAN = float("nan")


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return MultiTaskModel("compact", in_chans=1)


def _huber(err: np.ndarray, delta: float = 1.0) -> float:
    a = np.abs(err)
    return float(np.mean(np.where(a <= delta, 0.5 * a**2, delta * (a - 0.5 * delta))))


def _ce(logits: np.ndarray, y: np.ndarray) -> float:
    z = logits - logits.max(1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(1, keepdims=True))
    return float(-np.mean(logp[np.arange(len(y)), y]))


def test_outputs_one_entry_per_head_with_shared_features(model):
    x = torch.rand(4, 1, 32, 32)
    model.eval()
    with torch.no_grad():
        out = model(x)
        feats = model.forward_features(x)
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "direction": (4, 3),
        "regime": (4, 2),
        "volatility": (4,),
        "return": (4,),
    }
    lin = model.heads["regime"][1]
    assert torch.allclose(out["regime"], feats @ lin.weight.T + lin.bias, atol=1e-6)
    assert not any("classifier" in n and p.numel() for n, p in model.backbone.named_parameters())


def test_loss_ignores_missing_targets_and_matches_a_numpy_reference():
    g = torch.Generator().manual_seed(0)
    out = {
        "direction": torch.randn(6, 3, generator=g),
        "regime": torch.randn(6, 2, generator=g),
        "volatility": torch.randn(6, generator=g),
        "return": torch.randn(6, generator=g),
    }
    tgt = {
        "direction": torch.tensor([0, 2, -1, 1, -1, 2]),
        "regime": torch.tensor([1.0, NAN, 0.0, NAN, NAN, 1.0]),
        "volatility": torch.tensor([0.5, NAN, 3.0, 0.1, NAN, -2.0]),
        "return": torch.tensor([NAN] * 6),
    }
    parts = head_losses(out, tgt)
    o = {k: v.numpy() for k, v in out.items()}
    d_ok, r_ok, v_ok = np.array([0, 1, 3, 5]), np.array([0, 2, 5]), np.array([0, 2, 3, 5])
    assert parts["direction"].item() == pytest.approx(_ce(o["direction"][d_ok], np.array([0, 2, 1, 2])), rel=1e-5)
    assert parts["regime"].item() == pytest.approx(_ce(o["regime"][r_ok], np.array([1, 0, 1])), rel=1e-5)
    assert parts["volatility"].item() == pytest.approx(
        _huber(o["volatility"][v_ok] - np.array([0.5, 3.0, 0.1, -2.0])), rel=1e-5
    )
    assert parts["return"].item() == 0.0  # no target at all: contributes nothing
    w = {"direction": 2.0, "regime": 0.5, "volatility": 3.0}
    total = multitask_loss(out, tgt, w)
    ref = 2.0 * parts["direction"] + 0.5 * parts["regime"] + 3.0 * parts["volatility"]
    assert total.item() == pytest.approx(ref.item(), rel=1e-6)
    mse = head_losses(out, tgt, regression="mse")["volatility"].item()
    assert mse == pytest.approx(
        float(np.mean((o["volatility"][v_ok] - np.array([0.5, 3.0, 0.1, -2.0])) ** 2)), rel=1e-5
    )


def test_gradient_reaches_only_the_heads_with_targets(model):
    model.train()
    model.zero_grad()
    out = model(torch.rand(4, 1, 32, 32))
    loss = multitask_loss(out, {"regime": torch.tensor([0, 1, 1, 0]), "return": torch.tensor([NAN] * 4)})
    loss.backward()
    assert model.heads["regime"][1].weight.grad.abs().sum() > 0
    assert model.backbone.features[0][0].weight.grad.abs().sum() > 0
    for name in ("direction", "volatility"):
        assert model.heads[name][1].weight.grad is None
    assert model.heads["return"][1].weight.grad.abs().sum() == 0


@pytest.mark.slow
def test_short_training_lowers_every_head_loss():
    """Targets that are functions of the image: all four heads learn from the shared features."""
    torch.manual_seed(0)
    m = MultiTaskModel("compact", in_chans=1, drop_rate=0.0, drop_path_rate=0.0)
    x = torch.rand(48, 1, 16, 16)
    level = x.mean((1, 2, 3))
    top = x[:, :, :8].mean((1, 2, 3)) - x[:, :, 8:].mean((1, 2, 3))
    tgt = {
        "direction": torch.bucketize(top, torch.quantile(top, torch.tensor([1 / 3, 2 / 3]))),
        "regime": (level > level.median()).long(),
        "volatility": (x.std((1, 2, 3)) - 0.29) * 20,
        "return": top * 20,
    }
    opt = torch.optim.Adam(m.parameters(), 3e-3)
    first = None
    for _ in range(25):
        parts = head_losses(m(x), tgt)
        first = first or {k: v.item() for k, v in parts.items()}
        opt.zero_grad()
        sum(parts.values()).backward()
        opt.step()
    last = {k: v.item() for k, v in head_losses(m(x), tgt).items()}
    assert all(last[k] < 0.7 * first[k] for k in first), (first, last)


def test_bad_configuration_is_a_clear_error(model):
    with pytest.raises(SpecError, match="output count >= 1"):
        MultiTaskModel("compact", in_chans=1, heads={"direction": 0})
    with pytest.raises(SpecError, match=r"unknown heads \['dirction'\]"):
        multitask_loss({"direction": torch.zeros(2, 3)}, {"direction": torch.tensor([0, 1])}, {"dirction": 1.0})
    with pytest.raises(SpecError, match="no targets for any head"):
        multitask_loss({"direction": torch.zeros(2, 3)}, {"regime": torch.tensor([0, 1])})
    with pytest.raises(SpecError, match="not a classification head"):
        DirectionOnly(model, head="volatility")


@pytest.mark.slow
def test_direction_head_exports_to_onnx(model, tmp_path):
    from effnet_trading.model_zoo.export import export_onnx
    from effnet_trading.model_zoo.runtime import Predictor

    spec = ImageSpec("gasf", window=32, size=(32, 32))
    model.eval()
    export_onnx(DirectionOnly(model), tmp_path / "mt", spec=spec, architecture="multitask[compact]")
    x = np.random.default_rng(0).random((3, 1, 32, 32), dtype=np.float32)
    with torch.no_grad():
        ref = torch.softmax(model((torch.from_numpy(x) - 0.5) / 0.25)["direction"], 1).numpy()
    assert np.abs(Predictor(tmp_path / "mt", "cpu").predict(x) - ref).max() < 1e-4
