"""StackSpec: channel concatenation and multi-timeframe stacks that use only closed bars."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from effnet_trading.errors import SpecError
from effnet_trading.imaging import ImageSpec, StackSpec, render, resample_ohlcv, valid_ends, warmup


@pytest.fixture(scope="module")
def frame(planted):
    return planted.iloc[:3000]  # 5m bars


def test_candles_gasf_gadf_stack_concatenates_members(frame):
    members = (
        ImageSpec("candles", window=32, size=64, ma=5),
        ImageSpec("gasf", window=32, size=64),
        ImageSpec("gadf", window=32, size=64),
    )
    stack = StackSpec(members)
    ends = valid_ends(stack, frame)[::200]
    img = render(stack, frame, ends)
    assert img.shape == (len(ends), 5, 64, 64)
    np.testing.assert_array_equal(img[:, :3], render(members[0], frame, ends))
    np.testing.assert_array_equal(img[:, 3:4], render(members[1], frame, ends))
    np.testing.assert_array_equal(img[:, 4:], render(members[2], frame, ends))
    assert warmup(stack, frame) == max(warmup(m, frame) for m in members)


MTF = StackSpec(
    tuple(ImageSpec("gasf", window=16, size=16, fields=("typical",), timeframe=tf) for tf in (None, "15m", "1h"))
)


def test_multi_timeframe_member_uses_last_closed_higher_bars(frame):
    t = 2000  # decision at the end of 5m bar t
    img = render(MTF, frame, [t])
    decision = frame.index[t] + pd.Timedelta("5min")
    for c, tf in ((1, "15m"), (2, "1h")):
        hi = resample_ohlcv(frame, tf)
        closed = hi[hi.index + pd.Timedelta(tf.replace("m", "min")) <= decision]
        member = ImageSpec("gasf", window=16, size=16, fields=("typical",))
        ref = render(member, closed.iloc[:, :5].to_numpy(), [len(closed) - 1])
        np.testing.assert_array_equal(img[:, c : c + 1], ref)


@pytest.mark.parametrize("t", [2000, 2005, 2011])  # on, inside and at the end of an hour
def test_multi_timeframe_is_causal_by_perturbation(frame, t):
    base = render(MTF, frame, [t])
    after = frame.copy()
    after.iloc[t + 1 :] = after.iloc[t + 1 :].to_numpy() * np.linspace(3.0, 0.3, len(frame) - t - 1)[:, None]
    np.testing.assert_array_equal(render(MTF, after, [t]), base)
    for lag, channels in ((3, (0,)), (30, (1, 2))):  # 30 bars back: inside closed 15m and 1h bars
        inside = frame.copy()
        inside.iloc[t - lag] = inside.iloc[t - lag].to_numpy() * 1.2
        changed = render(MTF, inside, [t])
        assert all(not np.array_equal(changed[:, c], base[:, c]) for c in channels)


def test_multi_timeframe_warmup_counts_higher_bars(frame):
    # 16 closed 1h bars need 16 * 12 5m bars: the first decision is the end of the 16th hour
    first = warmup(MTF, frame)
    decision = frame.index[first] + pd.Timedelta("5min")
    hours = resample_ohlcv(frame, "1h")
    assert ((hours.index + pd.Timedelta("1h")) <= decision).sum() == 16
    assert ((hours.index + pd.Timedelta("1h")) <= decision - pd.Timedelta("5min")).sum() == 15


def test_stack_rejects_mixed_sizes():
    with pytest.raises(SpecError, match=r"must share one \(H, W\) size"):
        StackSpec((ImageSpec("gasf", size=32), ImageSpec("gadf", size=64)))


def test_timeframe_needs_timestamps(frame):
    with pytest.raises(SpecError, match="needs timestamps: pass a DataFrame"):
        render(MTF, frame.to_numpy())
