"""Inference runtime: onnxruntime + numpy only (never torch).

``Predictor(model_dir)`` loads a checked model folder and maps rendered images
``(N, C, H, W)`` float32 in [0, 1] to probabilities ``(N, K)`` float32.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from effnet_trading.errors import ModelCardError, require
from effnet_trading.model_zoo.card import ONNX_FILE, ModelCard, load_card

__all__ = ["Predictor", "resolve_providers", "LatencyRecorder"]

_PROVIDER_ORDER = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")


def resolve_providers(providers: str | Sequence[str] = "auto") -> list[str]:
    """'auto' -> TensorRT, CUDA, CPU in that order, where this onnxruntime build has them."""
    ort = require("onnxruntime", "gpu")
    available = ort.get_available_providers()
    if providers == "auto":
        return [p for p in _PROVIDER_ORDER if p in available] or ["CPUExecutionProvider"]
    if providers in ("cpu", "CPU"):
        return ["CPUExecutionProvider"]
    chosen = [providers] if isinstance(providers, str) else list(providers)
    missing = [p for p in chosen if p not in available]
    if missing:
        raise ModelCardError(
            f"onnxruntime provider(s) {missing} are not available (have {available}); "
            'for GPU install "effnet-trading[gpu]" (onnxruntime-gpu), or use providers="auto".'
        )
    return chosen


class LatencyRecorder:
    """Per-call latency samples (ms) with percentiles; bounded memory."""

    def __init__(self, maxlen: int = 10_000):
        self._samples: list[float] = []
        self._maxlen = maxlen

    def add(self, ms: float) -> None:
        self._samples.append(ms)
        if len(self._samples) > self._maxlen:
            del self._samples[: len(self._samples) - self._maxlen]

    @property
    def samples(self) -> np.ndarray:
        return np.asarray(self._samples, dtype=np.float64)

    def percentiles(self, qs=(50, 95, 99)) -> dict[str, float]:
        s = self.samples
        if not len(s):
            return {f"p{q}": float("nan") for q in qs}
        return {f"p{q}": float(np.percentile(s, q)) for q in qs}


class Predictor:
    """One onnxruntime session over a model folder.

    providers: "auto" (TensorRT -> CUDA -> CPU where available), "cpu", or a list.
    batch_size: fixed micro-batch; the tail is padded so the session sees one shape.
    """

    def __init__(
        self,
        model_dir: str | os.PathLike,
        providers: str | Sequence[str] = "auto",
        *,
        batch_size: int = 64,
        intra_op_threads: int | None = None,
    ):
        ort = require("onnxruntime", "gpu")
        self.model_dir = Path(model_dir)
        self.card: ModelCard = load_card(self.model_dir)
        self.providers = resolve_providers(providers)
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.intra_op_num_threads = intra_op_threads or min(4, os.cpu_count() or 1)
        opts.inter_op_num_threads = 1
        # Idle worker threads spin and burn CPU between sparse (live) calls: turn spinning off.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(self.model_dir / ONNX_FILE), sess_options=opts, providers=self.providers)
        self.input_name = self.session.get_inputs()[0].name
        self.batch_size = int(batch_size)
        self.latency = LatencyRecorder()

    @property
    def spec(self):
        return self.card.spec

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.card.class_names

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return self.card.input_shape

    def _check(self, images: np.ndarray) -> np.ndarray:
        images = np.asarray(images)
        if images.dtype == np.uint8:
            images = images.astype(np.float32) / 255.0
        if images.ndim != 4 or tuple(images.shape[1:]) != tuple(self.input_shape):
            raise ModelCardError(
                f"images of shape {images.shape} do not fit model {self.card.name!r}, which expects (N, {', '.join(map(str, self.input_shape))}); "
                "render them with the model's own spec (predictor.spec)."
            )
        return np.ascontiguousarray(images, dtype=np.float32)

    def predict(self, images: np.ndarray, closes: np.ndarray | None = None) -> np.ndarray:
        """``(N, C, H, W)`` in [0, 1] -> ``(N, K)`` float32 probabilities (``closes`` is unused here)."""
        images = self._check(images)
        n = len(images)
        out = np.empty((n, len(self.class_names)), dtype=np.float32)
        bs = self.batch_size
        for start in range(0, n, bs):
            part = images[start : start + bs]
            if len(part) < bs and n > bs:  # pad the tail to the fixed micro-batch shape
                part = np.concatenate([part, np.zeros((bs - len(part), *part.shape[1:]), np.float32)])
            t0 = time.perf_counter()
            probs = self.session.run(None, {self.input_name: part})[0]
            self.latency.add((time.perf_counter() - t0) * 1e3)
            out[start : start + bs] = probs[: min(bs, n - start)]
        return out
