"""REST access through pybit's ``HTTP`` session: errors translated once into ``ExchangeError``
subclasses; only transient ones retried, with exponential backoff under a bounded total time.

pybit's own retry loop is switched off (one attempt per call, no retry codes): it sleeps until a
rate-limit reset header that may be missing (pybit#340) and retries without a total bound.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from effnet_trading.errors import (
    AuthError,
    ExchangeError,
    InsufficientBalanceError,
    InvalidOrderError,
    RateLimitError,
    TransientExchangeError,
    require,
)
from effnet_trading.plugins.bybit.bars import Bar, bar_from_rest, interval_ms
from effnet_trading.plugins.bybit.endpoints import Endpoints

__all__ = ["BybitREST", "translate_error", "RetryPolicy"]

log = logging.getLogger("effnet_trading.bybit")

_AUTH = {10003, 10004, 10005, 10007, 10009, 10010, 33004}
_BALANCE = {110004, 110006, 110007, 110012, 170131, 170033}
_INVALID = {10001, 110003, 110017, 110094, 110095, 170130, 170136, 170137, 170140, 170141}
_TRANSIENT = {10000, 10002, 10016, 10019, 170007}


class RetryPolicy:
    """Exponential backoff ``base_s * 2**i`` capped at ``cap_s``, never past ``total_s`` in all."""

    def __init__(self, base_s: float = 0.5, cap_s: float = 8.0, total_s: float = 60.0):
        self.base_s, self.cap_s, self.total_s = float(base_s), float(cap_s), float(total_s)

    def delay(self, attempt: int) -> float:
        return min(self.cap_s, self.base_s * (2**attempt))


def translate_error(exc: BaseException, what: str) -> ExchangeError:
    """pybit / requests exception -> the project's ExchangeError subclass (message names the call)."""
    name = type(exc).__name__
    code = getattr(exc, "status_code", None)
    message = str(getattr(exc, "message", "") or name)
    if name == "InvalidRequestError":  # Bybit answered with retCode != 0
        text = f"{what}: Bybit refused the request (retCode {code}: {message})"
        if code == 10006:
            return RateLimitError(
                text + "; rate limit, retrying with backoff.",
                code=code,
                retry_after_s=_reset_after(getattr(exc, "resp_headers", None)),
            )
        if code in _AUTH:
            return AuthError(
                text + "; check BYBIT_API_KEY / BYBIT_API_SECRET, their permissions and the network "
                "(testnet/demo keys only work there).",
                code=code,
            )
        if code in _BALANCE:
            return InsufficientBalanceError(text + "; reduce the size or fund the account.", code=code)
        if code in _INVALID:
            return InvalidOrderError(
                text + "; check quantity/price against the instrument's lot and tick size.", code=code
            )
        if code in _TRANSIENT:
            return TransientExchangeError(text + "; a server-side or clock problem, retrying.", code=code)
        return ExchangeError(text + ".", code=code)
    if name == "FailedRequestError":  # HTTP status != 200, or a body that is not JSON
        text = f"{what}: HTTP {code} ({message})"
        if code in (403, 429):
            return RateLimitError(
                text + "; IP rate limit, retrying with backoff.",
                code=code,
                retry_after_s=_reset_after(getattr(exc, "resp_headers", None)),
            )
        if code == 401:
            return AuthError(text + "; check BYBIT_API_KEY / BYBIT_API_SECRET.", code=code)
        if code is not None and (code >= 500 or code == 409):
            return TransientExchangeError(text + "; server error, retrying.", code=code)
        return ExchangeError(text + ".", code=code)
    if name in (
        "ConnectionError",
        "ReadTimeout",
        "ConnectTimeout",
        "Timeout",
        "SSLError",
        "ChunkedEncodingError",
        "ConnectionResetError",
        "TimeoutError",
        "OSError",
    ):
        return TransientExchangeError(
            f"{what}: network failure ({name}); retrying. Check the REST URL and the connection."
        )
    return ExchangeError(f"{what}: unexpected {name}.")


def _reset_after(headers) -> float | None:
    """Seconds until ``X-Bapi-Limit-Reset-Timestamp`` (ms), if the header is there; tolerate its absence."""
    try:
        reset = int(headers.get("X-Bapi-Limit-Reset-Timestamp"))  # type: ignore[union-attr]
    except (AttributeError, TypeError, ValueError):
        return None
    return max(0.0, reset / 1000.0 - time.time())


