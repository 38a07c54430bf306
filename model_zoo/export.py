"""Export a trained torch model to a model folder (ONNX + card), verified numerically.

The exported graph is ``softmax(model((x - mean) / std))``: it takes rendered images in
[0, 1] and returns class probabilities, so every runtime feeds exactly what ``render`` makes.
Optional fp16 / INT8 variants are built beside it (``quantize.py``) before the folder is
renamed into place.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from effnet_trading.errors import ModelCardError, OutputError
from effnet_trading.imaging.spec import AnySpec
from effnet_trading.model_zoo.card import CARD_FILE, ONNX_FILE, VARIANT_FILES, ModelCard, sha256_file
from effnet_trading.model_zoo.quantize import add_variant
from effnet_trading.outputs import MANIFEST_FILE

__all__ = ["FP64_NOISE_FACTOR", "ExportWrapper", "export_onnx", "verify_onnx"]

DEFAULT_OPSET = 17


_OUTPUTS = ("softmax", "sigmoid")


class ExportWrapper(nn.Module):
    """Normalise in-graph, run the network, return probabilities (softmax over classes, or one
    sigmoid per label for multi-label models)."""

    def __init__(self, model: nn.Module, mean: Sequence[float], std: Sequence[float], output: str = "softmax"):
        super().__init__()
        if output not in _OUTPUTS:
            raise ModelCardError(f"output={output!r} is unknown; use one of {list(_OUTPUTS)}.")
        self.model, self.output = model, output
        self.register_buffer("mean", torch.tensor(list(mean), dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(list(std), dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        logits = self.model((images - self.mean) / self.std)
        return torch.sigmoid(logits) if self.output == "sigmoid" else torch.softmax(logits, dim=1)


def _onnx_probs(path: Path, images: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: images.astype(np.float32)})[0]


# How far onnxruntime may sit from the float64 result on an image, in multiples of torch float32's own distance
# from it on that image (see verify_onnx). Measured ratios: 3.7 (a trained B0 on noise images) and up to 5.1.
FP64_NOISE_FACTOR = 10.0


def _fp64_probs(wrapper: nn.Module, images: np.ndarray) -> np.ndarray:
    """The wrapper's output computed in float64 (a deep copy; the model itself stays float32)."""
    import copy

    with torch.no_grad():
        return copy.deepcopy(wrapper).double()(torch.from_numpy(images.astype(np.float64))).numpy()


def _per_image(diff: np.ndarray) -> np.ndarray:
    return np.abs(diff).reshape(len(diff), -1).max(axis=1)


def _check_onnx(
    wrapper: nn.Module, onnx_path: Path, images: np.ndarray, atol: float, what: str = "images"
) -> tuple[float, dict | None]:
    """``(max |torch - onnxruntime|, the float64 comparison where it was needed)``; raises when not faithful."""
    with torch.no_grad():
        ref = wrapper(torch.from_numpy(images.astype(np.float32))).numpy()
    got = _onnx_probs(onnx_path, images)
    n = len(images)
    for name, out in (("the torch model's own output", ref), ("ONNX output", got)):
        bad = int((~np.isfinite(out.reshape(n, -1))).any(axis=1).sum()) if out.size else 0
        if bad:
            raise ModelCardError(f"{name} is not finite (NaN or inf) on {bad} of {n} {what}; export refused.")
    err = float(np.max(np.abs(ref - got))) if ref.size else 0.0
    if err <= atol:
        return err, None
    exact = _fp64_probs(wrapper, images)
    torch_noise, onnx_err = _per_image(ref - exact), _per_image(got - exact)
    bound = atol + FP64_NOISE_FACTOR * torch_noise
    over = onnx_err > bound
    # the record names the image furthest over its bound, or, where none is, the one furthest from float64
    worst = int(np.argmax(np.where(over, onnx_err - bound, -np.inf))) if over.any() else int(np.argmax(onnx_err))
    record = {
        "checked_on": what,
        "image": worst,
        "onnx_vs_float64": float(onnx_err[worst]),
        "torch_float32_vs_float64": float(torch_noise[worst]),
        "allowed": float(bound[worst]),
    }
    if over.any():
        raise ModelCardError(
            f"ONNX output differs from torch by {err:.2e} (> {atol:.0e}) on {n} {what}; export is not faithful: "
            f"on image {worst} it is {onnx_err[worst]:.2e} from the float64 result, where torch float32 is "
            f"{torch_noise[worst]:.2e} (allowed: {bound[worst]:.2e})."
        )
    return err, record


def verify_onnx(wrapper: nn.Module, onnx_path: Path, images: np.ndarray, atol: float = 1e-4) -> float:
    """Max |torch - onnxruntime| on ``images``; raises ModelCardError when the export is not faithful.

    Faithful: finite, and within ``atol`` of torch float32; where the two differ by more (float32 rounding
    in an ill-conditioned net, e.g. a trained B0 on uniform-noise images with logits of ~400), onnxruntime
    must be, on every image, no further from the float64 result than ``atol`` plus FP64_NOISE_FACTOR times
    torch float32's own distance from it on that image.
    """
    return _check_onnx(wrapper, onnx_path, images, atol)[0]


def _export(wrapper: nn.Module, dummy: torch.Tensor, onnx_path: Path, opset: int) -> None:
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


def _calibration_record(calibration: dict[str, Any] | None, onnx_path: Path, shape: tuple[int, int, int]) -> dict:
    """The card's calibration record plus ``check``: the calibrated probabilities of the fixed probe batch."""
    from effnet_trading.model_zoo.calibration import apply_temperature, check_calibration, probe_images

    if not calibration:
        return {}
    t = check_calibration(calibration)
    probs = apply_temperature(_onnx_probs(onnx_path, probe_images(shape)).astype(np.float64), t)
    check = {"probe": "calibration.probe_images(input_shape): 4 uniform images, seed 0", "probs": probs.tolist()}
    return {k: v for k, v in calibration.items() if k != "check"} | {"check": check}


