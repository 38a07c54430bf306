"""Live kline feed, paper broker and live sessions against the loopback fake Bybit (no network)."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pandas as pd
import pytest

from effnet_trading.errors import TransientExchangeError
from effnet_trading.plugins.bybit import (
    DISCONNECTED,
    LIVE,
    BybitREST,
    KlineFeed,
    PaperBroker,
    RetryPolicy,
    order_link_id,
    resolve_endpoints,
)
from effnet_trading.plugins.bybit.bars import Bar
from effnet_trading.plugins.bybit.fake_exchange import Faults
from effnet_trading.strategies import simulate

pytestmark = pytest.mark.usefixtures("one_torch_thread")

W = 120  # bars before the first streamed one
FAST = RetryPolicy(base_s=0.02, cap_s=0.1, total_s=float("inf"))


def _feed(fake, **kw):
    ep = resolve_endpoints("mainnet", fake.rest_url, fake.ws_url)
    rest = BybitREST(ep, retry=RetryPolicy(base_s=0.01, cap_s=0.05, total_s=5.0))
    last = int(fake.state.starts[fake.state.start_index - 1])
    opts = {"last_start": last, "stale_after_s": 0.4, "reconnect": FAST, "max_reconnects": 20}
    opts.update(kw)
    return KlineFeed(rest, ep, fake.symbol, fake.category, fake.interval, **opts)


def _collect(feed, n: int, timeout: float = 15.0) -> list[Bar]:
    async def go():
        out = []
        gen = feed.bars()
        try:
            async for bar in gen:
                out.append(bar)
                if len(out) >= n:
                    break
        finally:
            await gen.aclose()
        return out

    return asyncio.run(asyncio.wait_for(go(), timeout))


def _assert_exact(bars: list[Bar], source: pd.DataFrame, first: int):
    """The bars are source rows first, first+1, ... : none lost, none twice, values equal."""
    expect = source.iloc[first : first + len(bars)]
    got = [b.start for b in bars]
    assert got == list(expect.index.as_unit("ns").asi8 // 1_000_000)
    np.testing.assert_array_equal([[b.open, b.high, b.low, b.close, b.volume] for b in bars], expect.to_numpy())


@pytest.fixture
def stream(planted):
    return planted.iloc[: W + 40]


# -- feed ------------------------------------------------------------------------------------
def test_feed_clean_stream_takes_confirmed_candles_only(fake_bybit, stream):
    fake = fake_bybit(stream, start_index=W, bar_seconds=0.02)
    feed = _feed(fake)
    bars = _collect(feed, 15)
    _assert_exact(bars, stream, W)
    st = feed.stats
    # every bar is taken once, from the stream; on a loaded machine the fake exchange (a bar every 20 ms,
    # paced by wall clock) can skip a confirm, which the feed then backfills from REST: allowed, counted
    assert st.ws_bars + st.backfilled == 15 and st.backfilled <= 2 and st.unconfirmed >= st.ws_bars, st
    assert [s for _, s, _ in st.transitions] == ["DELAYED", "LIVE"], st.transitions


@pytest.mark.parametrize(
    "faults, check",
    [
        (Faults(duplicate={2, 3}), lambda s: s.duplicates == 2),
        (Faults(reorder={4}), lambda s: s.backfilled >= 1 and s.duplicates >= 1),
        (Faults(delay_s={3: 0.1}), lambda s: s.gaps == []),
        (Faults(malformed={2}), lambda s: s.malformed == 3),
        (Faults(drop_at={3}, refuse_s=0.15), lambda s: s.reconnects >= 2 and s.backfilled >= 1),
        (Faults(stall_s={3: 0.6}), lambda s: s.stale == 1 and s.backfilled >= 1),
    ],
    ids=["duplicate-confirm", "reordered", "delayed", "malformed", "drop-mid-bar", "stall"],
)
def test_feed_faults_lose_no_bar_and_repeat_none(fake_bybit, stream, faults, check):
    fake = fake_bybit(stream, start_index=W, bar_seconds=0.03, faults=faults)
    feed = _feed(fake)
    bars = _collect(feed, 30)
    _assert_exact(bars, stream, W)
    assert check(feed.stats), vars(feed.stats)
    states = [s for _, s, _ in feed.stats.transitions]
    if faults.drop_at or faults.stall_s:
        i = states.index(DISCONNECTED)
        assert LIVE in states[i:], states  # DISCONNECTED -> (DELAYED backfill) -> LIVE, logged
    assert not feed.stats.gaps


def test_feed_gives_up_loudly_after_bounded_retries(fake_bybit, stream):
    fake = fake_bybit(stream, start_index=W, bar_seconds=0.02, faults=Faults(drop_at={1}, refuse_s=60.0))
    feed = _feed(fake, max_reconnects=3)
    t0 = time.monotonic()
    with pytest.raises(TransientExchangeError, match=r"failed 4 times in a row.*--ws-url"):
        _collect(feed, 10)
    assert time.monotonic() - t0 < 5.0
    assert fake.refused == 3 and feed.stats.state == DISCONNECTED  # the drop, then 3 refused reconnects


def test_state_callback_that_raises_does_not_kill_the_feed(fake_bybit, stream):
    fake = fake_bybit(stream, start_index=W, bar_seconds=0.02, faults=Faults(drop_at={2}))
    seen = []

    def bad(state, reason):
        seen.append(state)
        raise RuntimeError("user bug")

    feed = _feed(fake, on_state=bad)
    _assert_exact(_collect(feed, 8), stream, W)
    assert feed.stats.callback_errors == len(seen) >= 4


# -- paper broker ----------------------------------------------------------------------------
def test_paper_broker_fills_equal_simulate(planted):
    bars_df = planted.iloc[:300]
    rng = np.random.default_rng(3)
    target = np.round(rng.choice([-1.0, -0.5, 0.0, 0.5, 1.0], size=len(bars_df)) * (rng.random(len(bars_df)) < 0.2), 2)
    target = pd.Series(target, index=bars_df.index).replace(0.0, np.nan).ffill().fillna(0.0)
    broker = PaperBroker(10_000.0, fees=0.001, slippage=0.0005)
    for (ts, row), tgt in zip(bars_df.iterrows(), target):
        bar = Bar(int(ts.value // 1_000_000), *row.to_numpy())
        broker.on_bar(bar)
        if tgt != broker.target:
            broker.submit(ts, "BTCUSDT", tgt, order_link_id("t", "BTCUSDT", bar.start))
    ref = simulate(bars_df, target, fees=0.001, slippage=0.0005, init_cash=10_000.0).orders
    got = pd.DataFrame([f.as_row() for f in broker.fills])
    assert len(got) == len(ref) > 10
    assert list(got["time"]) == list(ref["time"]) and list(got["side"]) == list(ref["side"])
    np.testing.assert_allclose(
        got[["size", "price", "fee", "target"]].to_numpy(),
        ref[["size", "price", "fee", "target"]].to_numpy(),
        rtol=1e-12,
    )


def test_order_link_id_is_deterministic_and_short():
    a = order_link_id("my strategy/v2 with a long name", "BTCUSDT", 1_700_000_000_000)
    assert a == order_link_id("my strategy/v2 with a long name", "BTCUSDT", 1_700_000_000_000)
    assert len(a) <= 36 and a.endswith("-BTCUSDT-1700000000000") and " " not in a and "/" not in a
    assert a != order_link_id("my strategy/v2 with a long name", "BTCUSDT", 1_700_000_300_000)
    broker = PaperBroker()
    broker.submit(pd.Timestamp(0, tz="UTC"), "BTCUSDT", 1.0, a)
    broker.submit(pd.Timestamp(0, tz="UTC"), "BTCUSDT", 1.0, a)  # a retried request
    assert len(broker.orders) == 1
