"""backtrader with one broker for several symbols (shared cash) against vectorbt's cash_sharing on the
same precomputed scores, the cash guard when the cash binds, and the EffnetSizer against the built-in
strategy's sizes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from _helpers import random_walk_ohlcv

from effnet_trading.errors import DataError
from effnet_trading.plugins.backtrader import run_backtrader_many
from effnet_trading.plugins.portfolio import run_backtest_many
from effnet_trading.plugins.vectorbt import portfolio_from_signals
from effnet_trading.strategies import Policy, PrecomputedScores

N = 300
FEES, SLIP = 0.001, 0.0005


@pytest.fixture(scope="module")
def frames(planted):
    """Three symbols: different stretches of the planted bars; the third starts 60 bars late."""
    index = planted.index[:N]
    out = {}
    for i, sym in enumerate(["aaa", "bbb", "ccc"]):
        part = planted.iloc[i * 2_000 : i * 2_000 + N].copy()
        part.index = index
        out[sym] = part.iloc[60:] if sym == "ccc" else part
    return out


@pytest.fixture(scope="module")
def scores(frames):
    """Random probabilities per symbol (a 10-bar warm-up), as ``PrecomputedScores.by_symbol`` would give."""
    rng = np.random.default_rng(1)
    out = {}
    for sym, f in frames.items():
        p = rng.dirichlet([1.0, 1.0, 1.0], size=len(f))
        p[:10] = np.nan
        out[sym] = PrecomputedScores(pd.DataFrame(p, index=f.index, columns=["sell", "hold", "buy"]))
    return out


def _vectorbt(frames, scores, policy, stake):
    targets = pd.DataFrame({s: policy.positions(scores[s].probs) * stake for s in frames})
    return portfolio_from_signals(frames, targets, fees=FEES, slippage=SLIP, cash_sharing=True)


def _vbt_fills(pf, sym):
    o = pf.orders.records_readable
    o = o[o["Column"] == sym]
    sign = np.where(o["Side"].astype(str) == "Buy", 1.0, -1.0)
    return o["Timestamp"].to_numpy(), o["Size"].to_numpy() * sign, o["Price"].to_numpy(), o["Fees"].to_numpy()


def _cash_path(res, frames, init_cash):
    """The cash after each bar's fills, rebuilt from the fills of every symbol."""
    flows = []
    for sym, fills in res.fills.items():
        idx = frames[sym].index
        flows += [(idx[f.bar], -f.units * f.price - f.fee) for f in fills]
    flow = pd.Series([v for _, v in flows], index=[t for t, _ in flows]).groupby(level=0).sum().sort_index()
    return init_cash + flow.cumsum()


@pytest.mark.parametrize("runonce", [True, False], ids=["once", "next"])
def test_same_fills_as_vectorbt_where_cash_does_not_bind(frames, scores, runonce):
    policy, stake = Policy(threshold=0.45), 0.3  # long and short, three symbols at 0.3 of the equity at most
    res = run_backtrader_many(frames, scores, policy=policy, fees=FEES, slippage=SLIP, stake=stake, runonce=runonce)
    pf = _vectorbt(frames, scores, policy, stake)
    for sym in frames:
        when, units, price, fee = _vbt_fills(pf, sym)
        mine = res.fills[sym]
        assert len(mine) == len(when) >= 5, sym
        np.testing.assert_array_equal(frames[sym].index[[f.bar for f in mine]], when)
        np.testing.assert_allclose([f.units for f in mine], units, rtol=1e-9)
        np.testing.assert_allclose([f.price for f in mine], price, rtol=1e-12)
        np.testing.assert_allclose([f.fee for f in mine], fee, rtol=1e-9)
    np.testing.assert_allclose(res.equity.to_numpy(), pf.value().to_numpy(), rtol=1e-9)
    assert len(res.equity) == N and res.equity.index.equals(frames["aaa"].index)


