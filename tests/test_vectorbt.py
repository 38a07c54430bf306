"""vectorbt adapter: the IndicatorFactory indicator (parameter grids, one scoring per column),
events, the portfolio helper's execution contract, and errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from _helpers import OHLCV, MomentumRule

from effnet_trading.errors import DataError, SpecError
from effnet_trading.imaging import infer_interval
from effnet_trading.plugins import vectorbt as plugin
from effnet_trading.strategies import Policy, SignalModel, simulate

N_BARS = 800


def _run(ohlcv, **kw):
    """``EfficientNetIndicator.run`` over the five columns of ``ohlcv`` (a frame, or a dict of wide frames)."""
    return plugin.EfficientNetIndicator.run(*(ohlcv[c] for c in OHLCV), **kw)


@pytest.fixture(scope="module")
def bars(planted) -> pd.DataFrame:
    return planted.iloc[:N_BARS]


@pytest.fixture()
def counting():
    return MomentumRule()


def test_grid_scores_once_and_applies_policy_per_parameter(bars, counting):
    sm = SignalModel(counting)
    ind = _run(
        bars,
        model=sm,
        threshold=[0.4, 0.5, 0.6],
        hysteresis=[0.0, 0.0, 0.1],
        param_product=False,
    )
    scored_once = counting.images
    assert scored_once == N_BARS - sm.warmup  # one image per scoreable bar, not one per parameter
    probs = SignalModel(counting).predict_proba(bars)
    assert ind.signal.shape == (N_BARS, 3)
    for j, (th, hy) in enumerate([(0.4, 0.0), (0.5, 0.0), (0.6, 0.1)]):
        target = Policy(th, hy).positions(probs).to_numpy()
        np.testing.assert_array_equal(ind.signal.iloc[:, j].to_numpy(), target)
        np.testing.assert_allclose(ind.buy.iloc[:, j].to_numpy(), probs["buy"].to_numpy(), equal_nan=True)
        ent, ex, sent, sex = plugin.signal_events(target)
        np.testing.assert_array_equal(ind.entries.iloc[:, j].to_numpy(), ent)
        np.testing.assert_array_equal(ind.short_exits.iloc[:, j].to_numpy(), sex)
    assert ind.entries.to_numpy().sum() > 10
    assert not (ind.signal.iloc[:, 0] == ind.signal.iloc[:, 2]).all()  # parameters matter


def test_two_input_columns_param_major(bars, counting):
    frames = {c: pd.concat([bars[c], bars[c][::-1].set_axis(bars.index)], axis=1, keys=["a", "b"]) for c in OHLCV}
    ind = _run(frames, model=SignalModel(counting), threshold=[0.4, 0.6])
    assert ind.signal.shape == (N_BARS, 4)
    assert list(ind.signal.columns) == [(0.4, "a"), (0.4, "b"), (0.6, "a"), (0.6, "b")]
    rev = pd.DataFrame({c: frames[c]["b"] for c in OHLCV})
    expected = Policy(0.6).positions(SignalModel(counting).predict_proba(rev))
    np.testing.assert_array_equal(ind.signal[(0.6, "b")].to_numpy(), expected.to_numpy())


def test_signal_events_flip():
    ent, ex, sent, sex = plugin.signal_events(np.array([0, 1, 1, -1, -1, 0, 0.5, 0]))
    assert ent.tolist() == [False, True, False, False, False, False, True, False]
    assert ex.tolist() == [False, False, False, True, False, False, False, True]
    assert sent.tolist() == [False, False, False, True, False, False, False, False]
    assert sex.tolist() == [False, False, False, False, False, True, False, False]


def test_portfolio_fills_at_next_open(bars):
    target = pd.Series(0.0, index=bars.index)
    target.iloc[50:120] = 1.0
    target.iloc[200:260] = -0.5
    pf = plugin.portfolio_from_signals(bars, target, fees=0.001, slippage=0.0)
    rec = pf.orders.records
    assert rec["idx"].tolist() == [51, 121, 201, 261]  # decided at close t, filled at bar t+1
    np.testing.assert_allclose(rec["price"], bars["open"].to_numpy()[[51, 121, 201, 261]])
    ref = simulate(bars, target, fees=0.001)
    np.testing.assert_allclose(pf.value().to_numpy(), ref.equity.to_numpy(), rtol=1e-10)
    long_only = plugin.portfolio_from_signals(bars, target, fees=0.0, allow_short=False)
    assert long_only.orders.records["idx"].tolist() == [51, 121]


def test_portfolio_keeps_the_frames_utc_index(bars):
    """vectorbt runs on the naive UTC index (a tz-aware one costs ~60x in every wrapped result); the portfolio
    handed back carries the frame's own index again, with the values vectorbt gives on the aware index."""
    import vectorbt as vbt  # a dev dependency, as for every test here

    target = pd.Series(0.0, index=bars.index)
    target.iloc[50:120] = 1.0
    target.iloc[200:260] = -0.5
    pf = plugin.portfolio_from_signals(bars, target, fees=0.001, slippage=0.0005)
    ref = vbt.Portfolio.from_orders(  # the same call on the aware index: the reference
        bars["close"],
        size=plugin.contract_orders(target),
        size_type="targetpercent",
        price=bars["open"],
        fees=0.001,
        slippage=0.0005,
        init_cash=10_000.0,
        freq=infer_interval(bars.index),
    )
    assert str(bars.index.tz) == "UTC"
    for got, want in ((pf.value(), ref.value()), (pf.cash(), ref.cash()), (pf.assets(), ref.assets())):
        assert got.index.equals(bars.index) and str(got.index.tz) == "UTC"
        np.testing.assert_array_equal(got.to_numpy(), want.to_numpy())
    pd.testing.assert_series_equal(pf.stats(), ref.stats())
    pd.testing.assert_frame_equal(pf.trades.records_readable, ref.trades.records_readable)
    assert pf.orders.records_readable["Timestamp"].tolist() == bars.index[[51, 121, 201, 261]].tolist()
    wide = plugin.portfolio_from_signals({"X": bars, "Y": bars}, pd.DataFrame({"X": target, "Y": -target}))
    assert wide.value().index.equals(bars.index) and list(wide.value().columns) == ["X", "Y"]
    shared = plugin.portfolio_from_signals(
        {"X": bars, "Y": bars}, pd.DataFrame({"X": target, "Y": -target}) / 2, cash_sharing=True
    )
    assert shared.value().index.equals(bars.index) and shared.value().ndim == 1


