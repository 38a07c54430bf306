"""Hyperliquid ``l2Book`` captures (hftbacktest format): parsed onto the snapshot grid, told apart
from Binance captures by ``read_books``, and analysed by ``lob analyze``. The capture is written by
the test (a few messages in the real layout), not copied from the data folder."""

from __future__ import annotations

import gzip
import json

import numpy as np
from click.testing import CliRunner

from effnet_trading.applications.orderbook import read_books
from effnet_trading.imaging import read_hyperliquid_l2
from effnet_trading.plugins.cli import main

T0 = 1_737_918_843_893_903_000  # ns, receive time of the first message (2025-01-26 19:14:03.89 UTC)


def _msg(bids, asks) -> dict:
    side = lambda levels: [{"n": 1, "px": f"{p:.1f}", "sz": f"{s}"} for p, s in levels]  # noqa: E731
    return {"channel": "l2Book", "data": {"coin": "BTC", "time": 0, "levels": [side(bids), side(asks)]}}


def _capture(path, n: int = 40, seed: int = 0) -> list[tuple[int, dict]]:
    """``n`` l2Book snapshots 0.7 s apart (mid drifting by whole dollars) and a trades line between."""
    rng = np.random.default_rng(seed)
    msgs, mid = [], 105_000.0
    for k in range(n):
        mid += float(rng.integers(-1, 2))
        bids = [(mid - 0.5 - i, round(0.1 + 0.05 * i, 5)) for i in range(25)]
        asks = [(mid + 0.5 + i, round(0.2 + 0.05 * i, 5)) for i in range(25)]
        msgs.append((T0 + k * 700_000_000, _msg(bids, asks)))
    trade = {"channel": "trades", "data": [{"coin": "BTC", "px": "105000.0", "side": "B", "sz": "0.1"}]}
    with gzip.open(path, "wt") as fh:
        for k, (ts, m) in enumerate(msgs):
            fh.write(f"{ts} {json.dumps(m)}\n")
            if k == 3:
                fh.write(f"{ts + 1} {json.dumps(trade)}\n")
    return msgs


def test_l2book_snapshots_land_on_the_grid_best_first(tmp_path):
    path = tmp_path / "hl.gz"
    msgs = _capture(path)
    book = read_hyperliquid_l2(path, levels=20, every_ms=1000)
    t = np.array([ts for ts, _ in msgs])
    grid = book.timestamps.astype(np.int64)
    assert grid[0] == -(-T0 // 10**9) * 10**9 and np.all(np.diff(grid) == 10**9) and grid[-1] >= t[-1]
    for k in (0, 5, len(book) - 1):  # row k = the last message received at or before its grid time
        bids, asks = msgs[np.searchsorted(t, grid[k], side="right") - 1][1]["data"]["levels"]
        expect = [[float(b["px"]), float(b["sz"]), float(a["px"]), float(a["sz"])] for b, a in zip(bids, asks)][:20]
        np.testing.assert_allclose(book.levels[k], expect)
    assert book.levels.shape == (len(grid), 20, 4)


def test_read_books_tells_hyperliquid_from_binance_and_lob_analyze_runs(tmp_path):
    src = tmp_path / "data"
    src.mkdir()
    _capture(src / "hl.gz", n=60)
    with gzip.open(src / "broken.gz", "wt") as fh:  # a Binance-like capture with no REST snapshot
        fh.write(f'{T0} {{"stream":"btcusdt@depth","data":{{"e":"depthUpdate","u":1,"b":[],"a":[]}}}}\n')
    books, skipped = read_books(src)
    assert list(books) == ["hl.gz"] and "no REST depth snapshot" in skipped["broken.gz"]
    out = tmp_path / "out"
    res = CliRunner().invoke(main, ["lob", "analyze", "--data", str(src / "hl.gz"), "--out", str(out)])
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "summary.json").read_text())["books"]["hl.gz"]
    assert summary["snapshots"] == len(books["hl.gz"])
    assert abs(summary["spread_bps_median"] - 1e4 / 105_000) < 0.01  # a one-dollar spread at ~105,000


def test_a_subscription_response_line_is_skipped(tmp_path):
    """Lines that merely name l2Book (a subscriptionResponse) are not snapshots and must not spoil the file."""
    path = tmp_path / "hl.gz"
    _capture(path)
    ack = {"channel": "subscriptionResponse", "data": {"method": "subscribe", "subscription": {"type": "l2Book"}}}
    with gzip.open(path, "rt") as fh:
        lines = fh.readlines()
    with gzip.open(path, "wt") as fh:
        fh.write(f"{T0 - 1} {json.dumps(ack)}\n")
        fh.writelines(lines)
    clean = tmp_path / "clean.gz"
    _capture(clean)
    np.testing.assert_array_equal(
        read_hyperliquid_l2(path, levels=20).levels, read_hyperliquid_l2(clean, levels=20).levels
    )
