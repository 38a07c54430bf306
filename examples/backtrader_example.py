"""Drop-in backtrader use: python examples/backtrader_example.py MODEL_DIR [OHLCV_CSV]"""

import sys

import backtrader as bt

from effnet_trading.imaging import load_ohlcv
from effnet_trading.plugins.backtrader import EfficientNetStrategy
from effnet_trading.strategies import Policy

model_dir = sys.argv[1]
ohlcv = load_ohlcv(sys.argv[2] if len(sys.argv) > 2 else "sample_data/planted_5m.csv").iloc[-3000:]

cerebro = bt.Cerebro(cheat_on_open=True)  # size orders at the fill price: the next bar's open
cerebro.broker.set_coo(True)
cerebro.broker.setcommission(commission=0.001)
cerebro.adddata(bt.feeds.PandasData(dataname=ohlcv))
cerebro.addstrategy(EfficientNetStrategy, model=model_dir, policy=Policy(threshold=0.5, long_only=False))
cerebro.run()
print(f"final value {cerebro.broker.getvalue():.2f} (started with 10000)")
