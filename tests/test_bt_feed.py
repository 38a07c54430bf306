"""``ArrayData`` preloads whole columns at once and gives backtrader the same lines as ``PandasData``."""

from __future__ import annotations

import backtrader as bt
import numpy as np
import pytest


def _lines(feed_cls, frame, runonce: bool) -> np.ndarray:
    rows = []

    class Read(bt.Strategy):
        def next(self):
            d = self.data
            rows.append((d.datetime[0], d.open[0], d.high[0], d.low[0], d.close[0], d.volume[0], len(d)))

    cerebro = bt.Cerebro(runonce=runonce, stdstats=False)
    cerebro.adddata(feed_cls(dataname=frame))
    cerebro.addstrategy(Read)
    cerebro.run()
    return np.array(rows)


@pytest.mark.parametrize("runonce", [True, False])
def test_array_feed_equals_pandas_feed(planted, runonce):
    from effnet_trading.plugins.backtrader import ArrayData

    frame = planted.iloc[:500]
    want = _lines(bt.feeds.PandasData, frame, runonce)
    got = _lines(ArrayData, frame, runonce)
    assert want.shape == (500, 7)
    np.testing.assert_array_equal(got, want)
    # and a tz-aware index is stored as UTC, as PandasData does
    shifted = frame.tz_convert("Europe/Berlin")
    np.testing.assert_array_equal(_lines(ArrayData, shifted, runonce), want)
