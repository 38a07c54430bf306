"""Applications built on the image models: chart and candlestick patterns, market regimes,
order-book analysis. Each produces ``strategies.Scorer``-compatible scorers, so a detection can
drive a ``Policy`` in both backtest engines. Sits beside ``evaluation`` (DESIGN.md layers)."""
