"""Applications built on the image models: chart and candlestick patterns, market regimes,
order-book analysis. Each produces ``strategies.Scorer``-compatible scorers, so a detection can
drive a ``Policy`` in both backtest engines. Sits beside ``evaluation`` (DESIGN.md layers)."""

from effnet_trading.applications.regimes import (
    REGIMES,
    TRENDING,
    RegimeFitConfig,
    RegimeHMM,
    RegimeModel,
    RegimeRules,
    fit_regimes,
    forward_filter,
    regime_features,
    regime_labels,
    scan_regimes,
)

__all__ = [
    "REGIMES",
    "TRENDING",
    "RegimeRules",
    "regime_features",
    "regime_labels",
    "RegimeHMM",
    "forward_filter",
    "RegimeModel",
    "RegimeFitConfig",
    "fit_regimes",
    "scan_regimes",
]
