"""Model registry: ``create_model(name, **kw)`` and ``list_models(pattern)`` (timm style).

Architecture modules register builders with ``@register_model``; the registry imports
them on first use, so importing this module does not import torch.

``create_model(name, input_size=...)`` lets a model adapt to the image size it will see
(EfficientNets drop early strides for small images); ``model_info(name).input_note(size)``
says what it picks. Without ``input_size`` every model is built as published.
"""

from __future__ import annotations

import fnmatch
import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from effnet_trading.errors import SpecError, require

__all__ = ["ModelInfo", "register_model", "create_model", "list_models", "model_info", "check_model_kwargs"]

# Modules that define registered architectures (imported lazily; they need torch).
_ARCH_MODULES = ("efficientnet", "small")


@dataclass(frozen=True)
class ModelInfo:
    name: str
    family: str
    default_size: int  # native input resolution (pixels)
    description: str
    builder: Callable[..., Any]
    describe_input: Callable[[int | tuple[int, int] | None], str] | None = None

    @property
    def size_aware(self) -> bool:
        """True when the builder takes ``input_size`` (its layout depends on the image size)."""
        return "input_size" in inspect.signature(self.builder).parameters

    def input_note(self, input_size: int | tuple[int, int] | None) -> str:
        """What ``create_model(name, input_size=input_size)`` builds for that size, in one line."""
        if self.describe_input is not None:
            return self.describe_input(input_size)
        return "same layout at every input size"


_REGISTRY: dict[str, ModelInfo] = {}
_loaded = False


def register_model(
    name: str,
    *,
    family: str,
    default_size: int,
    description: str = "",
    describe_input: Callable[[Any], str] | None = None,
):
    """Decorator: register ``fn(num_classes=3, in_chans=3, **kw) -> nn.Module`` under ``name``.

    describe_input: ``size -> str`` for builders that take ``input_size`` and adapt to it."""

    def deco(fn):
        if name in _REGISTRY and _REGISTRY[name].builder is not fn:
            raise SpecError(f"model name {name!r} is registered twice.")
        _REGISTRY[name] = ModelInfo(
            name, family, default_size, description or (fn.__doc__ or "").strip(), fn, describe_input
        )
        return fn

    return deco


def _load() -> None:
    global _loaded
    if _loaded:
        return
    require("torch", "train")
    for mod in _ARCH_MODULES:
        importlib.import_module(f"effnet_trading.model_zoo.{mod}")
    _loaded = True


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching a glob pattern, sorted."""
    _load()
    return sorted(n for n in _REGISTRY if fnmatch.fnmatch(n, pattern))


def model_info(name: str) -> ModelInfo:
    _load()
    if name not in _REGISTRY:
        close = fnmatch.filter(_REGISTRY, f"*{name}*")
        raise SpecError(
            f"unknown model {name!r}; registered: {sorted(_REGISTRY)}" + (f" (did you mean {close}?)" if close else "")
        )
    return _REGISTRY[name]


def _options(builder) -> set[str] | None:
    """Keyword options a builder accepts (its own, or the class it returns forwards ``**kw`` to); None if unknown."""
    import inspect
    import typing

    params = inspect.signature(builder).parameters
    names = {n for n, p in params.items() if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
    if not any(p.kind == p.VAR_KEYWORD for p in params.values()):
        return names
    try:
        cls = typing.get_type_hints(builder).get("return")
    except Exception:
        return None
    if not isinstance(cls, type):
        return None
    inner = inspect.signature(cls.__init__).parameters
    if any(p.kind == p.VAR_KEYWORD for p in inner.values()):
        return None
    return names | {n for n in inner if n != "self"}


def check_model_kwargs(name: str, kwargs: dict) -> None:
    """SpecError naming any option ``create_model(name, **kwargs)`` would not accept, and the ones it does."""
    known = _options(model_info(name).builder)
    if known is None:
        return
    unknown = sorted(set(kwargs) - known)
    if unknown:
        opts = sorted(known - {"num_classes", "in_chans"})
        raise SpecError(f"model {name!r} has no option(s) {unknown} (--model-kwargs / model_kwargs); it takes {opts}.")


def create_model(
    name: str, num_classes: int = 3, in_chans: int = 3, input_size: int | tuple[int, int] | None = None, **kwargs: Any
):
    """Build a registered model: ``create_model('efficientnet_b0', num_classes=3, in_chans=3)``.

    input_size: the image size (pixels) the model will see; size-aware models (EfficientNets)
    pick their stride schedule from it (``model_info(name).input_note(size)``), others ignore it."""
    check_model_kwargs(name, kwargs)
    info = model_info(name)
    if input_size is not None and info.size_aware:
        kwargs["input_size"] = input_size
    return info.builder(num_classes=num_classes, in_chans=in_chans, **kwargs)
