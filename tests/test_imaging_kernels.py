"""Every OHLCV kind: shapes, dtypes, ranges, causality by perturbation, batched == per-image loop."""

from __future__ import annotations

import numpy as np
import pytest

from effnet_trading.errors import DataError, SpecError
from effnet_trading.imaging import (
    ImageSpec,
    StackSpec,
    iter_render,
    ohlcv_array,
    render,
    spec_from_json,
    valid_ends,
    warmup,
)
from effnet_trading.imaging.render import KERNELS

SPECS = {
    "candles": ImageSpec("candles", window=20, size=(40, 50), ma=5),
    "candles_grey": ImageSpec("candles", window=16, size=32, color="grey", volume=False),
    "ohlc_bars": ImageSpec("ohlc_bars", window=20, size=(64, 60), ma=20),
    "gasf": ImageSpec("gasf", window=30, size=16, fields=("close", "volume")),
    "gadf_returns": ImageSpec("gadf", window=24, size=24, returns=True),
    "recurrence": ImageSpec("recurrence", window=20, size=32),
    "recurrence_bin": ImageSpec("recurrence", window=20, size=10, threshold=2.0, fields=("typical",)),
}


@pytest.fixture(scope="module")
def bars(planted):
    return planted.iloc[:400]


@pytest.mark.parametrize("name", sorted(SPECS))
@pytest.mark.parametrize("dtype", [np.float32, np.uint8])
def test_shape_dtype_range(name, dtype, bars):
    spec = SPECS[name]
    ends = valid_ends(spec, bars)[::37]
    out = render(spec, bars, ends, dtype=dtype)
    assert out.shape == (len(ends), spec.channels) + spec.size
    assert out.dtype == dtype
    hi = 255 if dtype == np.uint8 else 1.0
    assert out.min() >= 0 and out.max() <= hi
    assert out.max() > 0  # something was drawn


@pytest.mark.parametrize("name", sorted(SPECS))
def test_causal_by_perturbation(name, bars):
    spec = SPECS[name]
    t = 300
    arr = ohlcv_array(bars)
    after = arr.copy()
    rng = np.random.default_rng(1)
    after[t + 1 :] *= rng.uniform(0.2, 5.0, size=(len(arr) - t - 1, 1))  # whole bars: stays valid OHLC
    inside = arr.copy()
    inside[t - 2] *= 1.07
    inside[t - 2, 4] *= 4.0
    base = render(spec, arr, [t])
    np.testing.assert_array_equal(render(spec, after, [t]), base)
    assert not np.array_equal(render(spec, inside, [t]), base)


def test_moving_average_reads_history_before_the_window(bars):
    spec = SPECS["candles"]
    assert spec.history == spec.window + spec.ma - 1
    assert warmup(spec, bars) == spec.history - 1
    arr = ohlcv_array(bars)
    t = 200
    before = arr.copy()
    before[t - spec.window] *= 1.5  # outside the drawn window, inside the MA look-back
    assert not np.array_equal(render(spec, before, [t]), render(spec, arr, [t]))
    before[t - spec.history] *= 3.0  # beyond the look-back: no effect
    np.testing.assert_array_equal(
        render(spec, before, [t]),
        render(spec, np.where(np.arange(len(arr))[:, None] == t - spec.window, before, arr), [t]),
    )


@pytest.mark.parametrize("name", sorted(SPECS))
def test_batched_equals_per_image_loop(name, bars):
    spec = SPECS[name]
    arr = ohlcv_array(bars)
    ends = valid_ends(spec, arr)[::23]
    batch = KERNELS[spec.kind](spec, arr, ends)
    loop = np.concatenate([KERNELS[spec.kind](spec, arr, ends[i : i + 1]) for i in range(len(ends))])
    np.testing.assert_array_equal(batch, loop)


def test_iter_render_chunks_concatenate_to_render(bars):
    spec = StackSpec((SPECS["candles"].replace(size=(32, 32), ma=0), ImageSpec("gasf", window=20, size=32)))
    whole = render(spec, bars)
    parts = list(iter_render(spec, bars, chunk=50))
    assert [len(e) for e, _ in parts][:2] == [50, 50]
    np.testing.assert_array_equal(np.concatenate([e for e, _ in parts]), valid_ends(spec, bars))
    np.testing.assert_array_equal(np.concatenate([x for _, x in parts]), whole)


@pytest.mark.parametrize(
    "spec",
    list(SPECS.values())
    + [
        ImageSpec("lob_heatmap", window=16, size=32, levels=10, bucket_bps=0.25),
        ImageSpec("gasf", window=32, size=32, timeframe="15m"),
        StackSpec((ImageSpec("candles", size=32), ImageSpec("gasf", size=32), ImageSpec("gadf", size=32))),
    ],
    ids=lambda s: s.kind,
)
def test_json_round_trip(spec):
    back = spec_from_json(spec.to_json())
    assert back == spec
    assert back.to_json() == spec.to_json()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(kind="hexagons"), "kind 'hexagons' is unknown"),
        (
            dict(kind="ohlc_bars", window=20, size=(64, 40)),
            "ohlc_bars needs 3 pixels per bar: width 40 < 3 x window 20",
        ),
        (dict(kind="candles", window=50, size=32), "candles needs at least 1 pixel column per bar"),
        (dict(kind="gasf", size=(2, 64)), "must be (H, W) with both >= 4 pixels"),
        (dict(kind="gasf", fields=("close", "vwap")), "must be a non-empty subset of"),
        (dict(kind="candles", color="blue"), "must be 'rgb' or 'grey'"),
        (dict(kind="candles", ma=-3), "ma=-3 must be >= 0"),
        (dict(kind="gasf", window=1), "window 1 must be >= 2 bars"),
        (dict(kind="recurrence", threshold=-1.0), "threshold=-1.0 must be > 0 or None"),
        (dict(kind="lob_heatmap", bucket_bps=0), "bucket_bps=0 must be > 0"),
        (dict(kind="gasf", timeframe="7parsecs"), "timeframe '7parsecs'"),
    ],
)
def test_spec_errors_tell_the_fix(kwargs, message):
    with pytest.raises(SpecError, match=message.replace("(", r"\(").replace(")", r"\)")):
        ImageSpec(**kwargs)


def test_spec_from_dict_rejects_unknown_option():
    with pytest.raises(SpecError, match=r"unknown ImageSpec option\(s\) \['colour'\]"):
        spec_from_json('{"kind": "candles", "colour": "rgb"}')


def test_ends_outside_history_raise(bars):
    spec = SPECS["ohlc_bars"]
    with pytest.raises(DataError, match=r"ends must lie in \[38, 399\]"):
        render(spec, bars, [10])


def test_render_refuses_lob_kind(bars):
    with pytest.raises(SpecError, match="use effnet_trading.imaging.render_lob"):
        render(ImageSpec("lob_heatmap"), bars)
