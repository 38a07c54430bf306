"""``evaluate --ablation orderbook``: candles vs candles + one order-book channel on the main run's folds.

The candles arm is the main run's model (same returns and accuracy per fold), the book channel of
bar t is the heatmap of the snapshots up to its close and nothing later, and the result carries the
coverage, the paired return differences (with fees and fee-free) and the classification differences.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from effnet_trading.applications._lob_synth import synthetic_book
from effnet_trading.evaluation.ablation_books import LOB_LEVELS, book_channel
from effnet_trading.evaluation.evaluate import EvalConfig, evaluate
from effnet_trading.imaging import ImageSpec, OrderBook, render_lob
from effnet_trading.model_zoo.train import TrainConfig

STEP = pd.Timedelta("1s")


def _book_and_bars(n=700):
    """A synthetic book every second and 1 s bars of its mid: bar i opens at snapshot i and closes at i + 1."""
    book, _ = synthetic_book(n, levels=LOB_LEVELS, move_prob=0.3, seed=3, every_ms=1000)
    mid = 0.5 * (book.levels[:, 0, 0] + book.levels[:, 0, 2])
    o, c = mid[:-1], mid[1:]
    index = pd.DatetimeIndex(pd.to_datetime(book.timestamps[:-1], utc=True), name="timestamp")
    bars = pd.DataFrame(
        {"open": o, "high": np.maximum(o, c), "low": np.minimum(o, c), "close": c, "volume": 1.0}, index=index
    )
    return book, bars


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    book, bars = _book_and_bars()
    tmp = tmp_path_factory.mktemp("ablation_books")
    book.to_frame().to_csv(tmp / "book.csv")
    cfg = EvalConfig(
        models=("small_cnn",),
        train=TrainConfig(spec=ImageSpec("candles", window=16, size=(16, 16)), horizon=4, epochs=1, num_threads=1),
        folds=2,
        baselines=(),
        bootstrap=100,
        lookahead_samples=2,
        null=False,
        model_kwargs={"small_cnn": {"widths": (8, 16)}},
        ablations=("orderbook",),
        books=str(tmp / "book.csv"),
    )
    return bars, tmp / "out", evaluate(bars, cfg, tmp / "out", progress=False)


def test_orderbook_arm_runs_on_the_main_folds_and_reuses_the_main_model(run):
    bars, out, res = run
    a = res["ablations"]["orderbook"]
    assert {"what", "model", "book", "coverage", "channel", "block", "folds", "classification"} <= set(a)
    assert a["coverage"]["coverage"] == 1.0 and a["coverage"]["bars"] == len(bars) and a["book"] == "book.csv"
    folds = [json.loads((out / "folds" / f"fold_{k}.json").read_text()) for k in (0, 1)]
    for k, fold in enumerate(folds):
        row, main = a["folds"][k], fold["strategies"]["small_cnn"]
        assert row["test_span"] == fold["test_span"] and row["book_share"]["test"] == 1.0
        assert row["candles"]["total_return"] == pytest.approx(main["perf"]["total_return"])  # the main model
        cls = a["classification"]["per_fold"][k]
        assert cls["candles"]["accuracy"] == pytest.approx(main["classification"]["accuracy"])
        assert cls["majority_rate"] == pytest.approx(main["classification"]["majority_rate"])
        assert cls["n"] == fold["n_test"]
        assert (out / "models" / "ablation_orderbook" / f"fold_{k}" / "small_cnn" / "metrics.json").exists()
        assert row["candles (no fees)"]["total_return"] >= row["candles"]["total_return"]
    # one day of 1 s bars is longer than the data: blocks of a tenth of the shortest test window
    assert a["block"] == max(4, min(f["n_test"] for f in folds) // 10)
    pooled = a["classification"]["pooled"]
    assert pooled["n"] == sum(f["n_test"] for f in folds)
    for key in ("accuracy_difference", "macro_f1_difference"):
        assert pooled[key]["low"] <= pooled[key]["estimate"] <= pooled[key]["high"]
    d = a["differences_bps_per_bar"]
    assert set(d) == {"candles + book - candles", "candles + book (no fees) - candles (no fees)"}
    assert d["candles + book - candles"]["pooled"]["bars"] == pooled["n"]
    md = (out / "results.md").read_text()
    assert "### orderbook" in md and "Book coverage: 699 of 699 bars (100.0%)" in md and "majority rate" in md


def test_the_book_channel_of_a_bar_is_its_snapshots_up_to_the_close_only():
    book, bars = _book_and_bars(120)
    spec = ImageSpec("lob_heatmap", window=8, size=(16, 16), levels=LOB_LEVELS, bucket_bps=0.5)
    img, ok = book_channel(book, bars.index, STEP, 8, (16, 16), 0.5)
    assert img.shape == (119, 1, 16, 16) and img.dtype == np.uint8
    assert not ok[:6].any() and ok[6:].all()  # bar i closes at snapshot i + 1: 8 snapshots from bar 6 on
    # bar i's image: the heatmap of snapshots i - 6 .. i + 1, bids and asks in one channel
    ref = render_lob(spec, book, np.arange(7, 120), dtype=np.uint8).max(axis=1)
    np.testing.assert_array_equal(img[6:, 0], ref)
    t = 60  # perturb every snapshot after bar t's close: its image must not change, later ones must
    levels = book.levels.copy()
    levels[t + 2 :, :, [1, 3]] *= 3.0
    levels[t + 2 :, :, [0, 2]] += 7.5
    moved, _ = book_channel(OrderBook(book.timestamps, levels), bars.index, STEP, 8, (16, 16), 0.5)
    np.testing.assert_array_equal(moved[: t + 1], img[: t + 1])
    assert (moved[t + 1 :] != img[t + 1 :]).any()


def test_paired_classification_against_sklearn():
    from types import SimpleNamespace

    from sklearn.metrics import accuracy_score, f1_score

    from effnet_trading.evaluation.ablation_books import _paired_classification

    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300)
    a = np.where(rng.random(300) < 0.3, y, 1)  # mostly "hold"
    b = np.where(rng.random(300) < 0.6, y, rng.integers(0, 3, 300))
    got = _paired_classification(y, a, b, SimpleNamespace(bootstrap=100), 10, 0)
    for arm, p in (("candles", a), ("candles + book", b)):
        assert got[arm]["accuracy"] == pytest.approx(accuracy_score(y, p))
        assert got[arm]["macro_f1"] == pytest.approx(f1_score(y, p, average="macro"))
    d = got["macro_f1_difference"]
    assert d["estimate"] == pytest.approx(f1_score(y, b, average="macro") - f1_score(y, a, average="macro"))
    assert d["low"] < d["estimate"] < d["high"] and got["candles"]["pred_shares"][1] > 0.6
    assert got["majority_rate"] == pytest.approx(np.bincount(y).max() / 300)