def test_portfolio_takes_indicator_output_and_grids(bars, counting):
    ind = _run(bars, model=SignalModel(counting), threshold=[0.4, 0.6])
    pf = plugin.portfolio_from_signals(bars, ind, fees=0.001)
    assert pf.value().shape == (N_BARS, 2)
    ref = simulate(bars, ind.signal.iloc[:, 1].to_numpy(), fees=0.001)
    np.testing.assert_allclose(pf.value().iloc[:, 1].to_numpy(), ref.equity.to_numpy(), rtol=1e-10)


@pytest.mark.slow  # the first from_signals call compiles numba kernels (~25 s)
def test_native_stops_exit_early(bars):
    target = pd.Series(0.0, index=bars.index)
    target.iloc[10:700] = 1.0
    plain = plugin.portfolio_from_signals(bars, target, fees=0.0)
    stopped = plugin.portfolio_from_signals(bars, target, fees=0.0, sl_stop=0.002)
    assert stopped.orders.records["idx"][0] == 11  # entry still at the next open
    assert stopped.orders.records["idx"][1] < 701  # the stop closes it before the signal does
    assert plain.orders.records["idx"].tolist() == [11, 701]


def test_errors(bars):
    with pytest.raises(DataError, match=r"\[-1, 1\]"):
        plugin.portfolio_from_signals(bars, pd.Series(2.0, index=bars.index))
    with pytest.raises(SpecError, match="-1, 0 or \\+1"):
        plugin.portfolio_from_signals(bars, pd.Series(0.5, index=bars.index), sl_stop=0.01)
    with pytest.raises(SpecError, match="needs model="):
        _run(bars, threshold=0.5)
    with pytest.raises(DataError, match="share no timestamps"):
        plugin.portfolio_from_signals(bars, pd.Series(1.0, index=bars.index.tz_convert(None) + pd.Timedelta("3s")))


