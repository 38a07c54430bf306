"""fp16 and INT8 variants of an exported model (onnx + onnxruntime + numpy; never torch).

``model_fp16.onnx``: weights and activations in float16, float32 inputs/outputs, softmax kept
in float32. ``model_int8.onnx``: static QDQ quantisation, per-channel weights, calibrated on
training images. Each variant is listed in ``card.variants`` with its sha256 and how far it
is from the float32 model on real images.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from effnet_trading.errors import ModelCardError, require
from effnet_trading.model_zoo.card import ONNX_FILE, VARIANT_FILES, ModelCard, load_card, sha256_file
from effnet_trading.outputs import atomic_file

__all__ = ["FP16_ATOL", "INT8_MEAN_ATOL", "convert_fp16", "quantize_int8", "compare_models", "add_variant", "run_onnx"]

FP16_ATOL = 1e-2  # max |p_fp16 - p_fp32| accepted on probabilities
INT8_MEAN_ATOL = 0.05  # mean |p_int8 - p_fp32| accepted on probabilities
_KEEP_FP32_OPS = ["Softmax"]  # probabilities are computed in float32 in every variant


def run_onnx(path: str | os.PathLike, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """Run an ONNX model on CPU: ``(N, C, H, W)`` float32 -> ``(N, K)`` float32."""
    ort = require("onnxruntime", "gpu")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = min(4, os.cpu_count() or 1)
    sess = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    images = np.ascontiguousarray(images, dtype=np.float32)
    parts = [sess.run(None, {name: images[i : i + batch_size]})[0] for i in range(0, len(images), batch_size)]
    return np.concatenate(parts).astype(np.float32) if parts else np.zeros((0, 0), np.float32)


def convert_fp16(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """Write a float16 copy of ``src`` with float32 inputs/outputs (casts at the boundaries)."""
    onnx = require("onnx", "train")
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

    model = onnx.load(str(src))
    half = convert_float_to_float16(
        model, keep_io_types=True, op_block_list=list(DEFAULT_OP_BLOCK_LIST) + _KEEP_FP32_OPS
    )
    onnx.save(half, str(dst))


class _ImageReader:
    """onnxruntime CalibrationDataReader over a ``(N, C, H, W)`` array, in small batches."""

    def __init__(self, input_name: str, images: np.ndarray, batch_size: int = 16):
        self._batches: Iterator[dict[str, np.ndarray]] = iter(
            {input_name: np.ascontiguousarray(images[i : i + batch_size], dtype=np.float32)}
            for i in range(0, len(images), batch_size)
        )

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._batches, None)


def quantize_int8(
    src: str | os.PathLike, dst: str | os.PathLike, calib_images: np.ndarray, *, per_channel: bool = True
) -> None:
    """Static INT8 (QDQ, per-channel weights, uint8 activations, MinMax) calibrated on ``calib_images``."""
    onnx = require("onnx", "train")
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    calib_images = np.asarray(calib_images, dtype=np.float32)
    if calib_images.ndim != 4 or len(calib_images) < 8:
        raise ModelCardError(
            f"INT8 calibration needs at least 8 rendered images (N, C, H, W); got shape {calib_images.shape}. "
            "Pass training images (e.g. `zoo export --int8 --calib-data train.csv`)."
        )
    reader_cls = type("_Reader", (_ImageReader, CalibrationDataReader), {})
    model = onnx.load(str(src))
    input_name = model.graph.input[0].name
    exclude = [n.name for n in model.graph.node if n.op_type in _KEEP_FP32_OPS]
    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        try:  # fold/fuse first (recommended before static quantisation)
            quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
            model = onnx.load(str(pre))
            exclude = [n.name for n in model.graph.node if n.op_type in _KEEP_FP32_OPS]
        except Exception:
            pre = Path(src)
        quantize_static(
            str(pre),
            str(dst),
            reader_cls(input_name, calib_images),
            quant_format=QuantFormat.QDQ,
            per_channel=per_channel,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
            nodes_to_exclude=exclude,
        )


def compare_models(ref_path, other_path, images: np.ndarray, labels: np.ndarray | None = None) -> dict[str, float]:
    """How far ``other`` is from ``ref`` on ``images``: max/mean |dp|, argmax agreement, accuracies if labelled."""
    ref, got = run_onnx(ref_path, images), run_onnx(other_path, images)
    diff = np.abs(ref - got)
    out = {
        "n_images": int(len(images)),
        "max_abs_err_vs_fp32": float(diff.max()) if diff.size else 0.0,
        "mean_abs_err_vs_fp32": float(diff.mean()) if diff.size else 0.0,
        "agreement_vs_fp32": float(np.mean(ref.argmax(1) == got.argmax(1))) if len(ref) else float("nan"),
    }
    if labels is not None:
        labels = np.asarray(labels)
        keep = labels >= 0
        if keep.any():
            out["accuracy_fp32"] = float(np.mean(ref.argmax(1)[keep] == labels[keep]))
            out["accuracy_variant"] = float(np.mean(got.argmax(1)[keep] == labels[keep]))
            out["accuracy_change"] = out["accuracy_variant"] - out["accuracy_fp32"]
    return out


def _build_variant(
    model_dir: Path, variant: str, images: np.ndarray, holdout, labels, source: str | None
) -> dict[str, Any]:
    """Write ``variant`` next to model.onnx (atomically) and return its card entry."""
    src = model_dir / ONNX_FILE
    dst = model_dir / VARIANT_FILES[variant]
    with atomic_file(dst) as tmp:
        if variant == "fp16":
            convert_fp16(src, tmp)
        else:
            quantize_int8(src, tmp, images)
        check = images if holdout is None else holdout
        stats = compare_models(src, tmp, check, None if holdout is None else labels)
        stats["checked_on"] = (
            "held-out images"
            if holdout is not None
            else (source or ("calibration images" if variant == "int8" else "sample images"))
        )
        if variant == "fp16" and stats["max_abs_err_vs_fp32"] > FP16_ATOL:
            raise ModelCardError(
                f"fp16 variant differs from fp32 by {stats['max_abs_err_vs_fp32']:.2e} (> {FP16_ATOL:.0e}); keep the fp32 model for this network."
            )
        if variant == "int8" and stats["mean_abs_err_vs_fp32"] > INT8_MEAN_ATOL:
            raise ModelCardError(
                f"INT8 variant's probabilities differ from fp32 by {stats['mean_abs_err_vs_fp32']:.3f} on average (> {INT8_MEAN_ATOL}); "
                "calibrate on more / more representative training images, or keep the fp32 model."
            )
    entry: dict[str, Any] = {"file": dst.name, "sha256": sha256_file(dst)}
    if variant == "int8":
        entry.update(
            format="QDQ", per_channel=True, activations="uint8", weights="int8", calibration_images=int(len(images))
        )
    entry.update(stats)
    return entry


def add_variant(
    model_dir: str | os.PathLike,
    variant: str,
    images: np.ndarray,
    *,
    holdout: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    card: ModelCard | None = None,
    source: str | None = None,
) -> ModelCard:
    """Add an 'fp16' or 'int8' variant to a model folder and record it (file, sha256, error vs fp32) in the card.

    images: fp16 -> real sample images to check against fp32; int8 -> training images to calibrate on.
    holdout/labels: held-out images (and labels) on which the change vs fp32 is reported.
    source: what ``images`` are, recorded as ``checked_on`` when no holdout is given.
    """
    if variant not in ("fp16", "int8"):
        raise ModelCardError(f"unknown variant {variant!r}; expected 'fp16' or 'int8'.")
    model_dir = Path(model_dir)
    card = load_card(model_dir, variant="fp32") if card is None else card
    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 4 or tuple(images.shape[1:]) != tuple(card.input_shape):
        raise ModelCardError(
            f"{variant} images have shape {images.shape}; model expects (N, {', '.join(map(str, card.input_shape))}). Render them with the model's spec."
        )
    card.variants[variant] = _build_variant(model_dir, variant, images, holdout, labels, source)
    card.save(model_dir)
    return card
