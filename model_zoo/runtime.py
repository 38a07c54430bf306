"""Inference runtime: onnxruntime + numpy only (never torch).

``Predictor(model_dir)`` loads a checked model folder and maps rendered images
``(N, C, H, W)`` float32 in [0, 1] (or uint8 in [0, 255]) to probabilities ``(N, K)`` float32.
A calibrated card (``card.calibration``) has its temperature applied to the graph's output.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from effnet_trading.errors import ModelCardError, require
from effnet_trading.model_zoo.calibration import apply_temperature
from effnet_trading.model_zoo.card import ModelCard, load_card

__all__ = ["Predictor", "resolve_providers", "LatencyRecorder", "default_threads"]

_PROVIDER_ORDER = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
_GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")
_HIST_EDGES_MS = np.concatenate([[0.0], np.geomspace(0.05, 10_000.0, 25)])  # log-spaced latency bins (ms)


def resolve_providers(providers: str | Sequence[str] = "auto") -> list[str]:
    """'auto' -> TensorRT, CUDA, CPU in that order, where this onnxruntime build has them; 'cpu' -> CPU only."""
    ort = require("onnxruntime", "gpu")
    available = ort.get_available_providers()
    if isinstance(providers, str) and providers.lower() == "auto":
        return [p for p in _PROVIDER_ORDER if p in available] or ["CPUExecutionProvider"]
    if isinstance(providers, str) and providers.lower() == "cpu":
        return ["CPUExecutionProvider"]
    chosen = [providers] if isinstance(providers, str) else list(providers)
    missing = [p for p in chosen if p not in available]
    if missing:
        raise ModelCardError(
            f"onnxruntime provider(s) {missing} are not available (have {available}); "
            'for GPU install "effnet-trading[gpu]" (onnxruntime-gpu), or use providers="auto".'
        )
    return chosen


def default_threads() -> int:
    """Intra-op threads: the cores this process may use, at most 4 (more rarely helps small CNNs)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(4, cores))


