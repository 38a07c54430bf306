"""Model cards: every exported model is a folder ``model.onnx`` + ``card.json`` (numpy-free, torch-free).

The ONNX graph takes rendered images ``(N, C, H, W)`` float32 in [0, 1] (normalisation is
inside the graph) and returns class probabilities ``(N, K)``. Loading checks the file hash
and the spec, so a mismatch is an error, never a silent wrong prediction.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from effnet_trading.errors import ModelCardError, SpecError
from effnet_trading.imaging.spec import AnySpec, spec_from_dict

__all__ = ["CARD_FILE", "ONNX_FILE", "ModelCard", "sha256_file", "load_card", "versions"]

CARD_FILE = "card.json"
ONNX_FILE = "model.onnx"
CARD_VERSION = 1


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def versions() -> dict[str, str]:
    """Versions of the packages that matter for reproducing a model."""
    out = {"python": platform.python_version()}
    for mod in ("effnet_trading", "numpy", "torch", "onnx", "onnxruntime"):
        try:
            out[mod] = __import__(mod).__version__
        except Exception:
            continue
    return out


@dataclass
class ModelCard:
    """What a model is, what it sees, how it was trained and validated."""

    name: str
    architecture: str
    spec: AnySpec
    input_shape: tuple[int, int, int]  # (C, H, W)
    class_names: tuple[str, ...] = ("sell", "hold", "buy")
    label: dict[str, Any] = field(default_factory=dict)  # rule, horizon, k/threshold
    normalization: dict[str, Any] = field(default_factory=dict)  # per-channel mean/std applied in-graph
    training: dict[str, Any] = field(default_factory=dict)  # span, samples, config
    metrics: dict[str, Any] = field(default_factory=dict)  # validation metrics + the split used
    opset: int = 17
    onnx_sha256: str = ""
    variants: dict[str, dict[str, str]] = field(default_factory=dict)  # name -> {"file", "sha256"}
    versions: dict[str, str] = field(default_factory=versions)
    card_version: int = CARD_VERSION

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["spec"] = self.spec.to_dict()
        d["input_shape"] = list(self.input_shape)
        d["class_names"] = list(self.class_names)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelCard":
        try:
            d = dict(d)
            d["spec"] = spec_from_dict(d["spec"])
            d["input_shape"] = tuple(int(x) for x in d["input_shape"])
            d["class_names"] = tuple(d["class_names"])
            known = set(cls.__dataclass_fields__)
            return cls(**{k: v for k, v in d.items() if k in known})
        except (KeyError, TypeError, SpecError) as exc:
            raise ModelCardError(f"card.json is malformed ({exc}); re-export the model with `effnet-trading zoo export`.") from exc

    def save(self, model_dir: str | os.PathLike) -> Path:
        """Write ``card.json`` atomically (temp file + rename)."""
        path = Path(model_dir) / CARD_FILE
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")
        tmp.replace(path)
        return path

    def check_spec(self) -> None:
        """The spec must render exactly the declared input shape."""
        want = (self.spec.channels, *self.spec.size)
        if tuple(self.input_shape) != want:
            raise ModelCardError(
                f"card input_shape {list(self.input_shape)} disagrees with its ImageSpec, which renders {list(want)}; "
                "the card was edited or written by a different version: re-export the model."
            )


def load_card(model_dir: str | os.PathLike, *, verify_hash: bool = True) -> ModelCard:
    """Load and check ``card.json`` in ``model_dir``: file present, hash of model.onnx, spec/shape agree."""
    model_dir = Path(model_dir)
    card_path = model_dir / CARD_FILE
    if not model_dir.is_dir():
        raise ModelCardError(f"model folder {str(model_dir)!r} does not exist; export one with `effnet-trading zoo export` or train with `effnet-trading train`.")
    if not card_path.exists():
        raise ModelCardError(f"{str(card_path)!r} is missing: a model folder holds model.onnx + card.json; re-export it.")
    try:
        card = ModelCard.from_dict(json.loads(card_path.read_text()))
    except json.JSONDecodeError as exc:
        raise ModelCardError(f"{str(card_path)!r} is not valid JSON ({exc}); re-export the model.") from exc
    card.check_spec()
    onnx_path = model_dir / ONNX_FILE
    if not onnx_path.exists():
        raise ModelCardError(f"{str(onnx_path)!r} is missing; the folder must hold the exported model.onnx.")
    if verify_hash:
        got = sha256_file(onnx_path)
        if got != card.onnx_sha256:
            raise ModelCardError(
                f"model.onnx in {str(model_dir)!r} has sha256 {got[:12]}… but card.json says {card.onnx_sha256[:12]}…: "
                "the file was replaced or corrupted. Re-export the model (or restore the original file)."
            )
    return card