@pytest.mark.parametrize("long_only", [True, False], ids=["long", "long-short"])
def test_cash_binds_no_order_spends_cash_that_is_not_there(frames, scores, long_only):
    """Three symbols at 0.6 of the equity each: the last buys of a bar are cut to the cash left."""
    policy, stake, cash = Policy(threshold=0.4, long_only=long_only), 0.6, 10_000.0
    res = run_backtrader_many(frames, scores, policy=policy, fees=FEES, slippage=SLIP, stake=stake, init_cash=cash)
    path = _cash_path(res, frames, cash)
    assert path.min() >= -1e-6 * cash  # never below zero after any bar's fills
    held = pd.DataFrame({s: (policy.positions(scores[s].probs) > 0).shift(1) for s in frames}).fillna(False)
    full = held.all(axis=1)
    assert full.any()  # bars where all three hold a long: 1.8 x the equity was wanted
    assert (path.reindex(held.index).ffill()[full] < 0.01 * cash).any()  # ... and the cash ran out there
    # the engines cut the same buys (sells first, then buys from the smallest order value, in both)
    pf = _vectorbt(frames, scores, policy, stake)
    np.testing.assert_allclose(res.equity.to_numpy(), pf.value().to_numpy(), rtol=1e-9)


def test_run_backtest_many_cash_sharing_in_backtrader(frames, scores):
    policy = Policy(threshold=0.45, long_only=True)
    bt = run_backtest_many(frames, scores, engine="backtrader", policy=policy, cash_sharing=True)
    vb = run_backtest_many(frames, scores, engine="vectorbt", policy=policy, cash_sharing=True)
    np.testing.assert_allclose(bt.equity.to_numpy(), vb.equity.to_numpy(), rtol=1e-9)
    assert bt.summary["config"]["cash_split"] == vb.summary["config"]["cash_split"]
    for sym in frames:
        assert bt.summary["symbols"][sym]["trades"] == vb.summary["symbols"][sym]["trades"] >= 1
        assert bt.summary["symbols"][sym]["pnl"] == pytest.approx(vb.summary["symbols"][sym]["pnl"], rel=1e-6)
    assert list(bt.trades.columns[:1]) == ["symbol"] and set(bt.trades["symbol"]) == set(frames)
    with pytest.raises(Exception, match="belong to symbol 'aaa'"):
        one = PrecomputedScores(scores["aaa"].probs)
        one.symbol = "aaa"
        run_backtest_many(frames, one, engine="backtrader", cash_sharing=True)


def test_one_model_for_every_feed_keeps_each_symbols_live_state(frames, decisive_model_dir):
    """One model for all feeds: each feed scores with its own copy of the live state, so next()
    (one bar at a time, as live) gives what once() gives (a shared buffer would see each timestamp twice)."""
    small = {s: f.iloc[:150] for s, f in frames.items() if s != "ccc"}
    policy = Policy(threshold=0.4)
    once = run_backtrader_many(small, decisive_model_dir, policy=policy, stake=0.5)
    live = run_backtrader_many(small, decisive_model_dir, policy=policy, stake=0.5, runonce=False)
    for sym in small:
        np.testing.assert_allclose(live.probs[sym].to_numpy(), once.probs[sym].to_numpy(), rtol=1e-5, atol=1e-6)
        assert len(once.fills[sym]) >= 2
    np.testing.assert_allclose(live.equity.to_numpy(), once.equity.to_numpy(), rtol=1e-6)


# --- review findings: wrapper scorers, scores bound to a symbol, mappings with other keys ----------------------


class _PrevClose:
    """Buy when the close rose since the previous bar: its live state is the previous close."""

    class_names = ("sell", "hold", "buy")
    warmup = 1

    def __init__(self):
        self.reset()

    def _row(self, up):
        return [0.1, 0.1, 0.8] if up else [0.8, 0.1, 0.1]

    def predict_proba(self, ohlcv):
        c = ohlcv["close"].to_numpy()
        out = np.full((len(c), 3), np.nan)
        for i in range(1, len(c)):
            out[i] = self._row(c[i] > c[i - 1])
        return pd.DataFrame(out, index=ohlcv.index, columns=list(self.class_names))

    def update(self, bar):
        from effnet_trading.strategies.signal import parse_bar

        ts, b = parse_bar(bar)
        close = float(b[3])
        prev, self._prev = self._prev, close
        return None if prev is None else pd.Series(self._row(close > prev), index=list(self.class_names), name=ts)

    def reset(self):
        self._prev = None