def test_timeframe_dict_matches_ensemble(bars, counting):
    from effnet_trading.strategies import TimeframeEnsemble

    members = {"5m": SignalModel(counting), "15m": SignalModel(counting)}
    ind = _run(bars, model=members, threshold=0.4)
    expected = TimeframeEnsemble(members).predict_proba(bars)
    np.testing.assert_allclose(ind.buy.to_numpy(), expected["buy"].to_numpy(), equal_nan=True)
    np.testing.assert_array_equal(ind.signal.to_numpy(), Policy(0.4).positions(expected).to_numpy())


def test_reexport_to_the_same_folder_is_not_served_from_the_cache(tmp_path, bars):
    """Sessions are cached by the card's sha256: a model re-exported into the same folder is loaded
    (and hash-checked) again, not served from the old session."""
    import torch

    from effnet_trading.imaging import ImageSpec, render
    from effnet_trading.model_zoo import create_model
    from effnet_trading.model_zoo.export import export_onnx

    spec = ImageSpec("gasf", window=16, size=(16, 16))
    folder = tmp_path / "model"
    frame = bars.iloc[:120]

    def export(seed):
        torch.manual_seed(seed)
        net = create_model("small_cnn", num_classes=3, in_chans=1, widths=(4, 8, 8)).eval()
        export_onnx(
            net,
            folder,
            spec=spec,
            architecture="small_cnn",
            label={"rule": "forward_return", "horizon": 6},
            sample_images=render(spec, frame.iloc[:32]),
        )
        ind = _run(frame, model=str(folder), threshold=0.4)
        return ind.buy.to_numpy()

    first, second = export(0), export(1)
    fresh = SignalModel(folder).predict_proba(frame)["buy"].to_numpy()
    np.testing.assert_allclose(second, fresh, equal_nan=True)
    assert not np.allclose(first, second, equal_nan=True)


def _two_symbols(bars, late=200):
    """'a' = the bars; 'b' = another price path listed ``late`` bars later (NaN-padded in wide frames)."""
    b = bars.copy()
    b[["open", "high", "low", "close"]] = bars[["open", "high", "low", "close"]].to_numpy()[::-1] * 3.0
    b["high"], b["low"] = (
        b[["open", "high", "low", "close"]].max(axis=1),
        b[["open", "high", "low", "close"]].min(axis=1),
    )
    b = b.iloc[late:]
    wide = {c: pd.concat([bars[c], b[c]], axis=1, keys=["a", "b"]) for c in OHLCV}
    return {"a": bars, "b": b}, wide


def test_nan_padded_symbols_scored_over_their_own_span(bars, counting):
    frames, wide = _two_symbols(bars)
    ind = _run(
        wide,
        model=SignalModel(counting),
        threshold=0.5,
    )
    own = SignalModel(counting).predict_proba(frames["b"])
    got = ind.buy[(0.5, "b")]
    assert got.iloc[:200].isna().all()
    np.testing.assert_allclose(got.iloc[200:].to_numpy(), own["buy"].to_numpy(), equal_nan=True)
    assert got.notna().sum() == len(frames["b"]) - SignalModel(counting).warmup
    # a hole inside a symbol's data is refused, not bridged
    wide["close"].iloc[500, 1] = np.nan
    with pytest.raises(DataError, match=r"column 'b' has NaN bars inside its data"):
        _run(
            wide,
            model=SignalModel(counting),
            threshold=0.5,
        )


def test_portfolio_trades_each_symbol_at_its_own_prices(bars, counting):
    frames, wide = _two_symbols(bars)
    ind = _run(
        wide,
        model=SignalModel(counting),
        threshold=0.5,
    )
    with pytest.raises(DataError, match=r"targets for 2 symbols \(a, b\) but one OHLCV frame"):
        plugin.portfolio_from_signals(bars, ind.signal)
    pf = plugin.portfolio_from_signals(frames, ind.signal, fees=0.001)
    for sym in ("a", "b"):
        target = ind.signal[(0.5, sym)].reindex(frames[sym].index)
        ref = simulate(frames[sym], target.fillna(0.0), fees=0.001)
        assert ref.trades.shape[0] > 5
        assert pf.total_return()[(0.5, sym)] == pytest.approx(ref.final_equity / 10_000.0 - 1, rel=1e-9)
    with pytest.raises(DataError, match=r"symbol\(s\) \['b'\] have no OHLCV frame"):
        plugin.portfolio_from_signals({"a": bars}, ind.signal)
