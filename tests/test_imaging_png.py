"""PNG pictures for people and the ``effnet-trading render`` command."""

from __future__ import annotations

import matplotlib.image as mimage
import numpy as np
import pytest
from click.testing import CliRunner

from effnet_trading.errors import SpecError
from effnet_trading.imaging import ImageSpec, StackSpec, channel_grid, render, to_png
from effnet_trading.plugins.cli import main


@pytest.fixture(scope="module")
def frame(planted):
    return planted.iloc[:200]


def test_model_view_png_is_the_tensor_enlarged(frame, tmp_path):
    spec = ImageSpec("candles", window=20, size=(40, 40), ma=5)
    path = to_png(spec, tmp_path / "c.png", frame, end=150, scale=3)
    png = mimage.imread(path)[..., :3]
    assert png.shape == (120, 120, 3)
    expected = np.transpose(render(spec, frame, [150])[0], (1, 2, 0)).repeat(3, 0).repeat(3, 1)
    np.testing.assert_allclose(png, expected, atol=1 / 255)


def test_stack_png_is_a_grid_of_channels(frame, tmp_path):
    stack = StackSpec(
        (
            ImageSpec("gasf", window=20, size=16),
            ImageSpec("gadf", window=20, size=16),
            ImageSpec("recurrence", window=20, size=16),
        )
    )
    img = render(stack, frame, [150])[0]
    grid = channel_grid(img)
    assert grid.shape == (33, 33)  # 2 x 2 tiles of 16 with a 1-pixel gap
    np.testing.assert_array_equal(grid[17:, :16], img[2])
    assert np.isnan(grid[17:, 17:]).all()  # the unused fourth tile
    png = mimage.imread(to_png(stack, tmp_path / "s.png", frame, end=150, scale=2))
    assert png.shape[:2] == (66, 66)


def test_mplfinance_view(frame, tmp_path):
    spec = ImageSpec("candles", window=20, size=64, ma=5)
    path = to_png(spec, tmp_path / "m.png", frame, end=-1, view="mplfinance")
    assert mimage.imread(path).shape[0] > 100
    with pytest.raises(SpecError, match="view='mplfinance' draws candles/ohlc_bars specs"):
        to_png(ImageSpec("gasf"), tmp_path / "x.png", frame, view="mplfinance")


def test_to_png_needs_data_for_a_spec(tmp_path):
    with pytest.raises(SpecError, match="needs data="):
        to_png(ImageSpec("gasf"), tmp_path / "x.png")


def test_render_cli_writes_png_and_npy(sample_dir, tmp_path):
    csv = sample_dir / "planted_5m.csv"
    out, npy = tmp_path / "out.png", tmp_path / "out.npy"
    result = CliRunner().invoke(
        main,
        [
            "render",
            "--data",
            str(csv),
            "--kind",
            "candles",
            "--window",
            "32",
            "--size",
            "64",
            "--end",
            "-1",
            "--png",
            str(out),
            "--npy",
            str(npy),
        ],
    )
    assert result.exit_code == 0, result.output
    assert out.stat().st_size > 0 and mimage.imread(out).shape[:2] == (256, 256)
    arr = np.load(npy)
    assert arr.shape == (1, 3, 64, 64) and arr.dtype == np.float32


def test_render_cli_reports_bad_spec(sample_dir, tmp_path):
    result = CliRunner().invoke(
        main,
        [
            "render",
            "--data",
            str(sample_dir / "planted_5m.csv"),
            "--kind",
            "ohlc_bars",
            "--window",
            "20",
            "--size",
            "64x40",
            "--png",
            str(tmp_path / "x.png"),
        ],
    )
    assert result.exit_code != 0
    assert "ohlc_bars needs 3 pixels per bar" in result.output
