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


def _hyperliquid(path, book_ms, trades):
    """A Hyperliquid capture: ``l2Book`` snapshots at ``book_ms`` (receive ms after B; mid 100.5) and
    ``trades`` messages ``(receive ms, [(exchange ms, size), ...])``."""
    js = lambda d: json.dumps(d, separators=(",", ":"))  # noqa: E731
    lines = []
    for ms in book_ms:
        lvl = [[{"px": "100.0", "sz": "1", "n": 1}], [{"px": "101.0", "sz": "1", "n": 1}]]
        lines.append(
            (B + ms * MS, js({"channel": "l2Book", "data": {"coin": "BTC", "time": B // MS + ms, "levels": lvl}}))
        )
    for ms, fills in trades:
        data = [{"coin": "BTC", "px": "100.5", "sz": sz, "time": B // MS + x} for x, sz in fills]
        lines.append((B + ms * MS, js({"channel": "trades", "data": data})))
    lines.sort()
    with gzip.open(path, "wt") as fh:
        fh.writelines(f"{t} {p}\n" for t, p in lines)
    return path


def test_trades_before_the_first_bar_and_aggtrades(tmp_path):
    # Hyperliquid sends recent trades on subscribing: received in the first bar, executed before the capture
    cap = _hyperliquid(
        tmp_path / "h.gz", range(0, 4001, 500), [(1200, [(-5000, "7"), (-100, "3")]), (2500, [(2400, "0.5")])]
    )
    bars = capture_bars(cap, "1s", sample_ms=250)
    assert bars.index[0] == pd.Timestamp(B, unit="ns", tz="UTC")
    np.testing.assert_allclose(bars["volume"].to_numpy(), [0.0, 0.0, 0.5, 0.0])
    # Binance @aggTrade counts like @trade
    spot = gzip.open(_capture(tmp_path / "c.gz")).read().decode().replace('"e":"trade"', '"e":"aggTrade"')
    with gzip.open(tmp_path / "agg.gz", "wt") as fh:
        fh.write(spot.replace("@trade", "@aggTrade"))
    agg = capture_bars(tmp_path / "agg.gz", "1s", sample_ms=250)
    np.testing.assert_allclose(agg["volume"].to_numpy(), [0.75, 0.0, 0.0])


def test_a_silent_book_is_refused_and_not_covered(tmp_path):
    from effnet_trading.evaluation.ablation import book_coverage

    # snapshots every 500 ms for 10 s, 60 s of silence, 10 s more
    cap = _hyperliquid(tmp_path / "g.gz", [*range(0, 10_001, 500), *range(70_000, 80_001, 500)], [])
    with pytest.raises(DataError, match=r"no book message from .* \(60\.0 s, over max_gap"):
        capture_bars(cap, "1s", sample_ms=250)
    bars = capture_bars(cap, "1s", sample_ms=250, max_gap="2min")  # the user says the book did not change
    assert len(bars) == 80
    cov = book_coverage(bars, cap)  # the forward-filled grid would cover every bar; the messages do not
    assert cov["covered_bars"] == 21 and cov["bars"] == 80  # 0-10 s and 70-79 s
