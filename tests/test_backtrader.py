"""backtrader adapter: the indicator on PandasData and GenericCSVData, warm-up, the probability feed,
the ensemble, the plain (non cheat-on-open) strategy mode, and errors."""

from __future__ import annotations

import backtrader as bt
import numpy as np
import pandas as pd
import pytest

from effnet_trading.errors import SpecError
from effnet_trading.plugins import backtrader as plugin
from effnet_trading.strategies import Policy, SignalModel, TimeframeEnsemble

N_BARS = 600


@pytest.fixture(scope="module")
def bars(planted) -> pd.DataFrame:
    return planted.iloc[:N_BARS]


class _Record(bt.Strategy):
    """Keeps the indicator; records the bar position of each next() call."""

    params = (("model", None), ("threshold", 0.35))

    def __init__(self):
        self.sig = plugin.EfficientNetSignal(self.data, model=self.p.model, policy=Policy(self.p.threshold))
        self.seen = []

    def next(self):
        self.seen.append(len(self.data) - 1)


def _run(feed, model, runonce=True, **kw):
    cerebro = bt.Cerebro(runonce=runonce, stdstats=False)
    cerebro.adddata(feed)
    cerebro.addstrategy(_Record, model=model, **kw)
    return cerebro.run()[0]


def _lines(strat, n) -> np.ndarray:
    return np.column_stack([np.asarray(line.array[:n]) for line in strat.sig.lines])


def test_num2timestamps_matches_num2date(bars):
    nums = [bt.date2num(ts.to_pydatetime().replace(tzinfo=None)) for ts in bars.index[:50]]
    expected = pd.DatetimeIndex([pd.Timestamp(bt.num2date(x)).tz_localize("UTC") for x in nums])
    assert plugin.num2timestamps(nums).equals(pd.DatetimeIndex(expected, name="timestamp"))
    assert plugin.num2timestamps(nums).equals(pd.DatetimeIndex(bars.index[:50], name="timestamp"))


class _BuyBiased:
    """The tiny model with its hold and buy columns swapped: 'buy' wins, so the signal line is non-zero."""

    def __init__(self, model_dir):
        from effnet_trading.model_zoo.runtime import Predictor

        self.inner = Predictor(model_dir)
        self.spec, self.class_names, self.input_shape = self.inner.spec, self.inner.class_names, self.inner.input_shape

    def predict(self, images, closes=None):
        return self.inner.predict(images)[:, [0, 2, 1]]


def test_pandas_and_csv_feeds_give_the_batch_probabilities(tiny_model_dir, bars, tmp_path):
    model = _BuyBiased(tiny_model_dir)
    sm = SignalModel(model)
    probs = sm.predict_proba(bars)
    target = Policy(0.35).positions(probs)
    expected = np.column_stack([probs[["sell", "hold", "buy"]].to_numpy(), target.to_numpy()])

    pandas_strat = _run(bt.feeds.PandasData(dataname=bars), SignalModel(model))
    csv = tmp_path / "bars.csv"
    bars.tz_convert(None).to_csv(csv, index_label="datetime", date_format="%Y-%m-%d %H:%M:%S")
    feed = bt.feeds.GenericCSVData(
        dataname=str(csv),
        dtformat="%Y-%m-%d %H:%M:%S",
        timeframe=bt.TimeFrame.Minutes,
        compression=5,
        datetime=0,
        open=1,
        high=2,
        low=3,
        close=4,
        volume=5,
        openinterest=-1,
    )
    csv_strat = _run(feed, SignalModel(model))
    for strat in (pandas_strat, csv_strat):
        got = _lines(strat, N_BARS)
        np.testing.assert_allclose(got[:, :3], expected[:, :3], rtol=1e-6, equal_nan=True)
        assert (np.nan_to_num(got[:, 3]) == expected[:, 3]).all()
    assert target.abs().sum() > 0  # some bars reach the threshold: the signal column is exercised


def test_warmup_sets_minperiod(tiny_model_dir, bars):
    strat = _run(bt.feeds.PandasData(dataname=bars), tiny_model_dir)
    warm = SignalModel(tiny_model_dir).warmup  # first scored bar
    assert strat.seen[0] == warm
    assert np.isnan(strat.sig.lines.buy.array[warm - 1]) and not np.isnan(strat.sig.lines.buy.array[warm])


def test_runonce_false_matches_once(tiny_model_dir, bars):
    once = _lines(_run(bt.feeds.PandasData(dataname=bars), tiny_model_dir), N_BARS)
    nxt = _lines(_run(bt.feeds.PandasData(dataname=bars), tiny_model_dir, runonce=False), N_BARS)
    np.testing.assert_allclose(nxt, once, rtol=1e-6, equal_nan=True)


def test_timeframe_ensemble_uses_closed_higher_bars(tiny_model_dir, bars):
    ens = TimeframeEnsemble({"5m": SignalModel(tiny_model_dir), "15m": SignalModel(tiny_model_dir)})
    expected = ens.predict_proba(bars)
    for runonce in (True, False):
        got = _lines(
            _run(bt.feeds.PandasData(dataname=bars), {"5m": tiny_model_dir, "15m": tiny_model_dir}, runonce=runonce),
            N_BARS,
        )
        np.testing.assert_allclose(got[:, :3], expected[["sell", "hold", "buy"]].to_numpy(), rtol=1e-6, equal_nan=True)
    assert expected["buy"].notna().sum() > 100


def test_probability_feed_reads_extra_columns(bars):
    probs = pd.DataFrame({"sell": 0.1, "hold": 0.2, "buy": 0.7, "signal": 0.0}, index=bars.index)
    probs.iloc[::50, probs.columns.get_loc("signal")] = 1.0
    data = plugin.ProbabilityData(dataname=bars.join(probs))
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(data)

    class Reader(bt.Strategy):
        def __init__(self):
            self.rows = []

        def next(self):
            self.rows.append((self.data.buy[0], self.data.signal[0]))

    rows = np.array(cerebro.addstrategy(Reader) or cerebro.run()[0].rows)
    np.testing.assert_allclose(rows[:, 0], 0.7)
    np.testing.assert_array_equal(rows[:, 1], probs["signal"].to_numpy())


def test_strategy_trades_a_precomputed_signal_at_next_open(bars):
    """Plain Cerebro (no cheat-on-open): order_target_percent at close t fills at open t+1."""
    target = pd.Series(0.0, index=bars.index)
    target.iloc[100:200] = 1.0
    target.iloc[300:350] = -1.0
    data = plugin.ProbabilityData(dataname=bars.join(target.rename("signal")))
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(data)
    cerebro.broker.setcommission(commission=0.0)
    cerebro.addstrategy(plugin.EfficientNetStrategy, signal=data.signal, stake=0.9)
    strat = cerebro.run()[0]
    fills = pd.DataFrame(strat.order_log, columns=["dt", "size", "price", "fee"])
    times = plugin.num2timestamps(fills["dt"])
    decided = [100, 200, 300, 350]  # bars where the target changes
    assert list(times) == list(bars.index[[d + 1 for d in decided]])
    np.testing.assert_allclose(fills["price"], bars["open"].to_numpy()[[d + 1 for d in decided]])
    assert fills["size"].iloc[0] > 0 and fills["size"].iloc[2] < 0


def test_errors_name_the_fix(bars):
    with pytest.raises(SpecError, match="needs model="):
        _run(bt.feeds.PandasData(dataname=bars), None)

    class Binary:
        spec = SignalModel.__init__  # placeholder attributes; class names are what is checked
        class_names = ("down", "up")
        input_shape = (1, 8, 8)

        def predict(self, images, closes=None):
            return np.full((len(images), 2), 0.5)

        def predict_proba(self, ohlcv):
            return None

        def update(self, bar):
            return None

        def reset(self):
            pass

    with pytest.raises(SpecError, match="3-class sell/hold/buy"):
        _run(bt.feeds.PandasData(dataname=bars), Binary())


def test_risk_sizing_and_stops_same_in_once_and_next(tiny_model_dir, bars):
    from effnet_trading.strategies import Risk

    model = _BuyBiased(tiny_model_dir)
    risk = dict(vol_target=2.0, vol_window=20, max_exposure=0.8, stop_loss=0.004, cooldown_bars=5)
    probs = SignalModel(model).predict_proba(bars)
    expected = Risk(**risk).apply(bars, Policy(0.35).positions(probs))
    assert expected.nunique() > 3 and (expected == 0).sum() > 50  # sized, and stops flatten it for a while
    for runonce in (True, False):
        res = plugin.run_backtrader(
            bars, SignalModel(model), policy=Policy(0.35), risk=Risk(**risk), fees=0.001, runonce=runonce
        )
        np.testing.assert_allclose(res.target.to_numpy(), expected.to_numpy(), rtol=1e-12, err_msg=f"runonce={runonce}")
        assert res.rejected == 0


def test_too_short_for_the_window_is_refused(tiny_model_dir, planted):
    from effnet_trading.errors import DataError
    from effnet_trading.strategies.signal import bars_needed

    sm = SignalModel(tiny_model_dir)
    need = bars_needed(sm, planted.iloc[:100])
    assert need == sm.warmup + 1
    with pytest.raises(DataError, match=f"has {need - 1} bars but model .* needs at least {need}"):
        plugin.run_backtrader(planted.iloc[: need - 1], sm)
    assert len(plugin.run_backtrader(planted.iloc[:need], sm).equity) == need


def _run_feeds(feeds, model, resample=None, **kw):
    cerebro = bt.Cerebro(runonce=False, stdstats=False)
    for f in feeds:
        cerebro.adddata(f)
    if resample is not None:
        cerebro.resampledata(resample, timeframe=bt.TimeFrame.Minutes, compression=15)
    cerebro.addstrategy(_Record, model=model, **kw)
    return cerebro.run()[0]


def test_next_twice_for_one_bar_two_symbols_with_missing_bars(tiny_model_dir, bars):
    """A second symbol that has bars where ours has none makes backtrader call next() again for our
    last bar: the values are rewritten, no state advances, and the lines equal the batch scores."""
    mine = bars.drop(bars.index[200:203]).drop(bars.index[400:401])
    other = bars.drop(bars.index[300:302]) * [1.5, 1.5, 1.5, 1.5, 1.0]
    strat = _run_feeds([bt.feeds.PandasData(dataname=mine), bt.feeds.PandasData(dataname=other)], tiny_model_dir)
    got = _lines(strat, len(mine))
    expected = SignalModel(tiny_model_dir).predict_proba(mine)[["sell", "hold", "buy"]].to_numpy()
    np.testing.assert_allclose(got[:, :3], expected, rtol=1e-6, equal_nan=True)
    target = Policy(0.35).positions(SignalModel(tiny_model_dir).predict_proba(mine)).to_numpy()
    np.testing.assert_allclose(np.nan_to_num(got[:, 3]), target, atol=1e-12)


def test_next_twice_for_one_bar_with_a_resampled_second_feed(tiny_model_dir, bars):
    strat = _run_feeds(
        [bt.feeds.PandasData(dataname=bars)], tiny_model_dir, resample=bt.feeds.PandasData(dataname=bars)
    )
    got = _lines(strat, N_BARS)
    expected = SignalModel(tiny_model_dir).predict_proba(bars)[["sell", "hold", "buy"]].to_numpy()
    np.testing.assert_allclose(got[:, :3], expected, rtol=1e-6, equal_nan=True)


class _Switching(_BuyBiased):
    """Wins a class picked from each image's mean: sells, holds and buys change often (many orders)."""

    def predict(self, images, closes=None):
        k = (np.floor(images.mean(axis=(1, 2, 3)) * 200) % 3).astype(int)
        out = np.full((len(images), 3), 0.1)
        out[np.arange(len(images)), k] = 0.8
        return out


@pytest.mark.parametrize("scale", [1.0, 400.0])  # planted prices (~100) and BTC-like (~40,000)
def test_readme_example_gives_the_trades_of_run_backtrader(tiny_model_dir, bars, scale):
    """The README's plain-Cerebro example trades fractional units at the fill price: the same orders
    as run_backtrader (at BTC-like prices order_target_percent's whole units bought nothing)."""
    df = bars.copy()
    df[["open", "high", "low", "close"]] *= scale
    cerebro = bt.Cerebro()  # as in the README
    cerebro.adddata(bt.feeds.PandasData(dataname=df))
    cerebro.addstrategy(plugin.EfficientNetStrategy, model=SignalModel(_Switching(tiny_model_dir)), policy=Policy(0.5))
    cerebro.broker.setcommission(commission=0.001)
    strat = cerebro.run()[0]
    ref = plugin.run_backtrader(df, SignalModel(_Switching(tiny_model_dir)), policy=Policy(0.5), fees=0.001)
    fills = [r for r in strat.order_log if r[1] != 0.0]
    assert len(ref.orders) >= 20 and len(fills) == len(ref.orders)
    assert not [r for r in strat.order_log if r[1] == 0.0]  # nothing rejected
    np.testing.assert_allclose(
        [r[1] for r in fills], np.where(ref.orders["side"] == "buy", 1, -1) * ref.orders["size"], rtol=1e-9
    )
    np.testing.assert_allclose([r[2] for r in fills], ref.orders["price"], rtol=1e-12)
    assert list(plugin.num2timestamps([r[0] for r in fills])) == list(ref.orders["time"])
    assert strat.broker.getvalue() == pytest.approx(ref.final_equity, rel=1e-9)


