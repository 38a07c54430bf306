"""Drop-in vectorbt use: python examples/vectorbt_example.py MODEL_DIR [OHLCV_CSV]"""

import sys

from effnet_trading.imaging import load_ohlcv
from effnet_trading.plugins.vectorbt import EfficientNetIndicator, portfolio_from_signals

model_dir = sys.argv[1]
df = load_ohlcv(sys.argv[2] if len(sys.argv) > 2 else "sample_data/planted_5m.csv").iloc[-3000:]

# probabilities are computed once; the policy runs for each threshold
ind = EfficientNetIndicator.run(
    df.open, df.high, df.low, df.close, df.volume, model=model_dir, threshold=[0.4, 0.5, 0.6]
)
pf = portfolio_from_signals(df, ind, fees=0.001)  # decide at the close, fill at the next open
print(pf.total_return())
print(pf.sharpe_ratio())
