"""Model cards: every exported model is a folder ``model.onnx`` + ``card.json`` (numpy-free, torch-free).

The ONNX graph takes rendered images ``(N, C, H, W)`` float32 in [0, 1] (normalisation is
inside the graph) and returns class probabilities ``(N, K)``. Optional variants
(``model_fp16.onnx``, ``model_int8.onnx``) are listed in ``card.variants`` with their own
sha256. Loading checks every hash and the spec, so a mismatch is an error, never a silent
wrong prediction.
"""

from __future__ import annotations

import json
import os
import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from effnet_trading.errors import ModelCardError, SpecError
from effnet_trading.imaging.spec import AnySpec, spec_from_dict
from effnet_trading.model_zoo.calibration import check_calibration
from effnet_trading.outputs import file_sha256 as sha256_file  # one implementation, in the lowest layer
from effnet_trading.outputs import write_json_atomic

__all__ = [
    "CARD_FILE",
    "ONNX_FILE",
    "VARIANT_FILES",
    "ModelCard",
    "sha256_file",
    "load_card",
    "find_model_dirs",
    "versions",
]

CARD_FILE = "card.json"
ONNX_FILE = "model.onnx"
VARIANT_FILES = {"fp32": ONNX_FILE, "fp16": "model_fp16.onnx", "int8": "model_int8.onnx"}
CARD_VERSION = 1
_REEXPORT = "re-export the model with `effnet-trading zoo export` (or `effnet-trading train`)"


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
    variants: dict[str, dict[str, Any]] = field(default_factory=dict)  # "fp16"/"int8" -> {"file", "sha256", ...}
    # {"method": "temperature", "temperature": T, "ece_before", "ece_after", "fitted_on", ...}; {} = uncalibrated
    calibration: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=versions)
    card_version: int = CARD_VERSION

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["spec"] = self.spec.to_dict()
        d["input_shape"] = list(self.input_shape)
        d["class_names"] = list(self.class_names)
        if not self.calibration:  # uncalibrated cards carry no "calibration" key
            d.pop("calibration")
        return d

    @property
    def temperature(self) -> float:
        """The temperature the Predictor divides the logits by (1.0 when the card is uncalibrated)."""
        return check_calibration(self.calibration) if self.calibration else 1.0

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelCard:
        if not isinstance(d, dict):
            raise ModelCardError(f"card.json holds a {type(d).__name__}, expected a JSON object; {_REEXPORT}.")
        version = d.get("card_version", CARD_VERSION)
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise ModelCardError(f"card.json has card_version {version!r}; expected a whole number >= 1: {_REEXPORT}.")
        if version > CARD_VERSION:
            from effnet_trading import __version__

            raise ModelCardError(
                f"card.json has card_version {version}, newer than this effnet-trading {__version__} reads (up to "
                f"{CARD_VERSION}): the model was exported by a newer release. Upgrade with "
                "pip install -U effnet-trading, or re-export the model with this version."
            )
        missing = [k for k in ("name", "architecture", "spec", "input_shape") if k not in d]
        if missing:
            raise ModelCardError(f"card.json is missing required field(s) {missing}; {_REEXPORT}.")
        try:
            d = dict(d)
            d["spec"] = spec_from_dict(d["spec"])
            d["input_shape"] = tuple(int(x) for x in d["input_shape"])
            d["class_names"] = tuple(d.get("class_names", ("sell", "hold", "buy")))
            known = set(cls.__dataclass_fields__)
            card = cls(**{k: v for k, v in d.items() if k in known})
        except (KeyError, TypeError, ValueError, SpecError) as exc:
            raise ModelCardError(f"card.json is malformed ({exc}); {_REEXPORT}.") from exc
        if "calibration" in d:
            check_calibration(d["calibration"])
        return card

    def save(self, model_dir: str | os.PathLike) -> Path:
        """Write ``card.json`` atomically (temp file + rename)."""
        return write_json_atomic(Path(model_dir) / CARD_FILE, self.to_dict(), sort_keys=True)

    def check_spec(self) -> None:
        """The spec must render exactly the declared input shape."""
        want = (self.spec.channels, *self.spec.size)
        if tuple(self.input_shape) != want:
            raise ModelCardError(
                f"card input_shape {list(self.input_shape)} disagrees with its ImageSpec, which renders {list(want)}; "
                f"the card was edited or written by a different version: {_REEXPORT}."
            )

    def variant_file(self, variant: str = "fp32") -> str:
        """File name of a variant ('fp32' is model.onnx); ModelCardError if the card does not list it."""
        if variant == "fp32":
            return ONNX_FILE
        if variant not in self.variants:
            have = ["fp32", *sorted(self.variants)]
            raise ModelCardError(
                f"model {self.name!r} has no {variant!r} variant (card lists {have}); "
                f"add it with `effnet-trading zoo export --{variant}` or use variant='fp32'."
            )
        return str(self.variants[variant].get("file", VARIANT_FILES.get(variant, "")))

    def variant_sha256(self, variant: str = "fp32") -> str:
        return self.onnx_sha256 if variant == "fp32" else str(self.variants[variant].get("sha256", ""))

    def summary(self) -> str:
        """Human-readable multi-line description (used by `zoo card`)."""
        spec = self.spec.to_dict()
        lines = [
            f"model         {self.name}",
            f"architecture  {self.architecture}",
            f"input         (N, {', '.join(map(str, self.input_shape))}) float32 in [0, 1]",
            f"spec          {json.dumps(spec, sort_keys=True)}",
            f"classes       {', '.join(self.class_names)}",
            f"label         {json.dumps(self.label, sort_keys=True) if self.label else '(not recorded)'}",
            f"normalization mean={self.normalization.get('mean')} std={self.normalization.get('std')} (in-graph)",
            f"training      {json.dumps(self.training, sort_keys=True, default=str) if self.training else '(untrained / not recorded)'}",
            f"metrics       {json.dumps(self.metrics, sort_keys=True, default=str) if self.metrics else '(none)'}",
            f"calibration   {json.dumps({k: v for k, v in self.calibration.items() if k != 'check'}, sort_keys=True) if self.calibration else '(none: raw softmax)'}",
            f"opset         {self.opset}",
            f"fp32          {ONNX_FILE}  sha256 {self.onnx_sha256[:16]}…",
        ]
        for name, info in sorted(self.variants.items()):
            extra = {k: v for k, v in info.items() if k not in ("file", "sha256")}
            lines.append(
                f"{name:<13} {info.get('file')}  sha256 {str(info.get('sha256'))[:16]}…  {json.dumps(extra, sort_keys=True, default=str)}"
            )
        lines.append(f"versions      {', '.join(f'{k} {v}' for k, v in sorted(self.versions.items()))}")
        return "\n".join(lines)


