"""Chart kernels pixel by pixel on hand-made bars (worked out on paper, row 0 = top)."""

from __future__ import annotations

import numpy as np
import pytest

from effnet_trading.imaging import ImageSpec, render

# open, high, low, close, volume; lowest low 8, highest high 13
BARS = np.array(
    [
        [10.0, 12.0, 9.0, 11.0, 1.0],  # up
        [11.0, 13.0, 10.0, 10.0, 2.0],  # down
        [10.0, 11.0, 8.0, 9.0, 4.0],  # down
    ]
)


def _pixels(rows: list[str]) -> np.ndarray:
    return np.array([[ch == "#" for ch in r] for r in rows], dtype=np.float32)


def test_ohlc_bars_pixel_exact_without_volume():
    # H=6: row = 13 - price. Columns per bar: open tick, high-low bar, close tick.
    expected = _pixels(
        [
            "....#....",
            ".#..#....",
            ".####..#.",
            "##..####.",
            ".#.....##",
            ".......#.",
        ]
    )
    img = render(ImageSpec("ohlc_bars", window=3, size=(6, 9), volume=False), BARS, [2])
    np.testing.assert_array_equal(img[0, 0], expected)


def test_ohlc_bars_pixel_exact_with_volume_and_padding():
    # H=20: volume panel = bottom 4 rows (top one blank), price panel 16 rows: row = 3 * (13 - price).
    # Volume heights rint(v / 4 * 3) = 1, 2, 3 in the middle columns. Columns 9..10 stay black.
    img = render(ImageSpec("ohlc_bars", window=3, size=(20, 11)), BARS, [2])[0, 0]
    expected = np.zeros((20, 11), np.float32)
    for i, (o, h, lo, c, _) in enumerate(BARS):
        expected[int(3 * (13 - o)), 3 * i] = 1
        expected[int(3 * (13 - h)) : int(3 * (13 - lo)) + 1, 3 * i + 1] = 1
        expected[int(3 * (13 - c)), 3 * i + 2] = 1
    for i, height in enumerate((1, 2, 3)):
        expected[20 - height :, 3 * i + 1] = 1
    np.testing.assert_array_equal(img, expected)


def test_ohlc_bars_20_bars_is_jkx_64x60(planted):
    img = render(ImageSpec("ohlc_bars", window=20, size=(64, 60), ma=20), planted.iloc[:100], [99])
    assert img.shape == (1, 1, 64, 60)
    assert set(np.unique(img)) == {0.0, 1.0}


def test_candles_pixel_exact_rgb():
    # W=9, 3 columns per bar: body in the first two, wick in the first, third column a gap.
    red = _pixels(
        [
            "...#.....",
            "...#.....",
            "...##.#..",
            "...##.##.",
            "......##.",
            "......#..",
        ]
    )
    green = _pixels(
        [
            ".........",
            "#........",
            "##.......",
            "##.......",
            "#........",
            ".........",
        ]
    )
    img = render(ImageSpec("candles", window=3, size=(6, 9), volume=False), BARS, [2])[0]
    np.testing.assert_array_equal(img[0], red)
    np.testing.assert_array_equal(img[1], green)
    np.testing.assert_array_equal(img[2], 0)  # no MA line requested


def test_candles_grey_marks_down_bars_half_bright():
    img = render(ImageSpec("candles", window=3, size=(6, 9), volume=False, color="grey"), BARS, [2])[0, 0]
    assert img[1, 0] == 1.0 and img[0, 3] == 0.5 and img[5, 6] == 0.5
    assert set(np.unique(img)) == {0.0, 0.5, 1.0}


@pytest.mark.parametrize("kind", ["candles", "ohlc_bars"])
def test_moving_average_line_passes_through_bar_centres(kind):
    # ma=2 over closes 11, 10, 9 preceded by close 12: MA = 11.5, 10.5, 9.5 -> inside [8, 13]
    bars = np.vstack([[12.0, 12.5, 11.5, 12.0, 1.0], BARS])
    spec = ImageSpec(kind, window=3, size=(11, 9), volume=False, ma=2)  # row = 2 * (13 - price)
    img = render(spec, bars, [3])[0]
    line = img[2] if kind == "candles" else img[0]
    centres = [0, 3, 6] if kind == "candles" else [1, 4, 7]
    for col, ma in zip(centres, (11.5, 10.5, 9.5)):
        assert line[int(2 * (13 - ma)), col] == 1.0
    if kind == "candles":  # the line is connected: every column has a lit pixel
        assert (line.max(axis=0)[: centres[-1] + 1] == 1.0).all()


@pytest.mark.parametrize(
    "spec",
    [
        ImageSpec("candles", window=20, size=64, ma=5),
        ImageSpec("candles", window=12, size=(30, 40), color="grey", ma=4),
        ImageSpec("candles", window=9, size=(8, 20), volume=True),  # a 1-row volume panel (separator only)
        ImageSpec("candles", window=10, size=24, volume=False, color="grey"),
        ImageSpec("ohlc_bars", window=20, size=(64, 60), ma=20),
        ImageSpec("ohlc_bars", window=5, size=(16, 20), volume=False),
    ],
    ids=lambda s: f"{s.kind}-{s.color}-{s.size[0]}x{s.size[1]}-v{int(s.volume)}-ma{s.ma}",
)
def test_uint8_output_is_the_rounded_float_image(spec):
    """The chart kernels write uint8 themselves: equal to rint(255 * the float32 image), pixel for pixel."""
    rng = np.random.default_rng(3)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, 300)))
    open_ = np.r_[close[0], close[:-1]]
    high = np.maximum(open_, close) * (1 + rng.uniform(0, 0.01, 300))
    low = np.minimum(open_, close) * (1 - rng.uniform(0, 0.01, 300))
    bars = np.c_[open_, high, low, close, rng.uniform(1, 10, 300)]
    bars[50:60, :4] = bars[50, 3]  # a flat stretch: flat windows sit in the middle row
    f = render(spec, bars)
    u = render(spec, bars, dtype=np.uint8)
    assert u.dtype == np.uint8 and f.dtype == np.float32
    np.testing.assert_array_equal(u, np.rint(f * 255).astype(np.uint8))
    assert set(np.unique(f)) <= ({0.0, 1.0} if spec.color == "rgb" else {0.0, 0.5, 1.0})
