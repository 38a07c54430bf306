"""The project's exception tree. Messages name the value, what was expected, and the fix."""

from __future__ import annotations

__all__ = [
    "EffnetTradingError",
    "DataError",
    "SpecError",
    "ModelCardError",
    "TrainingError",
    "ExchangeError",
    "AuthError",
    "RateLimitError",
    "InsufficientBalanceError",
    "InvalidOrderError",
    "TransientExchangeError",
    "OutputError",
    "MissingDependencyError",
    "require",
]


class EffnetTradingError(Exception):
    """Base class of every error raised on purpose by effnet-trading."""


class DataError(EffnetTradingError, ValueError):
    """OHLCV (or order-book) input is malformed: the message names the rows/columns and the fix."""


class SpecError(EffnetTradingError, ValueError):
    """An ImageSpec/StackSpec (or another configuration object) is invalid."""


class ModelCardError(EffnetTradingError):
    """A model folder is incomplete or disagrees with its card (hash, input shape, spec)."""


class TrainingError(EffnetTradingError):
    """Training could not run as configured (too little data for the splits, one class only, ...)."""


class ExchangeError(EffnetTradingError):
    """An exchange call failed; ``transient`` says whether a retry may help."""

    def __init__(self, message: str, *, transient: bool = False, code: int | None = None):
        super().__init__(message)
        self.transient = transient
        self.code = code


class AuthError(ExchangeError):
    """API key missing, invalid, expired or without the permission the call needs (never transient)."""


class RateLimitError(ExchangeError):
    """The exchange asked us to slow down (Bybit retCode 10006, HTTP 403/429); transient."""

    def __init__(self, message: str, *, code: int | None = None, retry_after_s: float | None = None):
        super().__init__(message, transient=True, code=code)
        self.retry_after_s = retry_after_s


class InsufficientBalanceError(ExchangeError):
    """The account cannot pay for the order (margin/balance); never retried."""


class InvalidOrderError(ExchangeError):
    """Quantity, price or another order parameter was refused (lot/tick size, limits); never retried."""


class TransientExchangeError(ExchangeError):
    """Network failure, timeout or a server-side error: a retry with backoff may help."""

    def __init__(self, message: str, *, code: int | None = None):
        super().__init__(message, transient=True, code=code)


class OutputError(EffnetTradingError):
    """A run folder cannot be written as asked (it holds other files, or a run with other settings)."""


class MissingDependencyError(EffnetTradingError, ImportError):
    """An optional dependency (an extra) is not installed."""


def require(module: str, extra: str):
    """Import ``module`` or raise MissingDependencyError naming the pip line that fixes it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise MissingDependencyError(
            f"{module!r} is needed for this feature but is not installed ({exc}). "
            f'Install it with: pip install "effnet-trading[{extra}]"'
        ) from exc