class BybitREST:
    """One pybit ``HTTP`` session pointed at ``endpoints.rest``, plus retries and error translation.

    Keys are held by pybit's session only; they are never part of this object's repr or messages.
    """

    def __init__(
        self,
        endpoints: Endpoints,
        *,
        api_key: str | None = None,
        api_secret: str | None = None,
        retry: RetryPolicy | None = None,
        timeout_s: float = 10.0,
        sleep: Callable[[float], None] = time.sleep,
    ):
        unified = require("pybit.unified_trading", "live")
        self.endpoints = endpoints
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        self._session = unified.HTTP(
            testnet=False,
            api_key=api_key,
            api_secret=api_secret,
            timeout=timeout_s,
            max_retries=1,
            retry_delay=0,
            log_requests=False,
            demo=endpoints.network == "demo",
        )
        self._session.retry_codes = set()  # pybit refills an empty set at init; empty it afterwards
        self._session.endpoint = endpoints.rest
        self.retries = 0  # transient failures retried so far (for status reports)

    def call(self, method: str, what: str | None = None, *, budget_s: float | None = None, **params) -> dict:
        """``session.<method>(**params)``; returns ``result``. Retries transient errors with backoff, for at
        most ``budget_s`` seconds (default: the retry policy's ``total_s``)."""
        fn = getattr(self._session, method)
        what = what or method
        total_s = self.retry.total_s if budget_s is None else min(float(budget_s), self.retry.total_s)
        t0 = time.monotonic()
        attempt = 0
        while True:
            try:
                return fn(**params).get("result", {})
            except Exception as exc:  # noqa: BLE001 - translated once, here
                err = translate_error(exc, what)
            if not err.transient:
                raise err from None
            wait = self.retry.delay(attempt)
            if isinstance(err, RateLimitError) and err.retry_after_s is not None:
                wait = max(wait, min(err.retry_after_s, self.retry.cap_s))
            if time.monotonic() - t0 + wait > total_s:
                raise type(err)(
                    f"{err} Gave up after {attempt + 1} attempt(s) in {time.monotonic() - t0:.1f} s "
                    f"(retry budget {total_s:g} s).",
                    code=err.code,
                ) from None
            log.warning("%s (attempt %d, next in %.2f s)", err, attempt + 1, wait)
            self.retries += 1
            attempt += 1
            self._sleep(wait)

    # -- market data ---------------------------------------------------------------------
    def server_time_ms(self) -> int:
        """The exchange's clock in ms (``/v5/market/time``): the judge of which candle is still open."""
        res = self.call("get_server_time", "GET /v5/market/time")
        if "timeNano" in res:
            return int(res["timeNano"]) // 1_000_000
        return int(res["timeSecond"]) * 1000

    def klines(
        self, symbol: str, category: str, interval: str, start_ms: int, end_ms: int, limit: int = 1000
    ) -> list[Bar]:
        """Bars with open time in [start_ms, end_ms], ascending (Bybit answers newest first); may include the open bar."""
        res = self.call(
            "get_kline",
            "GET /v5/market/kline",
            category=category,
            symbol=symbol,
            interval=interval,
            start=int(start_ms),
            end=int(end_ms),
            limit=int(limit),
        )
        bars = {b.start: b for b in map(bar_from_rest, res.get("list", []))}
        return [bars[k] for k in sorted(bars) if start_ms <= k <= end_ms]

    def closed_klines(
        self, symbol: str, category: str, interval: str, start_ms: int, end_ms: int | None = None
    ) -> list[Bar]:
        """Every closed bar from ``start_ms`` (to ``end_ms``, default: now by the exchange's clock), paginated."""
        step = interval_ms(interval)
        now = self.server_time_ms()
        last_open = (now // step) * step - step  # the newest bar whose close time has passed
        end = last_open if end_ms is None else min(int(end_ms), last_open)
        out: list[Bar] = []
        cursor = int(start_ms)
        while cursor <= end:
            stop = min(end, cursor + 999 * step)
            out.extend(b for b in self.klines(symbol, category, interval, cursor, stop) if b.start + step <= now)
            cursor = stop + step
        return out

    def instrument(self, symbol: str, category: str) -> dict:
        """instruments-info for one symbol (lotSizeFilter, priceFilter, ...)."""
        res = self.call("get_instruments_info", "GET /v5/market/instruments-info", category=category, symbol=symbol)
        items = res.get("list", [])
        if not items:
            raise ExchangeError(f"instruments-info has no {category} symbol {symbol!r}; check --symbol and --category.")
        return items[0]

    def __repr__(self) -> str:
        return f"BybitREST({self.endpoints.rest!r}, network={self.endpoints.network!r})"