def _check_file(model_dir: Path, file: str, want_sha: str, what: str, verify_hash: bool) -> None:
    path = model_dir / file
    if not path.exists():
        raise ModelCardError(
            f"{str(path)!r} is missing but card.json lists it as the {what} model; restore the file or {_REEXPORT}."
        )
    if verify_hash:
        got = sha256_file(path)
        if got != want_sha:
            raise ModelCardError(
                f"{file} in {str(model_dir)!r} has sha256 {got[:12]}… but card.json says {str(want_sha)[:12]}…: "
                f"the file was replaced or corrupted. Restore the original file or {_REEXPORT}."
            )


def load_card(model_dir: str | os.PathLike, *, verify_hash: bool = True, variant: str | None = None) -> ModelCard:
    """Load and check ``card.json`` in ``model_dir``: files present, sha256 of each, spec/shape agree.

    variant: None checks model.onnx and every listed variant; a name ('fp16', 'int8')
    checks model.onnx and that variant only.
    """
    model_dir = Path(model_dir)
    card_path = model_dir / CARD_FILE
    if not model_dir.is_dir():
        raise ModelCardError(
            f"model folder {str(model_dir)!r} does not exist; export one with `effnet-trading zoo export` or train with `effnet-trading train`."
        )
    if not card_path.exists():
        raise ModelCardError(
            f"{str(card_path)!r} is missing: a model folder holds model.onnx + card.json; {_REEXPORT}."
        )
    try:
        raw = json.loads(card_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelCardError(f"{str(card_path)!r} is not valid JSON ({exc}); {_REEXPORT}.") from exc
    card = ModelCard.from_dict(raw)
    card.check_spec()
    _check_file(model_dir, ONNX_FILE, card.onnx_sha256, "fp32", verify_hash)
    names = sorted(card.variants) if variant is None else ([] if variant == "fp32" else [variant])
    for name in names:
        _check_file(model_dir, card.variant_file(name), card.variant_sha256(name), name, verify_hash)
    return card


def find_model_dirs(root: str | os.PathLike) -> list[Path]:
    """Model folders (holding card.json) at or below ``root``, sorted."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(p.parent for p in root.rglob(CARD_FILE) if not p.parent.name.startswith("."))
