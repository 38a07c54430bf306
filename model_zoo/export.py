"""Export a trained torch model to a model folder (ONNX + card), verified numerically.

The exported graph is ``softmax(model((x - mean) / std))``: it takes rendered images in
[0, 1] and returns class probabilities, so every runtime feeds exactly what ``render`` makes.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from effnet_trading.errors import ModelCardError
from effnet_trading.imaging.spec import AnySpec
from effnet_trading.model_zoo.card import ONNX_FILE, ModelCard, sha256_file

__all__ = ["ExportWrapper", "export_onnx", "verify_onnx"]

DEFAULT_OPSET = 17


class ExportWrapper(nn.Module):
    """Normalise in-graph, run the network, return probabilities."""

    def __init__(self, model: nn.Module, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.tensor(list(mean), dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(list(std), dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.model((images - self.mean) / self.std), dim=1)


def _onnx_probs(path: Path, images: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: images.astype(np.float32)})[0]


def verify_onnx(wrapper: nn.Module, onnx_path: Path, images: np.ndarray, atol: float = 1e-4) -> float:
    """Max |torch - onnxruntime| on ``images``; raises ModelCardError above ``atol``."""
    with torch.no_grad():
        ref = wrapper(torch.from_numpy(images.astype(np.float32))).numpy()
    got = _onnx_probs(onnx_path, images)
    err = float(np.max(np.abs(ref - got))) if ref.size else 0.0
    if err > atol:
        raise ModelCardError(f"ONNX output differs from torch by {err:.2e} (> {atol:.0e}) on {len(images)} images; export is not faithful.")
    return err


def export_onnx(
    model: nn.Module,
    out_dir: str | os.PathLike,
    *,
    spec: AnySpec,
    architecture: str,
    name: str | None = None,
    class_names: Sequence[str] = ("sell", "hold", "buy"),
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    label: dict[str, Any] | None = None,
    training: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    sample_images: np.ndarray | None = None,
    opset: int = DEFAULT_OPSET,
    atol: float = 1e-4,
) -> ModelCard:
    """Write ``out_dir/model.onnx`` + ``card.json``; verify ONNX == torch on random and ``sample_images``.

    The folder is written to a temporary sibling and renamed into place, so a failed
    export leaves nothing behind.
    """
    c, (h, w) = spec.channels, spec.size
    mean = [0.5] * c if mean is None else list(mean)
    std = [0.25] * c if std is None else list(std)
    wrapper = ExportWrapper(model, mean, std).eval().cpu()
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        onnx_path = tmp_dir / ONNX_FILE
        dummy = torch.rand(2, c, h, w)
        torch.onnx.export(
            wrapper,
            (dummy,),
            str(onnx_path),
            input_names=["images"],
            output_names=["probs"],
            dynamic_axes={"images": {0: "batch"}, "probs": {0: "batch"}},
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False,
        )
        rng = np.random.default_rng(0)
        checks = [rng.random((4, c, h, w), dtype=np.float32)]
        if sample_images is not None and len(sample_images):
            checks.append(np.asarray(sample_images[:16], dtype=np.float32))
        max_err = max(verify_onnx(wrapper, onnx_path, x, atol) for x in checks)
        card = ModelCard(
            name=name or out_dir.name,
            architecture=architecture,
            spec=spec,
            input_shape=(c, h, w),
            class_names=tuple(class_names),
            label=dict(label or {}),
            normalization={"mean": mean, "std": std, "applied": "in-graph: (x - mean) / std, x in [0, 1]"},
            training=dict(training or {}),
            metrics=dict(metrics or {}),
            opset=opset,
            onnx_sha256=sha256_file(onnx_path),
        )
        card.metrics.setdefault("export_max_abs_err", max_err)
        card.save(tmp_dir)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        tmp_dir.replace(out_dir)
        return card
    except BaseException:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise
