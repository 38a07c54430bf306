"""Sizers from class probabilities: history == one bar at a time, Kelly against a hand computation,
the calibration guard, and the same fills in backtrader, vectorbt and ``simulate``."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from _helpers import edit_card, random_walk_ohlcv

from effnet_trading.errors import SpecError
from effnet_trading.strategies import CappedKelly, FixedFraction, Policy, ProbabilityWeighted, VolTarget, simulate

N = 800
SIZERS = [
    FixedFraction(0.3, threshold=0.5),
    ProbabilityWeighted(0.8),
    CappedKelly(cap=0.5, window=20, allow_uncalibrated=True),
    VolTarget(0.5, window=30, periods_per_year=105_120),
]


@pytest.fixture(scope="module")
def bars(planted):
    return planted.iloc[:N]


@pytest.fixture(scope="module")
def probs(bars):
    rng = np.random.default_rng(0)
    p = rng.dirichlet([1.0, 1.0, 1.0], size=N)
    p[:40] = np.nan  # warm-up
    return pd.DataFrame(p, index=bars.index, columns=["sell", "hold", "buy"])


@pytest.mark.parametrize("sizer", SIZERS, ids=lambda s: type(s).__name__)
def test_history_equals_one_bar_at_a_time(sizer, bars, probs):
    policy = Policy(threshold=0.45)
    target = policy.positions(probs)
    hist = sizer.sizes(bars, probs, target)
    sizer.reset()
    live = [
        sizer.step(bar, None if row.isna().any() else row, t)
        for (ts, bar), (_, row), t in zip(bars.iterrows(), probs.iterrows(), target)
    ]
    np.testing.assert_allclose(hist.to_numpy(), live, rtol=1e-12, atol=1e-15)
    assert (hist != 0).sum() > 50 and hist.abs().max() <= 1.0
    # sized only where the decision changes: between changes the size is held (no rebalancing)
    changes = target.ne(target.shift(fill_value=0.0))
    held = hist[~changes & (target != 0)]
    assert (held.to_numpy() == hist.shift(1)[~changes & (target != 0)].to_numpy()).all()


def test_kelly_by_hand(bars, probs):
    sizer = CappedKelly(cap=1.0, window=20, allow_uncalibrated=True)
    target = Policy(threshold=0.45).positions(probs)
    sized = sizer.sizes(bars, probs, target)
    close = bars["close"].to_numpy()
    checked = 0
    for t in np.flatnonzero(target.ne(target.shift(fill_value=0.0)).to_numpy() & (target.to_numpy() != 0)):
        if t < 20:
            continue
        sign = math.copysign(1.0, target.iloc[t])
        r = [sign * math.log(close[i] / close[i - 1]) for i in range(t - 19, t + 1)]
        gains, losses = [x for x in r if x > 0], [-x for x in r if x < 0]
        b = (sum(gains) / len(gains)) / (sum(losses) / len(losses))
        p = probs["buy" if sign > 0 else "sell"].iloc[t]
        want = min(max(p - (1 - p) / b, 0.0), 1.0)
        assert sized.iloc[t] == pytest.approx(sign * want, rel=1e-9, abs=1e-12)
        checked += 1
    assert checked > 20


def test_kelly_needs_a_calibrated_model(decisive_model_dir, tmp_path, bars):
    from effnet_trading.plugins.backtrader import run_backtrader
    from effnet_trading.strategies import SignalModel

    with pytest.raises(SpecError, match="calibrated probabilities.*allow_uncalibrated=True"):
        CappedKelly().check(SignalModel(decisive_model_dir))
    calibration = {"method": "temperature", "temperature": 1.3}
    calibrated = edit_card(
        decisive_model_dir, lambda card: card.update(calibration=calibration), copy_to=tmp_path / "calibrated"
    )
    CappedKelly().check(SignalModel(calibrated))  # accepted
    with pytest.raises(SpecError, match="calibrated"):
        run_backtrader(bars, decisive_model_dir, sizer=CappedKelly())
    from effnet_trading.plugins.vectorbt import policy_grid

    raw = pd.DataFrame({"sell": 0.2, "hold": 0.3, "buy": 0.5}, index=bars.index)
    with pytest.raises(SpecError, match="calibrated"):  # the vectorbt grid refuses it too
        policy_grid(bars, raw, sizing=[CappedKelly()])


@pytest.mark.slow
@pytest.mark.parametrize("sizer", SIZERS[1:3], ids=lambda s: type(s).__name__)
def test_same_fills_in_backtrader_vectorbt_and_simulate(sizer, bars, decisive_model_dir):
    from effnet_trading.plugins.backtrader import run_backtrader
    from effnet_trading.plugins.vectorbt import portfolio_from_signals
    from effnet_trading.strategies import SignalModel

    policy = Policy(threshold=0.4)
    bars = bars.iloc[:400]
    probs = SignalModel(decisive_model_dir).predict_proba(bars)
    sized = sizer.sizes(bars, probs, policy.positions(probs))
    assert sized.abs().between(0.0, 1.0).all() and sized.abs().nunique() > 3
    ref = simulate(bars, sized, fees=0.001, slippage=0.0005)
    pf = portfolio_from_signals(bars, sized, fees=0.001, slippage=0.0005)
    bt_once = run_backtrader(bars, decisive_model_dir, policy=policy, sizer=sizer, fees=0.001, slippage=0.0005)
    # one bar at a time (next(), as live) once: CappedKelly is the sizer with state
    bt_next = (
        run_backtrader(bars, decisive_model_dir, policy=policy, sizer=sizer, fees=0.001, slippage=0.0005, runonce=False)
        if isinstance(sizer, CappedKelly)
        else bt_once
    )
    np.testing.assert_allclose(bt_once.target.to_numpy(), sized.to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(pf.value().to_numpy(), ref.equity.to_numpy(), rtol=1e-9)
    np.testing.assert_allclose(bt_once.equity.to_numpy(), ref.equity.to_numpy(), rtol=1e-9)
    np.testing.assert_allclose(bt_next.equity.to_numpy(), ref.equity.to_numpy(), rtol=1e-6)
    np.testing.assert_allclose(
        np.array([f.units for f in bt_once.fills]), np.array([f.units for f in ref.fills]), rtol=1e-9
    )


@pytest.mark.parametrize("sizer", SIZERS, ids=lambda s: type(s).__name__)
def test_effnet_sizer_gives_the_built_in_strategy_sizes(sizer, bars, probs):
    """A plain bt.Strategy that calls self.buy()/self.sell()/self.close() with ``EffnetSizer`` trades
    the units the built-in ``EfficientNetStrategy`` (exact=False: sized from the close) trades."""
    import copy

    import backtrader as bt

    from effnet_trading.plugins.backtrader import ArrayData, EfficientNetSignal, EfficientNetStrategy, EffnetSizer
    from effnet_trading.strategies import PrecomputedScores

    frame, policy = bars.iloc[:300], Policy(threshold=0.4)
    scores = PrecomputedScores(probs.iloc[:300])

    class Mine(bt.Strategy):
        def __init__(self):
            self.sig = EfficientNetSignal(self.data, model=scores, policy=policy)  # no sizer: the Sizer sizes
            self.last, self.values = 0.0, []

        def next(self):
            t = float(self.sig.signal[0])
            t = 0.0 if t != t else float(np.sign(t))
            if t != self.last:
                if self.position:
                    self.close()
                if t:
                    (self.buy if t > 0 else self.sell)()
                self.last = t
            self.values.append(self.broker.getvalue())

    def cerebro():
        c = bt.Cerebro(stdstats=False)
        c.adddata(ArrayData(dataname=frame))
        c.broker.setcash(10_000.0)
        c.broker.setcommission(commission=0.001)
        return c

    built_in = cerebro()
    built_in.addstrategy(EfficientNetStrategy, model=scores, policy=policy, sizer=copy.deepcopy(sizer), exact=False)
    ref = built_in.run()[0]
    mine = cerebro()
    mine.addstrategy(Mine)
    mine.addsizer(EffnetSizer, rule=copy.deepcopy(sizer))
    got = mine.run()[0]
    traded = [r for r in ref.order_log if r[1] != 0.0]
    assert len(traded) >= 4 and len({round(abs(r[1]), 9) for r in traded}) >= 3  # several different sizes
    np.testing.assert_allclose(got.values, ref.equity_log[-len(got.values) :], rtol=1e-9)
    assert got.broker.getvalue() != pytest.approx(10_000.0)


def test_effnet_sizer_without_probabilities_says_what_to_add(bars):
    import backtrader as bt

    from effnet_trading.plugins.backtrader import ArrayData, EffnetSizer

    class BuysBlind(bt.Strategy):
        def next(self):
            self.buy()

    c = bt.Cerebro(stdstats=False)
    c.adddata(ArrayData(dataname=bars.iloc[:50]))
    c.addstrategy(BuysBlind)
    c.addsizer(EffnetSizer, rule=ProbabilityWeighted(0.8))
    with pytest.raises(SpecError, match="add an EfficientNetSignal"):
        c.run()


def test_effnet_sizer_checks_every_feeds_scorer():
    """Kelly refuses uncalibrated probabilities on each feed, not only on the first feed it sizes."""
    import backtrader as bt

    from effnet_trading.plugins.backtrader import ArrayData, EfficientNetSignal, EffnetSizer
    from effnet_trading.strategies import PrecomputedScores

    idx = pd.date_range("2024-01-01", periods=80, freq="h", tz="UTC")
    p = pd.DataFrame(np.tile([0.1, 0.1, 0.8], (80, 1)), index=idx, columns=["sell", "hold", "buy"])
    cal = PrecomputedScores(p, calibration={"method": "temperature", "temperature": 1.5})
    raw = PrecomputedScores(p)

    class TwoFeeds(bt.Strategy):
        def __init__(self):
            self.sigs = [EfficientNetSignal(d, model=m, policy=Policy(0.4)) for d, m in zip(self.datas, (cal, raw))]

        def next(self):
            if len(self) == 40:
                self.buy(data=self.datas[0])  # calibrated: sized
            if len(self) == 41:
                self.buy(data=self.datas[1])  # raw: must be refused

    c = bt.Cerebro(stdstats=False)
    c.adddata(ArrayData(dataname=random_walk_ohlcv(1)), name="calibrated")
    c.adddata(ArrayData(dataname=random_walk_ohlcv(2)), name="raw")
    c.broker.setcash(10_000.0)
    c.addstrategy(TwoFeeds)
    c.addsizer(EffnetSizer, rule=CappedKelly(cap=0.5, window=20))
    with pytest.raises(SpecError, match="CappedKelly needs calibrated probabilities"):
        c.run()