# what a model folder may hold: an export replaces such a folder whole, and refuses any other
_MODEL_FILES = {CARD_FILE, *VARIANT_FILES.values(), MANIFEST_FILE}


def _check_replaceable(out_dir: Path) -> None:
    """``out_dir`` is missing, empty or a model folder; anything else would be deleted by the swap."""
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise OutputError(f"model folder {out_dir} is a file; choose a folder path for the model.")
    foreign = sorted(p.name for p in out_dir.iterdir() if p.name not in _MODEL_FILES and not p.name.endswith(".tmp"))
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise OutputError(
            f"refusing to export into {out_dir}: it holds files that are not part of a model folder ({shown}) and "
            "an export replaces the whole folder. Choose a new or empty folder for the model."
        )


def _move_into_place(tmp_dir: Path, out_dir: Path) -> None:
    """Rename the finished folder over ``out_dir`` (``outputs.replace_folder``), once it is known to be replaceable."""
    from effnet_trading.outputs import replace_folder

    _check_replaceable(out_dir)
    replace_folder(tmp_dir, out_dir)


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
    fp16: bool = False,
    int8: bool = False,
    calib_images: np.ndarray | None = None,
    holdout_images: np.ndarray | None = None,
    holdout_labels: np.ndarray | None = None,
    calibration: dict[str, Any] | None = None,
    output: str = "softmax",
) -> ModelCard:
    """Write ``out_dir/model.onnx`` + ``card.json``; verify ONNX == torch on random and ``sample_images``.

    fp16: also write ``model_fp16.onnx`` (checked against fp32 on ``sample_images``).
    int8: also write ``model_int8.onnx``, calibrated on ``calib_images`` (training images);
    its agreement/accuracy change vs fp32 is measured on ``holdout_images``/``holdout_labels``.
    calibration: a temperature-scaling record (``{"method": "temperature", "temperature": T, ...}``)
    stored in the card and applied by the Predictor (the graph stays raw softmax); the card also
    records the calibrated probabilities of a fixed probe batch, which ``zoo verify`` re-computes.
    output: "softmax" (classes, rows sum to 1) or "sigmoid" (independent labels, multi-label models);
    recorded in the card's ``normalization["output"]``.
    The folder is written to a temporary sibling and renamed into place, so a failed
    export leaves nothing behind.
    """
    c, (h, w) = spec.channels, spec.size
    mean = [0.5] * c if mean is None else list(mean)
    std = [0.25] * c if std is None else list(std)
    wrapper = ExportWrapper(model, mean, std, output).eval().cpu()
    out_dir = Path(out_dir)
    _check_replaceable(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    if int8 and (calib_images is None or not len(calib_images)):
        raise ModelCardError(
            "int8=True needs calib_images: rendered training images to calibrate activation ranges on."
        )
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    os.chmod(tmp_dir, 0o755)  # mkdtemp makes 0700; a model folder is meant to be shared/read by services
    try:
        onnx_path = tmp_dir / ONNX_FILE
        dummy = torch.rand(2, c, h, w)
        with warnings.catch_warnings():  # the legacy exporter is chosen on purpose (stable, plain opset-17 graphs)
            warnings.simplefilter("ignore", DeprecationWarning)
            _export(wrapper, dummy, onnx_path, opset)
        os.chmod(onnx_path, 0o644)
        rng = np.random.default_rng(0)
        checks = [rng.random((4, c, h, w), dtype=np.float32)]
        if sample_images is not None and len(sample_images):
            checks.append(np.asarray(sample_images[:64], dtype=np.float32))
        names = ["random images", "sample images"]
        results = [_check_onnx(wrapper, onnx_path, x, atol, what) for x, what in zip(checks, names)]
        max_err = max(err for err, _ in results)
        fp64 = [info for _, info in results if info is not None]
        has_real = sample_images is not None and len(sample_images) > 0
        real = np.asarray(sample_images if has_real else checks[0], np.float32)
        card = ModelCard(
            name=name or out_dir.name,
            architecture=architecture,
            spec=spec,
            input_shape=(c, h, w),
            class_names=tuple(class_names),
            label=dict(label or {}),
            normalization={
                "mean": mean,
                "std": std,
                "applied": "in-graph: (x - mean) / std, x in [0, 1]",
                "output": output,
            },
            training=dict(training or {}),
            metrics=dict(metrics or {}),
            opset=opset,
            onnx_sha256=sha256_file(onnx_path),
            calibration=_calibration_record(calibration, onnx_path, (c, h, w)),
        )
        card.metrics.setdefault("export_max_abs_err", max_err)
        if fp64:  # onnxruntime was more than atol from torch float32: judged per image against float64
            card.metrics.setdefault("export_float64_check", fp64)
        card.metrics.setdefault("export_checked_on", "random + sample images" if has_real else "random images only")
        card.save(tmp_dir)
        if fp16:
            add_variant(
                tmp_dir,
                "fp16",
                real[:64],
                card=card,
                source="sample images" if has_real else "random images (no sample_images given)",
            )
        if int8:
            add_variant(
                tmp_dir,
                "int8",
                np.asarray(calib_images, np.float32)[:256],
                holdout=holdout_images,
                labels=holdout_labels,
                card=card,
            )
        _move_into_place(tmp_dir, out_dir)
        return card
    except BaseException:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise
