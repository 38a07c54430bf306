"""API keys: from ``BYBIT_API_KEY`` / ``BYBIT_API_SECRET`` or a file the user names; never printed.

The values live in one object whose ``repr``/``str`` are redacted; error messages name where a
key was looked for, never its value.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from effnet_trading.errors import AuthError

__all__ = ["Credentials", "load_credentials", "ENV_KEY", "ENV_SECRET"]

ENV_KEY, ENV_SECRET = "BYBIT_API_KEY", "BYBIT_API_SECRET"


@dataclass(frozen=True)
class Credentials:
    api_key: str = field(repr=False)
    api_secret: str = field(repr=False)
    source: str = "environment"

    def __repr__(self) -> str:
        return f"Credentials(source={self.source!r}, api_key=<redacted>, api_secret=<redacted>)"

    __str__ = __repr__


def load_credentials(key_file: str | os.PathLike | None = None, env: dict | None = None) -> Credentials:
    """Keys from ``key_file`` (JSON ``{"api_key": .., "api_secret": ..}`` or two lines: key, secret),
    else from the environment variables ``BYBIT_API_KEY`` / ``BYBIT_API_SECRET``."""
    env = os.environ if env is None else env
    if key_file is not None:
        path = Path(key_file)
        if not path.is_file():
            raise AuthError(f"key file {path} does not exist; write the API key and secret there (JSON or two lines).")
        text = path.read_text(encoding="utf-8").strip()
        try:
            data = json.loads(text)
            key, secret = data.get("api_key"), data.get("api_secret")
        except (ValueError, AttributeError):
            lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
            key, secret = (lines + [None, None])[:2]
        if not key or not secret:
            raise AuthError(
                f'key file {path} must hold the API key and secret: JSON {{"api_key": ..., "api_secret": ...}} '
                "or two lines (key, then secret)."
            )
        return Credentials(str(key), str(secret), f"file {path}")
    key, secret = env.get(ENV_KEY), env.get(ENV_SECRET)
    if not key or not secret:
        missing = [n for n, v in ((ENV_KEY, key), (ENV_SECRET, secret)) if not v]
        raise AuthError(
            f"no API keys: {' and '.join(missing)} not set. Export them, or pass --key-file FILE; "
            "create testnet/demo keys on that network's website (mainnet keys do not work there)."
        )
    return Credentials(key, secret, "environment")
