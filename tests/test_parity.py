"""Parity across engines: the same model, data and policy give the same signals in backtrader
``once()``, backtrader ``next()``, vectorbt, the ``SignalModel.update`` loop and the batch path,
and the same trades (bars, fill = next open, equity) as ``strategies.execution.simulate``.
Plus nulls: no edge on a random walk after fees; the trained model's edge on planted data."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd
import pytest
from _helpers import wild_ohlcv

from effnet_trading.errors import DataError, SpecError
from effnet_trading.imaging import render
from effnet_trading.model_zoo.runtime import Predictor
from effnet_trading.plugins import backtrader as bt_plugin
from effnet_trading.plugins import vectorbt as vbt_plugin
from effnet_trading.strategies import Policy, SignalModel, performance_summary, simulate

N_BARS = 1500


class Decisive:
    """The tiny untrained model with decisive outputs: its log-probabilities minus their mean on a
    fixed reference batch, times ``scale``, through a softmax. Row-wise (batch-independent), so the
    batch and per-bar paths must agree; the untrained model alone always says 'hold' (no trades)."""

    def __init__(self, model_dir, reference_ohlcv, scale: float = 400.0):
        self.inner = Predictor(model_dir)
        self.spec, self.class_names, self.input_shape = self.inner.spec, self.inner.class_names, self.inner.input_shape
        self.name = "decisive"
        self.scale = scale
        self.offset = np.log(self.inner.predict(render(self.spec, reference_ohlcv)).astype(np.float64)).mean(axis=0)

    def predict(self, images, closes=None):
        z = (np.log(self.inner.predict(images).astype(np.float64)) - self.offset) * self.scale
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)


@pytest.fixture(scope="module")
def bars(planted) -> pd.DataFrame:
    return planted.iloc[:N_BARS]


@pytest.fixture(scope="module")
def decisive(tiny_model_dir, planted) -> Decisive:
    return Decisive(tiny_model_dir, planted.iloc[5000:5200])


def _update_loop(model, frame: pd.DataFrame) -> pd.DataFrame:
    """The slow reference: one ``update`` per bar."""
    sm = SignalModel(model)
    rows = [sm.update({"timestamp": ts, **row}) for ts, row in zip(frame.index, frame.to_dict("records"))]
    out = np.array([[np.nan] * 3 if r is None else r.to_numpy() for r in rows])
    return pd.DataFrame(out, index=frame.index, columns=list(sm.class_names))


def _all_signals(model, frame: pd.DataFrame, threshold: float) -> dict[str, tuple[pd.DataFrame, pd.Series]]:
    batch = SignalModel(model).predict_proba(frame)
    loop = _update_loop(model, frame)
    policy = Policy(threshold)
    step = pd.Series([policy.step(None if r.isna().any() else r) for _, r in loop.iterrows()], index=frame.index)
    once = bt_plugin.run_backtrader(frame, SignalModel(model), policy=Policy(threshold), fees=0.0)
    nxt = bt_plugin.run_backtrader(frame, SignalModel(model), policy=Policy(threshold), fees=0.0, runonce=False)
    ind = vbt_plugin.EfficientNetIndicator.run(
        frame.open, frame.high, frame.low, frame.close, frame.volume, model=SignalModel(model), threshold=threshold
    )
    vbt_probs = pd.DataFrame({c: getattr(ind, c).to_numpy() for c in ("sell", "hold", "buy")}, index=frame.index)
    return {
        "batch": (batch, Policy(threshold).positions(batch)),
        "update_loop": (loop, step),
        "backtrader_once": (once.probs, once.target),
        "backtrader_next": (nxt.probs, nxt.target),
        "vectorbt": (vbt_probs, pd.Series(ind.signal.to_numpy(), index=frame.index)),
    }


@pytest.mark.parametrize("which", ["tiny", "decisive"])
def test_signals_identical_in_every_path(which, tiny_model_dir, decisive, bars):
    model = tiny_model_dir if which == "tiny" else decisive
    paths = _all_signals(model, bars, threshold=0.4)
    ref_probs, ref_target = paths.pop("batch")
    assert ref_probs.notna().all(axis=1).sum() > N_BARS - 40  # scored after the 32-bar warm-up
    for name, (probs, target) in paths.items():
        np.testing.assert_allclose(
            probs[["sell", "hold", "buy"]].to_numpy(),
            ref_probs[["sell", "hold", "buy"]].to_numpy(),
            rtol=1e-6,
            atol=1e-7,
            equal_nan=True,
            err_msg=name,
        )
        assert (target.to_numpy() == ref_target.to_numpy()).all(), name
    if which == "decisive":
        assert ref_target.diff().abs().gt(0).sum() > 50  # it trades: the trade parity below is not vacuous


def _vectorbt_orders(pf, index) -> pd.DataFrame:
    r = pf.orders.records
    return pd.DataFrame(
        {
            "time": index[r["idx"]],
            "size": r["size"],
            "price": r["price"],
            "fee": r["fees"],
            "side": np.where(r["side"] == 0, "buy", "sell"),
        }
    )


@pytest.mark.parametrize("fees,slippage,long_only", [(0.0, 0.0, False), (0.001, 0.0, False), (0.001, 0.0005, True)])
def test_trades_agree_with_simulate(fees, slippage, long_only, decisive, bars):
    probs = SignalModel(decisive).predict_proba(bars)
    target = Policy(0.4, long_only=long_only).positions(probs)
    ref = simulate(bars, target, fees=fees, slippage=slippage)
    assert len(ref.orders) > 50
    # every fill is at the open of the bar after a target change, moved by slippage against the trade
    changed = np.flatnonzero(target.to_numpy()[:-1] != np.concatenate([[0.0], target.to_numpy()[:-2]]))
    assert list(ref.orders["time"]) == list(bars.index[changed + 1])
    sign = np.where(ref.orders["side"] == "buy", 1.0, -1.0)
    np.testing.assert_allclose(
        ref.orders["price"], bars["open"].to_numpy()[changed + 1] * (1 + slippage * sign), rtol=1e-12
    )

    bt_res = bt_plugin.run_backtrader(
        bars, SignalModel(decisive), policy=Policy(0.4, long_only=long_only), fees=fees, slippage=slippage
    )
    pf = vbt_plugin.portfolio_from_signals(bars, target, fees=fees, slippage=slippage)
    vb_orders = _vectorbt_orders(pf, bars.index)
    assert bt_res.rejected == 0
    for name, orders in (("backtrader", bt_res.orders), ("vectorbt", vb_orders)):
        assert list(orders["time"]) == list(ref.orders["time"]), name
        assert list(orders["side"]) == list(ref.orders["side"]), name
        np.testing.assert_allclose(orders["price"], ref.orders["price"], rtol=1e-12, err_msg=name)
        # sizes/fees: backtrader buys keep a 1e-12 cash margin (see EfficientNetStrategy._exact_order)
        np.testing.assert_allclose(orders["size"], ref.orders["size"], rtol=1e-9, err_msg=name)
        np.testing.assert_allclose(orders["fee"], ref.orders["fee"], rtol=1e-9, atol=1e-12, err_msg=name)
    # equity: same orders -> same curve; 1e-9 relative covers the 1e-12 margin compounded over ~200 orders
    np.testing.assert_allclose(bt_res.equity.to_numpy(), ref.equity.to_numpy(), rtol=1e-9)
    np.testing.assert_allclose(pf.value().to_numpy(), ref.equity.to_numpy(), rtol=1e-9)
    bt_trades = bt_res.trades
    assert list(bt_trades["entry_time"]) == list(ref.trades["entry_time"])
    assert list(bt_trades["exit_time"]) == list(ref.trades["exit_time"])
    vb_trades = pf.trades.records_readable
    closed = ref.trades[ref.trades["status"] == "closed"]
    assert set(closed["entry_time"]) <= set(vb_trades["Entry Timestamp"])


def _circular_null(frame, target: np.ndarray, fees: float, n: int = 200, seed: int = 0) -> np.ndarray:
    """Final returns of the same targets circularly shifted by random offsets: same turnover and
    exposure, no alignment with the bars."""
    rng = np.random.default_rng(seed)
    shifts = rng.integers(100, len(target) - 100, size=n)
    return np.array([simulate(frame, np.roll(target, s), fees=fees).final_equity / 10_000 - 1 for s in shifts])


def test_no_edge_on_random_walk(decisive, random_walk):
    # three disjoint 2,000-bar slices; under the null each beats the 95th percentile of its
    # circular-shift null with probability 0.05, so two or more (p ~ 0.007) would signal an edge
    above, t_stats, returns = 0, [], []
    for lo in (0, 6000, 12000):
        frame = random_walk.iloc[lo : lo + 2000]
        target = Policy(0.4).positions(SignalModel(decisive).predict_proba(frame)).to_numpy()
        res = simulate(frame, target, fees=0.001)
        r = res.returns.to_numpy()[1:]
        t_stats.append(r.mean() / r.std(ddof=1) * np.sqrt(len(r)))
        returns.append(res.final_equity / 10_000 - 1)
        above += returns[-1] > np.quantile(_circular_null(frame, target, fees=0.001, n=100, seed=lo), 0.95)
    assert max(t_stats) < 2.0, t_stats  # no significant positive mean return after fees
    assert above <= 1, (above, returns)
    assert np.mean(returns) < 0  # fees on ~10 % turnover per bar eat a random signal


@pytest.mark.slow
def test_trained_model_beats_null_on_planted(trained_model_dir, planted):
    frame = planted.iloc[12_000:15_000]  # after the training span: unseen
    probs = SignalModel(trained_model_dir).predict_proba(frame)
    target = Policy(0.5).positions(probs)
    bt_res = bt_plugin.run_backtrader(frame, trained_model_dir, policy=Policy(0.5), fees=0.0)
    np.testing.assert_array_equal(bt_res.target.to_numpy(), target.to_numpy())
    res = simulate(frame, target, fees=0.0)
    strat = res.final_equity / 10_000 - 1
    null = _circular_null(frame, target.to_numpy(), fees=0.0)
    assert strat > np.quantile(null, 0.95), (strat, np.quantile(null, [0.5, 0.95]))


def test_a_ruin_is_the_same_in_every_engine():
    """A 1x short held through a rally past double its entry: simulate, backtrader and vectorbt (through
    run_backtest) all close it at the bankruptcy price and hold nothing after; the later buy never fills.
    Neither engine liquidates by itself: backtrader's broker and vectorbt's portfolio go below zero."""
    from effnet_trading.plugins.backtest import run_backtest
    from effnet_trading.strategies.scorer import PrecomputedScores

    n = 60
    idx = pd.date_range("2024-01-01", periods=n, freq="1h", tz="UTC")
    close = np.concatenate([np.full(20, 100.0), np.linspace(100, 260, 20), np.full(20, 150.0)])
    open_ = np.concatenate([[100.0], close[:-1]])
    frame = pd.DataFrame(
        {"open": open_, "high": np.maximum(open_, close) * 1.01, "low": np.minimum(open_, close) * 0.99}, index=idx
    ).assign(close=close, volume=1.0)
    probs = pd.DataFrame({"sell": 0.1, "hold": 0.8, "buy": 0.1}, index=idx)
    probs.iloc[10:] = [0.9, 0.05, 0.05]  # short from bar 11
    probs.iloc[50:] = [0.05, 0.05, 0.9]  # a buy after the ruin: must never fill
    policy = Policy(0.4)
    ref = simulate(frame, policy.positions(probs), fees=0.001, slippage=0.0005)
    assert ref.ruined_at is not None and ref.final_equity == 0.0
    assert ref.orders["via"].tolist() == ["next_open", "liquidation"]
    bt_res = bt_plugin.run_backtrader(frame, PrecomputedScores(probs), policy=policy, fees=0.001, slippage=0.0005)
    assert bt_res.ruined_at == ref.ruined_at
    for engine in ("backtrader", "vectorbt"):
        out = run_backtest(frame, PrecomputedScores(probs), engine=engine, policy=policy, fees=0.001, slippage=0.0005)
        np.testing.assert_allclose(out.equity.to_numpy(), ref.equity.to_numpy(), rtol=1e-9, atol=1e-9, err_msg=engine)
        assert out.summary["strategy"]["ruined"] and out.summary["strategy"]["ruined_at"] == str(ref.ruined_at)
        assert out.trades["status"].tolist() == ["liquidated"], engine
        np.testing.assert_allclose(out.trades["pnl"], ref.trades["pnl"], rtol=1e-9, err_msg=engine)
        assert out.summary["strategy"]["total_return"] == -1.0 and out.summary["strategy"]["max_drawdown"] == -1.0
        assert out.held.tolist() == ref.position.tolist(), engine  # nothing held after the ruin
        assert out.summary["strategy"]["turnover"] == performance_summary(ref)["turnover"] == 2.0
    target = policy.positions(probs)
    with pytest.warns(vbt_plugin.RuinWarning, match=re.escape(f"at {ref.ruined_at}")):  # its UTC timestamp
        pf = vbt_plugin.portfolio_from_signals(frame, target, fees=0.001, slippage=0.0005)
    assert pf.value().min() < 0  # what the warning is about: vectorbt's own value goes below zero
    wide = pd.DataFrame({"short": target, "flat": 0.0 * target})
    with pytest.warns(vbt_plugin.RuinWarning, match="column 'short' at"):  # one column of several
        vbt_plugin.portfolio_from_signals(frame, wide, fees=0.001)
    with pytest.warns(vbt_plugin.RuinWarning, match="column 'X' at"):  # {symbol: frame}
        vbt_plugin.portfolio_from_signals({"X": frame, "Y": frame}, wide.set_axis(["X", "Y"], axis=1), fees=0.001)
    # shared cash is one account; Y flat, so it is X's account and is ruined at the same bar
    shared_at = re.escape(f"the shared-cash account at {ref.ruined_at}")
    with pytest.warns(vbt_plugin.RuinWarning, match=shared_at):
        vbt_plugin.portfolio_from_signals(
            {"X": frame, "Y": frame}, wide.set_axis(["X", "Y"], axis=1), fees=0.001, slippage=0.0005, cash_sharing=True
        )
    with warnings.catch_warnings():  # half short X, half long Y at the same prices: hedged, never ruined
        warnings.simplefilter("error", vbt_plugin.RuinWarning)
        hedged = pd.DataFrame({"X": target / 2, "Y": -target / 2})
        pf = vbt_plugin.portfolio_from_signals({"X": frame, "Y": frame}, hedged, fees=0.001, cash_sharing=True)
    assert pf.value().min() > 0.9 * 10_000.0

    from effnet_trading.plugins.portfolio import run_backtest_many

    hold = pd.DataFrame({"sell": 0.05, "hold": 0.9, "buy": 0.05}, index=idx)
    scorers = {"X": PrecomputedScores(probs), "Y": PrecomputedScores(hold)}
    for engine in ("backtrader", "vectorbt"):  # separate sleeves: X's sleeve holds nothing after its ruin
        many = run_backtest_many({"X": frame, "Y": frame}, scorers, engine=engine, policy=policy, fees=0.001)
        x = many.summary["symbols"]["X"]["strategy"]
        assert x["ruined_at"] == str(ref.ruined_at)
        np.testing.assert_allclose(many.summary["strategy"]["exposure"], x["exposure"], err_msg=engine)
        assert many.summary["strategy"]["turnover"] == 1.0, engine  # half the portfolio, in and out


def _spike_frame(n: int = 60, at: int = 30, high: float = 250.0) -> pd.DataFrame:
    """Flat at 100 but for one wick to ``high`` at bar ``at`` (the bar closes back at 100)."""
    idx = pd.date_range("2024-01-01", periods=n, freq="1h", tz="UTC")
    close = np.full(n, 100.0)
    hi = close * 1.01
    hi[at] = high
    return pd.DataFrame({"open": close, "high": hi, "low": close * 0.99, "close": close, "volume": 1.0}, index=idx)


@pytest.mark.parametrize("engine", ["vectorbt", "backtrader"])
def test_a_shared_cash_pool_is_ruined_as_one_account_in_both_engines(engine):
    """Two symbols, each short half the pool from bar 11: one 1x short over the pool. A wick past double the
    entry ruins it inside a bar that closes flat: both engines report simulate's ruin bar as ruined_at, with
    equity 0 from it (the engines' own values never reach 0 there). Short X, long Y on the same prices is
    hedged: never ruined."""
    from effnet_trading.plugins.portfolio import run_backtest_many
    from effnet_trading.strategies.scorer import PrecomputedScores

    frame = _spike_frame()
    probs = pd.DataFrame({"sell": 0.1, "hold": 0.8, "buy": 0.1}, index=frame.index)
    probs.iloc[10:] = [0.9, 0.05, 0.05]
    policy = Policy(0.4)
    ref = simulate(frame, policy.positions(probs), fees=0.001)
    assert ref.ruined_at == frame.index[30]
    frames = {"X": frame, "Y": frame}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", vbt_plugin.RuinWarning)
        many = run_backtest_many(
            frames, PrecomputedScores(probs), engine=engine, policy=policy, fees=0.001, cash_sharing=True
        )
    s = many.summary["strategy"]
    assert s["ruined_at"] == str(ref.ruined_at) and s["ruined"] and s["total_return"] == -1.0
    assert (many.equity[many.equity.index >= ref.ruined_at] == 0.0).all()
    assert (many.equity[many.equity.index < ref.ruined_at] > 9_000.0).all()
    long_y = probs.copy()
    long_y.iloc[10:] = [0.05, 0.05, 0.9]
    scorers = {"X": PrecomputedScores(probs), "Y": PrecomputedScores(long_y)}
    hedged = run_backtest_many(frames, scorers, engine=engine, policy=policy, fees=0.001, cash_sharing=True)
    assert hedged.summary["strategy"]["ruined_at"] is None and not hedged.summary["strategy"]["ruined"]


def test_vectorbt_ruin_bars_are_per_group_and_naive_targets_are_refused():
    """A shared-cash portfolio of two groups is two accounts: one ruin bar each, the ruined group's the same as
    that group alone. Tz-naive targets for {symbol: frame} share no timestamp with the UTC frames: refused."""
    import vectorbt as vbt

    frame = _spike_frame()
    t = pd.Series(0.0, index=frame.index)
    t.iloc[10:] = -1.0
    wide = {k: frame[k] for k in ("open", "high", "low", "close")}
    cols = ["a", "b", "c", "d"]

    def prices(k, c=cols):
        return pd.DataFrame({x: wide[k] for x in c})

    tg = pd.DataFrame({"a": 0 * t, "b": 0 * t, "c": t, "d": 0 * t})
    kw = {"size_type": "targetpercent", "fees": 0.001, "init_cash": 10_000.0, "cash_sharing": True}
    two = vbt.Portfolio.from_orders(
        prices("close"), size=vbt_plugin.contract_orders(tg), price=prices("open"), group_by=[0, 0, 1, 1], **kw
    )
    got = vbt_plugin.ruin_bars(two, *(prices(k) for k in ("open", "high", "low", "close")), 10_000.0)
    one = vbt.Portfolio.from_orders(
        prices("close", ["c", "d"]),
        size=vbt_plugin.contract_orders(tg[["c", "d"]]),
        price=prices("open", ["c", "d"]),
        group_by=True,
        **kw,
    )
    alone = vbt_plugin.ruin_bars(one, *(prices(k, ["c", "d"]) for k in ("open", "high", "low", "close")), 10_000.0)
    assert got.tolist() == [-1, 30] and alone.tolist() == [30]
    flat = vbt_plugin.ruin_bars(two, *(frame[k] for k in ("open", "high", "low", "close")), 10_000.0)
    assert flat.tolist() == [-1, 30]  # (T,) prices: the same for every column
    naive = pd.DataFrame({"X": t, "Y": t}).set_axis(frame.index.tz_localize(None))
    with pytest.raises(DataError, match="share no timestamps"):
        vbt_plugin.portfolio_from_signals({"X": frame, "Y": frame}, naive)


def test_vectorbt_ruin_bars_agree_with_apply_ruin_on_every_column():
    """The warning's vectorised check (vectorbt's cash and assets per bar) finds the same ruin bar as the
    contract's rule on each column's fills, ruined or not, with fees, slippage and fractional targets."""
    from effnet_trading.strategies.execution import apply_ruin, pooled_ruin

    found = []
    for seed in (2, 3, 4):  # none, some and most of the columns ruined
        rng = np.random.default_rng(1000 + seed)
        n = 300
        frame = wild_ohlcv(seed, n)
        idx = frame.index
        levels = [-1.0, -0.5, 0.0, 0.5, 1.0]
        targets = pd.DataFrame({f"c{j}": np.repeat(rng.choice(levels, n // 15), 15) for j in range(8)}, index=idx)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", vbt_plugin.RuinWarning)
            pf = vbt_plugin.portfolio_from_signals(frame, targets, fees=0.001, slippage=0.0005)
        bars = vbt_plugin.ruin_bars(pf, frame.open, frame.high, frame.low, frame.close, 10_000.0)
        for j in range(targets.shape[1]):
            fills = vbt_plugin.portfolio_fills(pf, idx, j)
            _, ruin = apply_ruin(frame, fills, 10_000.0)
            assert bars[j] == (-1 if ruin is None else ruin), (seed, j)
            pooled = pooled_ruin({"X": frame}, {"X": fills}, 10_000.0)  # a pool of one symbol is its account
            assert pooled == (None if ruin is None else idx[ruin]), (seed, j)
            found.append(ruin is not None)
    assert any(found) and not all(found)
    with pytest.raises(SpecError, match="outside its 300 bars"):
        pooled_ruin({"X": frame}, {"X": [fills[0]._replace(bar=-1)]}, 10_000.0)
