"""Order-book heatmaps on synthetic books, and the Binance depth parser on a hand-written capture."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest

from effnet_trading.errors import DataError, SpecError
from effnet_trading.imaging import ImageSpec, OrderBook, as_order_book, read_binance_depth, render_lob
from effnet_trading.imaging._lob import lob_heatmap_images

# bucket 10 bps = 0.1 price units around mid 100; 8 rows: row = 3 - floor(rel_bps / 10)
SPEC = ImageSpec("lob_heatmap", window=4, size=(8, 4), levels=2, bucket_bps=10.0)


def _book(t: int = 6) -> np.ndarray:
    snap = np.array([[99.95, 2.0, 100.05, 1.0], [99.85, 5.0, 100.25, 3.0]])
    return np.repeat(snap[None], t, axis=0)


def test_pixels_of_a_constant_book():
    img = render_lob(SPEC, _book(), [5])[0]
    peak = np.log1p(5.0)
    bids, asks = np.zeros((8, 4)), np.zeros((8, 4))
    bids[4], bids[5] = np.log1p(2.0) / peak, 1.0  # 99.95 -> -5 bps -> row 4; 99.85 -> row 5
    asks[3], asks[1] = np.log1p(1.0) / peak, np.log1p(3.0) / peak  # 100.05 -> row 3; 100.25 -> row 1
    np.testing.assert_allclose(img[0], bids, atol=1e-6)
    np.testing.assert_allclose(img[1], asks, atol=1e-6)


def test_levels_beyond_the_grid_or_depth_are_not_drawn():
    book = _book()
    book[:, 1, 2] = 101.0  # +100 bps: beyond the 4 buckets above the mid
    img = render_lob(SPEC, book, [5])[0]
    assert img[1].sum() > 0 and img[1, :3].sum() == 0
    shallow = render_lob(SPEC.replace(levels=1), _book(), [5])[0]
    assert shallow[0, 5].sum() == 0 and shallow[0, 4].sum() > 0


def test_rows_are_relative_to_the_decision_mid():
    book = _book()
    book[:3, :, [0, 2]] += 0.1  # earlier snapshots 10 bps higher: drawn one row up
    img = render_lob(SPEC, book, [5])[0]
    assert np.flatnonzero(img[0, :, 0]).tolist() == [3, 4]  # column 0 = snapshot 2 (shifted up)
    assert np.flatnonzero(img[0, :, 3]).tolist() == [4, 5]  # column 3 = the decision snapshot


def test_causal_and_batched_equals_loop():
    rng = np.random.default_rng(0)
    book = _book(40)
    book[:, :, [1, 3]] *= rng.uniform(0.5, 2.0, size=(40, 2, 2))
    spec = ImageSpec("lob_heatmap", window=8, size=(16, 8), levels=2, bucket_bps=5.0)
    ends = np.arange(7, 40)
    batch = render_lob(spec, book, ends)
    loop = np.concatenate([lob_heatmap_images(spec, book, ends[i : i + 1]) for i in range(len(ends))])
    np.testing.assert_array_equal(batch, loop)
    t = 20
    after = book.copy()
    after[t + 1 :, :, [1, 3]] *= 9.0
    after[t + 1 :, :, [0, 2]] += 0.3
    np.testing.assert_array_equal(render_lob(spec, after, [t]), batch[t - 7 : t - 6])
    inside = book.copy()
    inside[t - 3, 0, 1] *= 20.0
    assert not np.array_equal(render_lob(spec, inside, [t]), batch[t - 7 : t - 6])


def test_dtype_frame_input_and_default_ends():
    book = OrderBook(np.arange(6).astype("datetime64[s]").astype("datetime64[ns]"), _book())
    frame = book.to_frame()
    assert list(frame.columns[:4]) == ["bid_px_0", "bid_sz_0", "ask_px_0", "ask_sz_0"]
    u8 = render_lob(SPEC, frame, dtype=np.uint8)
    assert u8.shape == (3, 2, 8, 4) and u8.dtype == np.uint8 and u8.max() == 255
    np.testing.assert_array_equal(as_order_book(frame).levels, book.levels)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda b: b.__setitem__((2, 0, 1), -1.0), r"negative sizes at snapshots \[2\]"),
        (lambda b: b.__setitem__((4, 0, 0), 100.1), r"snapshots \[4\] have no best bid/ask or a crossed book"),
        (lambda b: b.__setitem__((1, 0, 3), 0.0), r"snapshots \[1\] have no best bid/ask"),
        (lambda b: b.__setitem__((3, 1, 2), np.nan), r"missing or non-positive price at snapshots \[3\]"),
    ],
)
def test_bad_books_raise_with_the_snapshot(change, message):
    book = _book()
    change(book)
    with pytest.raises(DataError, match=message):
        render_lob(SPEC, book)


def test_render_lob_rejects_other_kinds_and_early_ends():
    with pytest.raises(SpecError, match="renders kind 'lob_heatmap' only"):
        render_lob(ImageSpec("gasf"), _book())
    with pytest.raises(DataError, match=r"ends must lie in \[3, 5\]"):
        render_lob(SPEC, _book(), [1])


def _line(ts_ns: int, payload: dict) -> str:
    return f"{ts_ns} {json.dumps(payload)}\n"


def _diff(u0: int, u1: int, bids, asks) -> dict:
    return {"stream": "btcusdt@depth@100ms", "data": {"e": "depthUpdate", "U": u0, "u": u1, "b": bids, "a": asks}}


def test_read_binance_depth_rebuilds_and_samples(tmp_path):
    s = 1_000_000_000  # 1 s in ns
    lines = [
        _line(10 * s, _diff(90, 100, [["99.0", "7.0"]], [])),  # u <= lastUpdateId: already in the snapshot
        _line(10 * s + 1, {"stream": "btcusdt@trade", "data": {"e": "trade", "p": "1"}}),
        _line(
            10 * s + 5,
            {
                "lastUpdateId": 100,
                "bids": [["100.0", "1.0"], ["99.5", "2.0"]],
                "asks": [["100.5", "1.5"], ["101.0", "3.0"]],
            },
        ),
        _line(11 * s + 10, _diff(101, 103, [["100.0", "0.0"], ["99.8", "4.0"]], [["100.4", "0.5"]])),
        _line(12 * s + 10, _diff(104, 104, [], [["100.4", "0"]])),
    ]
    path = tmp_path / "depth.gz"
    with gzip.open(path, "wt") as fh:
        fh.writelines(lines)
    book = read_binance_depth(path, levels=3, every_ms=1000)
    assert book.timestamps.astype("int64").tolist() == [11 * s, 12 * s, 13 * s]
    lv = book.levels
    np.testing.assert_array_equal(lv[0, :2], [[100.0, 1.0, 100.5, 1.5], [99.5, 2.0, 101.0, 3.0]])
    assert lv[0, 2, 1] == 0 and lv[0, 2, 3] == 0  # only two levels per side: the third is empty
    np.testing.assert_array_equal(lv[1, :2], [[99.8, 4.0, 100.4, 0.5], [99.5, 2.0, 100.5, 1.5]])
    np.testing.assert_array_equal(lv[2, 0], [99.8, 4.0, 100.5, 1.5])
    assert render_lob(ImageSpec("lob_heatmap", window=2, size=8, levels=3), book).shape == (2, 2, 8, 8)


def test_read_binance_depth_needs_a_snapshot(tmp_path):
    path = tmp_path / "nosnap.gz"
    with gzip.open(path, "wt") as fh:
        fh.write(_line(1, _diff(1, 2, [], [])))
    with pytest.raises(DataError, match="no REST depth snapshot line"):
        read_binance_depth(path)