def test_a_wrapper_scorer_shared_by_several_feeds_keeps_each_symbols_state():
    """A wrapper (DetectionScorer) holds its stateful scorer under another attribute: each feed must get its
    own copy of that too, or next() (one bar at a time) mixes the symbols' buffers and differs from once()."""
    from effnet_trading.applications.signals import DetectionScorer

    frames = {"aaa": random_walk_ohlcv(1), "bbb": random_walk_ohlcv(2)}

    def make():
        return DetectionScorer(_PrevClose(), long=["buy"], short=["sell"])

    once = run_backtrader_many(frames, make(), policy=Policy(threshold=0.5), runonce=True)
    live = run_backtrader_many(frames, make(), policy=Policy(threshold=0.5), runonce=False)
    for s in frames:
        np.testing.assert_allclose(live.probs[s].to_numpy()[2:], once.probs[s].to_numpy()[2:])
    assert live.equity.iloc[-1] == pytest.approx(once.equity.iloc[-1], rel=1e-12)


def test_backtrader_many_refuses_scores_of_one_symbol_for_several_and_other_keys():
    frames = {"aaa": random_walk_ohlcv(1), "bbb": random_walk_ohlcv(2)}
    p = np.random.default_rng(0).dirichlet([1, 1, 1], size=80)
    scores = PrecomputedScores(pd.DataFrame(p, index=frames["aaa"].index, columns=["sell", "hold", "buy"]))
    scores.symbol = "aaa"  # as PrecomputedScores.from_file(..., symbol="aaa") sets it
    with pytest.raises(DataError, match="belong to symbol 'aaa'"):
        run_backtrader_many(frames, scores)
    other = PrecomputedScores(pd.DataFrame(p, index=frames["aaa"].index, columns=["sell", "hold", "buy"]))
    other.symbol = "bbb"
    with pytest.raises(DataError, match="given for symbol 'aaa' belong to symbol 'bbb'"):
        run_backtrader_many(frames, {"aaa": other, "bbb": scores})
    with pytest.raises(DataError, match=r"missing \['ccc'\]"):
        run_backtrader_many({**frames, "ccc": random_walk_ohlcv(3)}, {"aaa": scores, "bbb": other})


@pytest.mark.parametrize("cash_sharing", [True, False])
def test_per_symbol_figures_agree_when_symbols_end_early_or_miss_bars(cash_sharing):
    """A symbol whose frame ends before the others' keeps its last trade open: vectorbt closes it at that
    symbol's last close (not NaN), as backtrader does, so the per-symbol PnL and the equity agree."""
    idx = pd.date_range("2024-01-01", periods=40, freq="1h", tz="UTC")

    def frame(ix, drift):
        c = 100 * (1 + drift) ** np.arange(len(ix))
        return pd.DataFrame({"open": c, "high": c * 1.001, "low": c * 0.999, "close": c, "volume": 1.0}, index=ix)

    frames = {"A": frame(idx, 0.001), "C": frame(idx[:30], 0.002), "D": frame(idx[5:].delete([10, 11]), -0.001)}
    long = {
        s: PrecomputedScores(pd.DataFrame({"sell": 0.05, "hold": 0.05, "buy": 0.9}, index=f.index))
        for s, f in frames.items()
    }
    out = {
        e: run_backtest_many(frames, long, engine=e, policy=Policy(0.4), fees=0.001, cash_sharing=cash_sharing)
        for e in ("vectorbt", "backtrader")
    }
    np.testing.assert_allclose(out["vectorbt"].equity, out["backtrader"].equity, rtol=1e-10)
    for sym in frames:
        got, want = (out[e].summary["symbols"][sym] for e in ("vectorbt", "backtrader"))
        key = "pnl" if cash_sharing else "strategy"
        a, b = (got[key], want[key]) if cash_sharing else (got[key]["total_return"], want[key]["total_return"])
        assert a == pytest.approx(b, rel=1e-8, abs=1e-8), sym
    c_trades = out["vectorbt"].trades[out["vectorbt"].trades["symbol"] == "C"]
    assert c_trades["pnl"].notna().all() and c_trades["exit_price"].iloc[-1] == frames["C"]["close"].iloc[-1]
