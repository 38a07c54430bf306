"""Run configuration files: ``read_toml(path)`` -> dict (stdlib ``tomllib``; ``tomli`` on Python 3.10)."""

from __future__ import annotations

import os
import sys
from typing import Any

from effnet_trading.errors import SpecError

__all__ = ["read_toml"]


def read_toml(path: str | os.PathLike) -> dict[str, Any]:
    """The TOML file at ``path`` as a dict; a missing or malformed file is a ``SpecError`` naming it."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except OSError as exc:
        raise SpecError(
            f"config file {str(path)!r} cannot be read ({exc.strerror}); pass an existing .toml file."
        ) from exc
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(
            f"config file {str(path)!r} is not valid TOML ({exc}); see https://toml.io for the syntax."
        ) from exc
