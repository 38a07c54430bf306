"""backtrader live: an unchanged EfficientNetStrategy on BybitData over the fake exchange equals the backtest."""

from __future__ import annotations

import backtrader as bt  # noqa: E402
import numpy as np
import pytest

from effnet_trading.plugins.backtrader import EfficientNetStrategy, num2timestamps, run_backtrader  # noqa: E402
from effnet_trading.plugins.bybit.bt_store import BybitStore  # noqa: E402
from effnet_trading.plugins.bybit.fake_exchange import Faults  # noqa: E402

pytestmark = [pytest.mark.usefixtures("one_torch_thread"), pytest.mark.slow]


def test_efficientnet_strategy_runs_live_on_bybit_data_like_the_backtest(fake_bybit, planted, trained_model_dir):
    data = planted.iloc[12_000 - 200 : 12_000 + 45]
    fake = fake_bybit(data, start_index=200, bar_seconds=0.1, faults=Faults(drop_at={4}, duplicate={12}))
    store = BybitStore(rest_url=fake.rest_url, ws_url=fake.ws_url, feed_options={"stale_after_s": 2.0})
    feed = store.getdata(symbol="BTCUSDT", interval="5", backfill=120, max_bars=35)
    notes = []

    class Watch(EfficientNetStrategy):
        def notify_data(self, data, status, *args, **kwargs):
            notes.append(data._getstatusname(status))

    cerebro = bt.Cerebro(cheat_on_open=True, stdstats=False)
    cerebro.adddata(feed)
    cerebro.setbroker(store.getbroker(cash=10_000.0, commission=0.001))
    cerebro.addstrategy(Watch, model=str(trained_model_dir))
    strat = cerebro.run()[0]

    n = len(strat.data)
    seen = num2timestamps(strat.data.datetime.array[:n])
    assert n == 120 + 35
    first = data.index.get_loc(seen[0])
    frame = data.iloc[first : first + n]
    assert seen.equals(frame.index), "the live feed lost or repeated a bar"
    ind = strat.indicator
    live = np.column_stack([np.asarray(line.array[:n], dtype=np.float64) for line in ind.lines])
    ref = run_backtrader(frame, str(trained_model_dir), fees=0.001)
    np.testing.assert_allclose(live[:, :3], ref.probs.to_numpy(), rtol=1e-6, equal_nan=True)
    np.testing.assert_array_equal(np.nan_to_num(live[:, 3]), ref.target.to_numpy())
    assert ref.target.iloc[120:].nunique() >= 2, "the check needs trades in the live part"
    fills = [(t, s) for t, s, *_ in strat.order_log if s != 0.0]
    assert len(fills) == len(ref.orders) and np.allclose([abs(s) for _, s in fills], ref.orders["size"])
    assert notes[0] == "DELAYED" and "LIVE" in notes and "DISCONNECTED" in notes