def test_rejected_order_is_retried_next_bar(bars):
    """A buy the broker refuses for margin resets the held target: the strategy tries again next bar."""
    df = bars.copy()
    df.iloc[101:, :4] *= 1.05  # the open after the decision bar gaps up 5 %: a 99 % buy sized at the close is refused
    target = pd.Series(0.0, index=df.index)
    target.iloc[100:200] = 1.0
    data = plugin.ProbabilityData(dataname=df.join(target.rename("signal")))
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(data)
    cerebro.broker.setcommission(commission=0.0)
    cerebro.addstrategy(plugin.EfficientNetStrategy, signal=data.signal, stake=0.99)
    strat = cerebro.run()[0]
    log = pd.DataFrame(strat.order_log, columns=["dt", "size", "price", "fee"])
    times = list(plugin.num2timestamps(log["dt"]))
    assert times[0] == df.index[101] and log["size"].iloc[0] == 0.0  # refused at the gap
    assert times[1] == df.index[102] and log["size"].iloc[1] > 0  # retried and filled at the next open
    assert log["price"].iloc[1] == pytest.approx(df["open"].iloc[102])


def test_readme_headless_plot_workaround(tmp_path):
    """The README's `cerebro.plot()` workaround works without a display (fresh interpreter, no DISPLAY)."""
    import os
    import re
    import subprocess
    import sys
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    (block,) = re.findall(r"```py\n(.*?)```", readme, flags=re.S)
    setup = (
        "import numpy as np, pandas as pd, backtrader as bt\n"
        "idx = pd.date_range('2024-01-01', periods=120, freq='1h')\n"
        "c = 100 + np.cumsum(np.random.default_rng(0).normal(0, 1, 120))\n"
        "df = pd.DataFrame({'open': c, 'high': c + 1, 'low': c - 1, 'close': c, 'volume': 1.0}, index=idx)\n"
        "cerebro = bt.Cerebro(); cerebro.adddata(bt.feeds.PandasData(dataname=df)); cerebro.addstrategy(bt.Strategy)\n"
        "cerebro.run()\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "MPLBACKEND", "WAYLAND_DISPLAY")}
    res = subprocess.run(
        [sys.executable, "-c", setup + block], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert (tmp_path / "backtest.png").stat().st_size > 1000


def test_strategy_stops_ordering_once_the_broker_value_is_not_positive(caplog):
    """backtrader does not liquidate: a 1x short through a tripling takes the broker's value below zero;
    from that close on the strategy sends no order (the later buy never goes out) and says so."""
    n = 60
    idx = pd.date_range("2024-01-01", periods=n, freq="1h", tz="UTC")
    close = np.concatenate([np.full(20, 100.0), np.linspace(100, 300, 20), np.full(20, 150.0)])
    frame = pd.DataFrame({"open": close, "high": close, "low": close, "close": close, "volume": 1.0}, index=idx)
    target = pd.Series(0.0, index=idx)
    target.iloc[10:] = -1.0
    target.iloc[50:] = 1.0  # after the ruin
    data = plugin.ProbabilityData(dataname=frame.join(target.rename("signal")))
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(data)
    cerebro.broker.setcommission(commission=0.0)
    cerebro.addstrategy(plugin.EfficientNetStrategy, signal=data.signal, stake=0.9)
    with caplog.at_level("WARNING"):
        strat = cerebro.run()[0]
    ruined = pd.Timestamp(strat.ruined, tz="UTC")
    value = pd.Series(strat.equity_log, index=idx)
    assert value[value <= 0].index[0] == ruined  # the first close at or below zero
    times = plugin.num2timestamps([r[0] for r in strat.order_log])
    assert len(times) == 1 and times[0] == idx[11]  # the short only: no order after the ruin
    assert "ruined" in caplog.text
