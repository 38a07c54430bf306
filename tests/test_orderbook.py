"""Order-book detectors on the planted synthetic book, impact by hand, liquidity, move labels."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from effnet_trading.applications._lob_synth import PlantedSpoof, PlantedWall, synthetic_book
from effnet_trading.applications.orderbook import (
    ImpactModel,
    detect_place_cancel,
    detect_walls,
    impact_curve,
    liquidity_flags,
    move_labels,
    slippage,
    walk_depth,
)
from effnet_trading.errors import DataError, SpecError

WALLS = (PlantedWall("bid", 50, 250), PlantedWall("ask", 120, None), PlantedWall("ask", 300, 420, ticks=3))
SPOOFS = (PlantedSpoof("bid", 80), PlantedSpoof("ask", 200, life=2), PlantedSpoof("bid", 350, life=4, ticks=6))


@pytest.fixture(scope="module")
def planted_book():
    return synthetic_book(600, walls=WALLS, spoofs=SPOOFS, move_prob=0.01, seed=3)


@pytest.fixture(scope="module")
def clean_book():
    return synthetic_book(600, move_prob=0.05, seed=4)[0]


def test_walls_found_with_their_add_and_pull(planted_book):
    book, planted = planted_book
    ev = detect_walls(book, min_life=10)
    adds = ev[ev["kind"] == "wall_add"]
    for w in planted[planted["kind"] == "wall"].itertuples():
        add = adds[(adds["side"] == w.side) & np.isclose(adds["price"], w.price)]
        assert len(add) == 1 and add["since"].iloc[0] == w.start and add["snapshot"].iloc[0] == w.start + 9
        pulled = ev[(ev["kind"] == "wall_pull") & np.isclose(ev["price"], w.price)]
        if w.end is None or np.isnan(w.end):
            assert pulled.empty
        else:
            assert pulled["snapshot"].tolist() == [int(w.end)]
    assert len(adds) == 3  # the short-lived spoofs are not walls
    assert ev["time"].iloc[0] == pd.Timestamp(book.timestamps[ev["snapshot"].iloc[0]], tz="UTC")


def test_place_cancel_found(planted_book):
    book, planted = planted_book
    ev = detect_place_cancel(book, max_updates=5)
    spoofs = planted[planted["kind"] == "spoof"]
    assert len(ev) == len(spoofs)
    for s in spoofs.itertuples():
        hit = ev[(ev["side"] == s.side) & np.isclose(ev["price"], s.price)]
        assert hit["since"].tolist() == [s.start] and hit["life"].tolist() == [s.end - s.start]
    # a life longer than max_updates is not place-and-cancel
    assert detect_place_cancel(book, max_updates=2)["life"].tolist() == [2]
    assert len(detect_place_cancel(book, max_updates=3)) == 2


def test_detectors_silent_without_planted_events(clean_book):
    assert detect_walls(clean_book).empty
    assert detect_place_cancel(clean_book).empty


def test_detectors_are_causal(planted_book):
    book, _ = planted_book
    full = detect_walls(book)
    cut = type(book)(book.timestamps[:260], book.levels[:260])
    part = detect_walls(cut)
    assert part.equals(full[full["snapshot"] < 260].reset_index(drop=True))


def test_impact_equals_hand_computation():
    # best bid 100 (2 units), 99 (3); best ask 101 (1), 102 (2), 103 (5): mid 100.5
    levels = np.array([[[100, 2, 101, 1], [99, 3, 102, 2], [98, 0, 103, 5]]], float)
    s = slippage(levels, 2.5, "buy").iloc[0]
    assert s["avg_price"] == pytest.approx((1 * 101 + 1.5 * 102) / 2.5)
    assert s["slippage_bps"] == pytest.approx(((101 + 1.5 * 102) / 2.5 / 100.5 - 1) * 1e4)
    sell = slippage(levels, 4, "sell").iloc[0]
    assert sell["avg_price"] == pytest.approx((2 * 100 + 2 * 99) / 4)
    assert sell["slippage_bps"] == pytest.approx((1 - 99.5 / 100.5) * 1e4)
    too_big = slippage(levels, 6, "sell").iloc[0]
    assert not too_big["complete"] and np.isnan(too_big["slippage_bps"]) and too_big["filled"] == 5
    avg, filled = walk_depth(np.array([101.0, 102.0]), np.array([1.0, 2.0]), 0.5)
    assert avg == 101.0 and filled == 0.5
    with pytest.raises(SpecError, match="side"):
        slippage(levels, 1, "hold")


def test_impact_curve_and_model(planted_book):
    book, _ = planted_book
    with pytest.raises(SpecError, match="non-empty list of positive"):
        impact_curve(book, [])
    curve = impact_curve(book, [0.5, 2, 5, 1000])
    assert curve.loc[0.5, "buy_bps_median"] < curve.loc[5, "buy_bps_median"]  # bigger orders cost more
    assert curve.loc[1000, "buy_fillable"] == 0.0 and np.isnan(curve.loc[1000, "buy_bps_median"])
    model = ImpactModel.from_book(book, [0.5, 2, 5])
    assert model("buy", 2, 100.0) == pytest.approx(100.0 * (1 + curve.loc[2, "buy_bps_median"] / 1e4))
    assert model("sell", 2, 100.0) < 100.0 < model("buy", 0.1, 100.0)
    assert model.bps("buy", 8) > model.bps("buy", 5)  # extrapolated beyond the measured sizes
    with pytest.raises(DataError, match="at least 2"):
        ImpactModel.from_book(book, [1000, 2000])


def test_liquidity_flags_catch_a_thin_book(clean_book):
    lv = clean_book.levels.copy()
    lv[400:420, :, [1, 3]] *= 0.1
    f = liquidity_flags(type(clean_book)(clean_book.timestamps, lv), window=100)
    assert f["illiquid"].iloc[400:420].all() and f["illiquid"].iloc[100:400].mean() < 0.02


def test_move_labels_deeplob_rule():
    levels = np.zeros((6, 1, 4))
    mids = np.array([100.0, 100.0, 101.0, 101.0, 100.0, 100.0])
    levels[:, 0] = np.c_[mids - 0.5, np.ones(6), mids + 0.5, np.ones(6)]
    codes, rel = move_labels(levels, horizon=2, threshold_bps=10)
    assert rel[0] == pytest.approx(100.5 / 100 - 1) and codes.tolist() == [2, 2, 0, 0, -1, -1]
    assert rel[1] == pytest.approx(0.01)


def test_paper_broker_fills_with_the_impact_model(planted_book):
    from effnet_trading.plugins.bybit.bars import Bar
    from effnet_trading.plugins.bybit.paper import PaperBroker

    model = ImpactModel.from_book(planted_book[0], [0.5, 2, 5])
    broker = PaperBroker(100_000.0, fees=0.0, fill_model=model)
    broker.submit(pd.Timestamp(0, tz="UTC"), "BTCUSDT", 0.5, "a")
    (fill,) = broker.on_bar(Bar(3_600_000, 10_000.0, 10_010.0, 9_990.0, 10_000.0, 1.0))
    # units sized at the open, priced by the model: 0.5 * equity / open = 5 units -> the 5-unit median cost
    assert fill.size == pytest.approx(5.0, rel=1e-3)
    assert fill.price == pytest.approx(model("buy", fill.size, 10_000.0)) and fill.price > 10_000.0


def test_move_model_trains_on_heatmaps_and_reports_majority_rate(planted_book, tmp_path):
    from effnet_trading.applications.orderbook import fit_move_model, move_dataset
    from effnet_trading.imaging import ImageSpec

    book, _ = planted_book
    spec = ImageSpec("lob_heatmap", window=16, size=(16, 16), bucket_bps=0.5)
    ds = move_dataset(book, spec, horizon=10, threshold_bps=0.2)
    codes, _ = move_labels(book, 10, 0.2)
    assert ds.images.shape[1:] == (2, 16, 16) and (ds.labels == codes[ds.ends]).all() and ds.ends[0] == 15
    assert ds.ends[-1] == len(book) - 11
    rep = fit_move_model(book, tmp_path, spec=spec, horizon=10, threshold_bps=0.2, epochs=1)
    y = ds.labels[-rep["n"] :]
    assert rep["majority_rate"] == pytest.approx(np.bincount(y).max() / len(y))
    assert 0 <= rep["accuracy"] <= 1 and (tmp_path / "model" / "model.onnx").is_file()
