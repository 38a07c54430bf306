"""Where to talk to: REST and WebSocket bases for mainnet, testnet, demo trading or a local fake exchange.

Both are *bases*, as pybit uses them: ``rest`` + ``/v5/market/kline``; ``ws`` + ``/v5/public/<category>``
(and ``/v5/private``). Precedence: an explicit URL, then ``EFFNET_BYBIT_REST_URL`` /
``EFFNET_BYBIT_WS_URL``, then the network's preset.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from effnet_trading.errors import SpecError

__all__ = ["Endpoints", "NETWORKS", "CATEGORIES", "resolve_endpoints", "ENV_REST", "ENV_WS"]

ENV_REST = "EFFNET_BYBIT_REST_URL"
ENV_WS = "EFFNET_BYBIT_WS_URL"
CATEGORIES = ("linear", "spot", "inverse")

# network -> (REST base, WebSocket base); the demo-trading WebSocket serves private streams only,
# its market data comes from mainnet (Bybit docs, "Demo trading service").
NETWORKS = {
    "mainnet": ("https://api.bybit.com", "wss://stream.bybit.com"),
    "testnet": ("https://api-testnet.bybit.com", "wss://stream-testnet.bybit.com"),
    "demo": ("https://api-demo.bybit.com", "wss://stream.bybit.com"),
}


@dataclass(frozen=True)
class Endpoints:
    """REST and WebSocket bases plus the network they belong to (``custom`` for a given URL)."""

    rest: str
    ws: str
    network: str = "mainnet"

    def public_ws(self, category: str) -> str:
        if category not in CATEGORIES:
            raise SpecError(f"category {category!r} is not one of {list(CATEGORIES)}.")
        return f"{self.ws}/v5/public/{category}"

    @property
    def private_ws(self) -> str:
        return f"{self.ws}/v5/private"

    @property
    def is_mainnet(self) -> bool:
        return self.network == "mainnet"


def _check(url: str, schemes: tuple[str, ...], flag: str) -> str:
    url = url.rstrip("/")
    if not url.startswith(schemes):
        raise SpecError(f"{flag} {url!r} must start with {' or '.join(schemes)}, e.g. {schemes[0]}127.0.0.1:8080.")
    return url


def resolve_endpoints(
    network: str = "mainnet", rest_url: str | None = None, ws_url: str | None = None, env: dict | None = None
) -> Endpoints:
    """Endpoints for ``network`` with URL overrides (argument > environment variable > preset)."""
    if network not in NETWORKS:
        raise SpecError(f"network {network!r} is not one of {list(NETWORKS)}.")
    env = os.environ if env is None else env
    rest_default, ws_default = NETWORKS[network]
    rest = rest_url or env.get(ENV_REST) or rest_default
    ws = ws_url or env.get(ENV_WS) or ws_default
    custom = rest != rest_default or ws != ws_default
    return Endpoints(
        _check(rest, ("http://", "https://"), "--rest-url"),
        _check(ws, ("ws://", "wss://"), "--ws-url"),
        f"custom({network})" if custom else network,
    )
