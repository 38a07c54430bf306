"""Applications built on the image models: chart and candlestick patterns, market regimes,
order-book analysis. Each produces ``strategies.Scorer``-compatible scorers, so a detection can
drive a ``Policy`` in both backtest engines. Sits beside ``evaluation`` (DESIGN.md layers)."""

# chart and candlestick patterns (torch is imported only when training)
from effnet_trading.applications.candlesticks import CANDLE_PATTERNS, candle_labels, scan_candles, train_candles
from effnet_trading.applications.chart_patterns import forward_returns, scan_patterns, train_patterns
from effnet_trading.applications.gallery import detection_gallery
from effnet_trading.applications.pattern_data import PATTERN_CLASSES, PatternConfig, make_patterns
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
]