class LatencyRecorder:
    """Per-call latency samples (ms): percentiles and a log-binned histogram; bounded memory."""

    def __init__(self, maxlen: int = 10_000):
        self._samples: deque[float] = deque(maxlen=maxlen)
        self.total_calls = 0

    def add(self, ms: float) -> None:
        self._samples.append(float(ms))
        self.total_calls += 1

    def reset(self) -> None:
        self._samples.clear()
        self.total_calls = 0

    def __len__(self) -> int:
        return len(self._samples)

    @property
    def samples(self) -> np.ndarray:
        """The kept samples (ms), oldest first, ``(n,)`` float64."""
        return np.asarray(self._samples, dtype=np.float64)

    def percentiles(self, qs=(50, 95, 99)) -> dict[str, float]:
        """``{"p50": ms, "p95": ms, "p99": ms}`` (NaN before the first call)."""
        s = self.samples
        if not len(s):
            return {f"p{q}": float("nan") for q in qs}
        return {f"p{q}": float(np.percentile(s, q)) for q in qs}

    def histogram(self, edges: Sequence[float] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(counts (B,) int64, edges (B+1,) ms)``; samples beyond the last edge count in the last bin."""
        bins = _HIST_EDGES_MS if edges is None else np.asarray(edges, dtype=np.float64)
        counts, _ = np.histogram(np.clip(self.samples, bins[0], bins[-1]), bins=bins)
        return counts.astype(np.int64), bins


class Predictor:
    """One onnxruntime session over a model folder.

    providers: "auto" (TensorRT -> CUDA -> CPU where available), "cpu", or a list.
    variant: "fp32" (model.onnx), "fp16" or "int8" (must be listed in the card).
    batch_size: fixed micro-batch; longer inputs run in micro-batches and the tail is padded so
    the session always sees one shape (on CUDA every call is padded and uses IO binding).
    """

    def __init__(
        self,
        model_dir: str | os.PathLike,
        providers: str | Sequence[str] = "auto",
        *,
        batch_size: int = 64,
        intra_op_threads: int | None = None,
        variant: str = "fp32",
    ):
        ort = require("onnxruntime", "gpu")
        self.model_dir = Path(model_dir)
        self.variant = variant
        self.card: ModelCard = load_card(self.model_dir, variant=variant)
        self.providers = resolve_providers(providers)
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.intra_op_num_threads = int(intra_op_threads or default_threads())
        opts.inter_op_num_threads = 1
        # Idle worker threads spin and burn CPU between sparse (live) calls: turn spinning off.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        onnx_path = self.model_dir / self.card.variant_file(variant)
        try:
            self.session = ort.InferenceSession(str(onnx_path), sess_options=opts, providers=self.providers)
        except Exception as exc:  # onnxruntime raises its own (protobuf, graph) error types
            first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            raise ModelCardError(
                f"{onnx_path.name} in {str(self.model_dir)!r} cannot be loaded by onnxruntime ({first}); the file is "
                "corrupt or not an ONNX model although its sha256 matches card.json (the card was rewritten after "
                "the file changed). Restore the original file or re-export the model (`effnet-trading zoo export` / `train`)."
            ) from exc
        self._check_graph()
        self.temperature = self.card.temperature  # 1.0 = uncalibrated: output as the graph returns it
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = self.session.get_outputs()[0].name
        if batch_size < 1:
            raise ModelCardError(f"batch_size must be >= 1, got {batch_size}.")
        self.batch_size = int(batch_size)
        self.latency = LatencyRecorder()
        self.use_io_binding = "CUDAExecutionProvider" in self.session.get_providers()
        self._bind_device = "cuda"  # where bound buffers live (tests exercise the path with "cpu")
        self._binding: tuple[Any, Any, Any] | None = None  # (io binding, input OrtValue, output OrtValue)

    def _check_graph(self) -> None:
        """The ONNX graph's input (C, H, W) and output K must match the card."""
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        dims = list(inputs[0].shape)
        if len(dims) != 4 or any(isinstance(d, int) and d != want for d, want in zip(dims[1:], self.card.input_shape)):
            raise ModelCardError(
                f"{self.card.variant_file(self.variant)} takes input {dims} but card.json declares (N, {', '.join(map(str, self.card.input_shape))}): "
                "the ONNX file and the card come from different exports; re-export the model folder."
            )
        k = outputs[0].shape[-1] if outputs[0].shape else None
        if isinstance(k, int) and k != len(self.card.class_names):
            raise ModelCardError(
                f"the ONNX model outputs {k} classes but card.json names {len(self.card.class_names)} {list(self.card.class_names)}; re-export the model folder."
            )

    @property
    def spec(self):
        return self.card.spec

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.card.class_names

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return self.card.input_shape

    @property
    def name(self) -> str:
        return self.card.name if self.variant == "fp32" else f"{self.card.name}[{self.variant}]"

    def _check(self, images: np.ndarray) -> np.ndarray:
        images = np.asarray(images)
        if images.ndim != 4 or tuple(images.shape[1:]) != tuple(self.input_shape):
            raise ModelCardError(
                f"images of shape {images.shape} do not fit model {self.card.name!r}, which expects (N, {', '.join(map(str, self.input_shape))}); "
                "render them with the model's own spec (predictor.spec)."
            )
        if images.dtype == np.uint8:
            return np.multiply(images, np.float32(1 / 255.0), dtype=np.float32)
        return np.ascontiguousarray(images, dtype=np.float32)

    def _run_cpu(self, part: np.ndarray) -> np.ndarray:
        return self.session.run([self.output_name], {self.input_name: part})[0]

    def _run_bound(self, part: np.ndarray) -> np.ndarray:
        """CUDA: fixed-shape device buffers bound once, refilled per micro-batch (no per-call allocation)."""
        ort = require("onnxruntime", "gpu")
        if self._binding is None:
            shape_in = (self.batch_size, *self.input_shape)
            x = ort.OrtValue.ortvalue_from_shape_and_type(shape_in, np.float32, self._bind_device, 0)
            y = ort.OrtValue.ortvalue_from_shape_and_type(
                (self.batch_size, len(self.class_names)), np.float32, self._bind_device, 0
            )
            binding = self.session.io_binding()
            binding.bind_ortvalue_input(self.input_name, x)
            binding.bind_ortvalue_output(self.output_name, y)
            self._binding = (binding, x, y)
        binding, x, y = self._binding
        x.update_inplace(part)
        self.session.run_with_iobinding(binding)
        return y.numpy()

    def predict(self, images: np.ndarray, closes: np.ndarray | None = None) -> np.ndarray:
        """``(N, C, H, W)`` in [0, 1] (or uint8) -> ``(N, K)`` float32 probabilities (``closes`` is unused here)."""
        if self.session is None:
            raise ModelCardError(f"predictor for {self.card.name!r} is closed; create a new Predictor.")
        images = self._check(images)
        n = len(images)
        out = np.empty((n, len(self.class_names)), dtype=np.float32)
        bs = self.batch_size
        run = self._run_bound if self.use_io_binding else self._run_cpu
        for start in range(0, n, bs):
            part = images[start : start + bs]
            m = len(part)
            # Pad the tail so the session sees one shape (always on CUDA, where shapes are bound).
            if m < bs and (n > bs or self.use_io_binding):
                part = np.concatenate([part, np.zeros((bs - m, *part.shape[1:]), np.float32)])
            t0 = time.perf_counter()
            probs = run(part)
            self.latency.add((time.perf_counter() - t0) * 1e3)
            out[start : start + m] = probs[:m]
        return out if self.temperature == 1.0 else apply_temperature(out, self.temperature)

    def warmup(self, n_calls: int = 2) -> None:
        """Run a few calls on blank images (first-call allocation / kernel selection) without recording latency."""
        sizes = (self.batch_size,) if self.use_io_binding else (1, self.batch_size)
        run = self._run_bound if self.use_io_binding else self._run_cpu
        for _ in range(max(1, n_calls)):
            for size in sizes:
                run(np.zeros((size, *self.input_shape), np.float32))

    def close(self) -> None:
        """Release the session (and any bound device buffers)."""
        self._binding = None
        self.session = None

    def __enter__(self) -> Predictor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Predictor({str(self.model_dir)!r}, variant={self.variant!r}, providers={self.providers})"
