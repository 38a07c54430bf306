"""effnet-trading: EfficientNet trading signals from market images.

Subpackages (imports only point down):
``imaging`` -> ``model_zoo`` -> ``strategies`` -> ``evaluation`` -> ``plugins``.
Importing this package has no side effects.
"""

from effnet_trading.errors import (
    DataError,
    EffnetTradingError,
    ExchangeError,
    MissingDependencyError,
    ModelCardError,
    OutputError,
    SpecError,
    TrainingError,
)

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "EffnetTradingError",
    "DataError",
    "SpecError",
    "ModelCardError",
    "TrainingError",
    "ExchangeError",
    "OutputError",
    "MissingDependencyError",
]
