"""Applications built on the image models: chart and candlestick patterns, market regimes,
order-book analysis. Each produces ``strategies.Scorer``-compatible scorers, so a detection can
drive a ``Policy`` in both backtest engines. Sits beside ``evaluation`` (DESIGN.md layers)."""

# chart and candlestick patterns (torch is imported only when training)
from effnet_trading.applications.candlesticks import CANDLE_PATTERNS, candle_labels, scan_candles, train_candles
from effnet_trading.applications.chart_patterns import forward_returns, scan_patterns, train_patterns
from effnet_trading.applications.gallery import detection_gallery
from effnet_trading.applications.orderbook import (
    MOVE_CLASSES,
    ImpactModel,
    analyze_books,
    detect_place_cancel,
    detect_walls,
    impact_curve,
    liquidity_flags,
    move_labels,
    read_books,
    slippage,
    walk_depth,
)
from effnet_trading.applications.pattern_data import PATTERN_CLASSES, PatternConfig, make_patterns
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
from effnet_trading.applications.signals import DetectionScorer

__all__ = [
    "CANDLE_PATTERNS",
    "candle_labels",
    "train_candles",
    "scan_candles",
    "PATTERN_CLASSES",
    "PatternConfig",
    "make_patterns",
    "train_patterns",
    "scan_patterns",
    "forward_returns",
    "detection_gallery",
    "DetectionScorer",
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
    "MOVE_CLASSES",
    "walk_depth",
    "slippage",
    "impact_curve",
    "ImpactModel",
    "detect_walls",
    "detect_place_cancel",
    "liquidity_flags",
    "move_labels",
    "read_books",
    "analyze_books",
]
