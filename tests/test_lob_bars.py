"""Bars from an order-book capture (``imaging.capture_bars``, ``lob bars``): a hand computation on a
few messages, causality (a message after a bar's close leaves it unchanged), the refusals."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from effnet_trading.errors import DataError
from effnet_trading.imaging import capture_bars, load_ohlcv
from effnet_trading.plugins.cli import main

B = 1_700_000_000 * 10**9  # a whole second, ns
MS = 10**6


def _capture(path, ask_at_3100="101.5"):
    """A Binance spot capture: REST snapshot, depth diffs (U/u in sequence) and trades, exchange JSON."""
    js = lambda d: json.dumps(d, separators=(",", ":"))  # noqa: E731  (the exchange sends no spaces)
    diffs = [  # (receive ms after B, bids, asks)
        (1100, [["100.8", "1"]], []),
        (1600, [], [["101.0", "0"], ["102.0", "1"]]),
        (2000, [["100.8", "0"]], []),
        (3100, [], [[ask_at_3100, "1"]]),
        (4000, [["99.0", "1"]], []),
    ]
    trades = [(1200, "0.5"), (2000, "0.25"), (4500, "9")]
    lines = [(B + 100 * MS, js({"lastUpdateId": 100, "bids": [["100.0", "1"]], "asks": [["101.0", "1"]]}))]
    for k, (ms, b, a) in enumerate(diffs):
        data = {"e": "depthUpdate", "U": 101 + k, "u": 101 + k, "b": b, "a": a}
        lines.append((B + ms * MS, js({"stream": "btcusdt@depth@100ms", "data": data})))
    for ms, q in trades:
        lines.append((B + ms * MS, js({"stream": "btcusdt@trade", "data": {"e": "trade", "p": "100.5", "q": q}})))
    lines.sort()
    with gzip.open(path, "wt") as fh:
        fh.writelines(f"{t} {p}\n" for t, p in lines)
    return path


def test_bars_equal_a_hand_computation(tmp_path):
    bars = capture_bars(_capture(tmp_path / "c.gz"), "1s", sample_ms=250)
    # the book grid starts at B + 250 ms, so the first bar opens at B + 1 s; the book reaches B + 4 s: 3 bars
    assert list(bars.index) == list(pd.to_datetime([B + 10**9, B + 2 * 10**9, B + 3 * 10**9], utc=True))
    expected = [
        # mids at 1.0, 1.25, 1.5, 1.75, 2.0 s: 100.5, 100.9, 100.9, 101.4, 101.0 (the 2.0 s diff counts: received
        # at the close); trades in (1, 2]: 0.5 + 0.25
        [100.5, 101.4, 100.5, 101.0, 0.75],
        [101.0, 101.0, 101.0, 101.0, 0.0],  # no message, no trade: a flat bar with volume 0, not a dropped one
        [101.0, 101.0, 100.75, 100.75, 0.0],  # ask 101.5 from 3.1 s; the 4.5 s trade is after the last close
    ]
    np.testing.assert_allclose(bars[["open", "high", "low", "close", "volume"]].to_numpy(), expected)


def test_a_bar_ignores_messages_after_its_close(tmp_path):
    base = capture_bars(_capture(tmp_path / "a.gz"), "1s", sample_ms=250)
    moved = capture_bars(_capture(tmp_path / "b.gz", ask_at_3100="101.2"), "1s", sample_ms=250)
    pd.testing.assert_frame_equal(base.iloc[:2], moved.iloc[:2])  # bars closing at 2 s and 3 s
    assert moved["low"].iloc[2] == pytest.approx(100.6) and base["low"].iloc[2] == pytest.approx(100.75)


def test_refusals_name_the_fix(tmp_path):
    cap = _capture(tmp_path / "c.gz")
    with pytest.raises(DataError, match="finer than the book's updates .*median 700 ms"):
        capture_bars(cap, "500ms", sample_ms=250)
    with pytest.raises(DataError, match="must divide the bar"):
        capture_bars(cap, "1s", sample_ms=300)
    with pytest.raises(DataError, match="fewer than 2 bars"):
        capture_bars(cap, "2s", sample_ms=250)


def test_cli_writes_bars_evaluate_reads(tmp_path):
    cap, out = _capture(tmp_path / "c.gz"), tmp_path / "bars.csv"
    res = CliRunner().invoke(
        main, ["lob", "bars", "--data", str(cap), "--bar", "1s", "--sample-ms", "250", "--out", str(out)]
    )
    assert res.exit_code == 0, res.output
    assert "3 bars of 1s" in res.output and "67% without a trade" in res.output
    got = load_ohlcv(out)
    pd.testing.assert_frame_equal(got, capture_bars(cap, "1s", sample_ms=250), check_freq=False, check_names=False)
    res = CliRunner().invoke(main, ["lob", "bars", "--data", str(cap), "--bar", "100ms", "--out", str(out)])
    assert res.exit_code == 1 and "finer than the book's updates" in res.output
