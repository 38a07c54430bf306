"""Order book: snapshot + deltas, sequence checks, resets, bad deltas; the book stream against the fake."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from effnet_trading.errors import DataError
from effnet_trading.plugins.bybit import RetryPolicy, resolve_endpoints
from effnet_trading.plugins.bybit.book import BookFeed, OrderBook, walk_book
from effnet_trading.plugins.bybit.fake_exchange import Faults


def _msg(kind, u, b=(), a=()):
    return {
        "topic": "orderbook.50.X",
        "type": kind,
        "ts": 0,
        "data": {"s": "X", "b": [[str(p), str(s)] for p, s in b], "a": [[str(p), str(s)] for p, s in a], "u": u},
    }


def _book():
    book = OrderBook("X", stale_after_s=60)
    assert (
        book.apply(_msg("snapshot", 10, b=[(99, 1), (98, 2), (97, 3)], a=[(101, 1), (103, 2), (102, 5)])) == "snapshot"
    )
    return book


def test_snapshot_then_deltas_keep_a_sorted_book():
    book = _book()
    assert book.levels("ask").tolist() == [[101, 1], [102, 5], [103, 2]]  # sorted although sent unsorted
    assert book.apply(_msg("delta", 11, b=[(99.5, 4), (98, 0)], a=[(101, 0)])) == "ok"
    assert book.levels("bid").tolist() == [[99.5, 4], [99, 1], [97, 3]]
    assert (book.best_bid, book.best_ask, book.mid) == (99.5, 102, 100.75)
    # against an independent reference: a dict merged naively, then sorted
    ref_b, ref_a = {99: 1, 98: 2, 97: 3}, {101: 1, 103: 2, 102: 5}
    rng = np.random.default_rng(0)
    u = 11
    ref_b.update({99.5: 4}), ref_b.pop(98), ref_a.pop(101)
    for _ in range(300):
        u += 1
        side, ref = ("b", ref_b) if rng.random() < 0.5 else ("a", ref_a)
        lo = 90 if side == "b" else 101.5
        p = float(lo + rng.integers(0, 9) * 0.5)
        s = 0.0 if (p in ref and rng.random() < 0.4) else float(rng.integers(1, 9))
        if s == 0.0:
            ref.pop(p)
        else:
            ref[p] = s
        assert book.apply(_msg("delta", u, **{side: [(p, s)]})) == "ok"
    assert book.levels("bid").tolist() == [[p, ref_b[p]] for p in sorted(ref_b, reverse=True)]
    assert book.levels("ask").tolist() == [[p, ref_a[p]] for p in sorted(ref_a)]


def test_gap_out_of_order_reset_and_bad_deltas():
    book = _book()
    assert book.apply(_msg("delta", 11, b=[(96, 0)])) == "ok"  # deletes a level we never had: counted, not fatal
    assert book.stats["missing_deletes"] == 1
    assert book.apply(_msg("delta", 11, b=[(99, 7)])) == "ignored"  # repeated / out of order
    assert book.best_bid == 99 and book.levels("bid")[0, 1] == 1
    assert book.apply({"type": "delta", "data": {"b": [["x", "1"]], "u": 12}}) == "malformed"
    assert book.apply(_msg("delta", 14, b=[(99, 7)])) == "gap" and book.needs_snapshot and not book.usable
    assert book.apply(_msg("delta", 15, b=[(99, 8)])) == "ignored"  # waits for a snapshot
    assert book.apply(_msg("delta", 1, b=[(50, 1)], a=[(51, 1)])) == "snapshot"  # u=1: a reset
    assert book.levels("bid").tolist() == [[50, 1]] and book.usable
    assert book.apply(_msg("delta", 2, b=[(52, 1)])) == "crossed" and book.needs_snapshot


def test_walk_book_depth_slippage():
    book = _book()
    price, filled = walk_book(book, "buy", 3.0)  # 1 @101 + 2 @102
    assert filled == 3.0 and price == pytest.approx((101 + 2 * 102) / 3)
    price, filled = walk_book(book, "sell", 100.0)  # thinner than asked: all 6 bid units
    assert filled == 6.0 and price == pytest.approx((99 + 98 * 2 + 97 * 3) / 6)
    book.apply(_msg("delta", 13, b=[(99, 1)]))  # gap
    with pytest.raises(DataError, match="not usable"):
        walk_book(book, "buy", 1.0)


def test_book_feed_survives_bad_deltas_gaps_and_resets(fake_bybit, planted):
    faults = Faults(book_delete_missing={1}, book_repeat={2}, book_malformed={3}, book_gap={4}, book_reset={6})
    fake = fake_bybit(planted.iloc[:35], start_index=20, bar_seconds=0.03, faults=faults)
    ep = resolve_endpoints("mainnet", fake.rest_url, fake.ws_url)
    feed = BookFeed(ep, "BTCUSDT", stale_after_s=1.0, reconnect=RetryPolicy(0.02, 0.1, float("inf")))

    async def go():
        task = asyncio.create_task(feed.run())
        while not fake.done.is_set():  # the stream's 15 bars, then the book rests
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.1)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass

    asyncio.run(asyncio.wait_for(go(), 10))
    st = feed.book.stats
    assert st["missing_deletes"] >= 1 and st["stale_deltas"] >= 1 and st["malformed"] >= 1 and st["gaps"] == 1
    assert st["snapshots"] >= 3  # first subscription, re-subscription after the gap, the u=1 reset
    assert feed.stats.reconnects == 1 and feed.stats.state == "LIVE"
    # the book equals the exchange's current book, sorted
    bids, asks = fake._book
    assert feed.book.levels("bid").tolist() == [[p, bids[p]] for p in sorted(bids, reverse=True)]
    assert feed.book.levels("ask").tolist() == [[p, asks[p]] for p in sorted(asks)]


def test_paper_broker_fills_against_the_book_with_depth_slippage():
    import pandas as pd

    from effnet_trading.plugins.bybit import Bar, PaperBroker
    from effnet_trading.strategies import Fill

    book = _book()  # bids 99x1 98x2 97x3, asks 101x1 102x5 103x2; mid 100
    broker = PaperBroker(1_000.0, fees=0.001, book=book, step_ms=300_000)
    t = pd.Timestamp("2024-01-01", tz="UTC")
    broker.submit(t, "X", 0.5, "a")  # 500 / mid 100 = 5 units: 1 @101 + 4 @102
    (f,) = broker.fills
    assert isinstance(f, Fill) and f.units == 5.0 and f.units_after == 5.0  # the backtests' record
    assert (f.side, f.size, f.via, f.time) == ("buy", 5.0, "book", t + pd.Timedelta(minutes=5))
    assert f.price == pytest.approx((101 + 4 * 102) / 5) and f.fee == pytest.approx(0.001 * 5 * f.price)
    assert broker.cash == pytest.approx(1_000 - 5 * f.price - f.fee) and broker.units == 5.0
    broker.submit(t, "X", 0.0, "b")  # close: sell 5 into the bids 1 @99 + 2 @98 + 2 @97
    assert broker.fills[-1].price == pytest.approx((99 + 2 * 98 + 2 * 97) / 5) and broker.units == 0.0
    book.apply(_msg("delta", 20, b=[(99, 1)]))  # a gap: the book is not usable -> next open, counted
    broker.submit(t, "X", 0.2, "c")
    assert len(broker.fills) == 2 and broker.book_fallbacks == 1
    (f,) = broker.on_bar(Bar(int(t.value // 1_000_000) + 300_000, 100.0, 101.0, 99.0, 100.5, 1.0))
    assert f.via == "next_open" and f.price == 100.0
