"""GASF / GADF / recurrence kernels against pyts (the independent reference) on the same windows.

pyts compiles ~100 numba kernels eagerly when imported (~20-40 s on CI's 2 cores), so the
reference runs once per module in a subprocess with ``NUMBA_DISABLE_JIT=1`` (pure-Python
pyts, same results, ~2 s) instead of importing it into the shared test process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from effnet_trading.imaging import ImageSpec, ohlcv_array, render, valid_ends
from effnet_trading.imaging._fields import paa
from effnet_trading.imaging._windows import windows

# (window, size): no PAA, PAA dividing evenly, PAA with uneven segments, prime sizes
SHAPES = [(32, 32), (64, 32), (50, 16), (37, 13), (30, 7)]

_REFERENCE = """
import json, sys
import numpy as np
from pyts.approximation import PiecewiseAggregateApproximation
from pyts.image import GramianAngularField, RecurrencePlot
jobs = json.load(open(sys.argv[1]))
inputs = np.load(sys.argv[2])
out = {}
for job in jobs:
    cls = {"paa": PiecewiseAggregateApproximation, "gaf": GramianAngularField, "rp": RecurrencePlot}[job["cls"]]
    kw = {k: tuple(v) if isinstance(v, list) else v for k, v in job["kw"].items()}
    out[job["id"]] = cls(**kw).fit_transform(inputs[job["id"]])
np.savez(sys.argv[3], **out)
"""


def _arr(planted) -> np.ndarray:
    return ohlcv_array(planted.iloc[:600])


def _ends(spec, arr):
    return valid_ends(spec, arr)[::41]


def _level_windows(arr, col, ends, window, returns):
    if not returns:
        return windows(arr[:, col], ends, window)
    level = np.log1p(arr[:, col]) if col == 4 else np.log(arr[:, col])
    return np.diff(windows(level, ends, window + 1), axis=1)


def _paa_kw(size):
    return {"window_size": None, "output_size": size, "overlapping": False}


def _jobs(arr):
    """(job list, input arrays) for every comparison in this module."""
    jobs, inputs = [], {}
    for window, size in SHAPES:
        key = f"paa-{window}-{size}"
        inputs[key] = windows(arr[:, 3], np.arange(window, 200, 17), window)
        jobs.append({"id": key, "cls": "paa", "kw": _paa_kw(size)})
        for kind, method in (("gasf", "summation"), ("gadf", "difference")):
            for returns in (False, True):
                ends = _ends(ImageSpec(kind, window=window, size=size, returns=returns), arr)
                for col in (3, 4):
                    key = f"{kind}-{window}-{size}-{returns}-{col}"
                    inputs[key] = _level_windows(arr, col, ends, window, returns)
                    jobs.append(
                        {"id": key, "cls": "gaf", "kw": {"image_size": size, "method": method, "sample_range": [-1, 1]}}
                    )
        ends = _ends(ImageSpec("recurrence", window=window, size=size), arr)
        key = f"rp-paa-{window}-{size}"
        inputs[key] = windows(arr[:, 1], ends, window)
        jobs.append({"id": key, "cls": "paa", "kw": _paa_kw(size)})
    ends = _ends(ImageSpec("gasf", window=20, size=(50, 30)), arr)
    inputs["up"] = windows(arr[:, 3], ends, 20)
    jobs.append({"id": "up", "cls": "gaf", "kw": {"image_size": 20, "sample_range": [-1, 1]}})
    return jobs, inputs


@pytest.fixture(scope="module")
def ref(planted, tmp_path_factory):
    """pyts outputs by job id, computed in one pure-Python subprocess."""
    arr = _arr(planted)
    jobs, inputs = _jobs(arr)
    d = tmp_path_factory.mktemp("pyts")
    (d / "jobs.json").write_text(json.dumps(jobs))
    np.savez(d / "in.npz", **inputs)
    # recurrence plots need the PAA'd series first: a second pass over the PAA outputs
    subprocess.run(
        [sys.executable, "-c", _REFERENCE, str(d / "jobs.json"), str(d / "in.npz"), str(d / "out.npz")],
        check=True,
        env={**os.environ, "NUMBA_DISABLE_JIT": "1"},
        timeout=300,
    )
    out = dict(np.load(d / "out.npz"))
    rp_jobs, rp_inputs = [], {}
    for window, size in SHAPES:
        for threshold in (None, 1.5):
            key = f"rp-{window}-{size}-{threshold}"
            rp_inputs[key] = out[f"rp-paa-{window}-{size}"]
            rp_jobs.append({"id": key, "cls": "rp", "kw": {"threshold": threshold}})
    (d / "rp.json").write_text(json.dumps(rp_jobs))
    np.savez(d / "rp_in.npz", **rp_inputs)
    subprocess.run(
        [sys.executable, "-c", _REFERENCE, str(d / "rp.json"), str(d / "rp_in.npz"), str(d / "rp_out.npz")],
        check=True,
        env={**os.environ, "NUMBA_DISABLE_JIT": "1"},
        timeout=300,
    )
    out.update(np.load(d / "rp_out.npz"))
    return arr, out


@pytest.mark.parametrize("window, size", SHAPES)
def test_paa_matches_pyts(window, size, ref):
    arr, out = ref
    x = windows(arr[:, 3], np.arange(window, 200, 17), window)
    np.testing.assert_allclose(paa(x, size), out[f"paa-{window}-{size}"], rtol=0, atol=1e-9)


@pytest.mark.parametrize("kind", ["gasf", "gadf"])
@pytest.mark.parametrize("window, size", SHAPES)
@pytest.mark.parametrize("returns", [False, True])
def test_angular_fields_equal_pyts(kind, window, size, returns, ref):
    arr, out = ref
    spec = ImageSpec(kind, window=window, size=size, returns=returns, fields=("close", "volume"))
    ours = render(spec, arr, _ends(spec, arr)) * 2.0 - 1.0
    for c, col in enumerate((3, 4)):
        np.testing.assert_allclose(ours[:, c], out[f"{kind}-{window}-{size}-{returns}-{col}"], rtol=0, atol=1e-5)


@pytest.mark.parametrize("threshold", [None, 1.5])
@pytest.mark.parametrize("window, size", SHAPES)
def test_recurrence_equals_pyts(threshold, window, size, ref):
    arr, out = ref
    spec = ImageSpec("recurrence", window=window, size=size, threshold=threshold, fields=("high",))
    expected = out[f"rp-{window}-{size}-{threshold}"]
    if threshold is None:
        expected = expected / expected.max(axis=(1, 2), keepdims=True)  # our documented scaling to [0, 1]
    else:
        assert 0 < expected.mean() < 1  # the threshold actually splits this data
    np.testing.assert_allclose(render(spec, arr, _ends(spec, arr))[:, 0], expected, rtol=0, atol=1e-6)


def test_size_above_window_upsamples_by_nearest(ref):
    arr, out = ref
    spec = ImageSpec("gasf", window=20, size=(50, 30))
    rows, cols = np.arange(50) * 20 // 50, np.arange(30) * 20 // 30
    expected = out["up"][:, rows][:, :, cols]
    np.testing.assert_allclose(render(spec, arr, _ends(spec, arr))[:, 0] * 2 - 1, expected, atol=1e-5)


def test_flat_window_is_defined():
    flat = np.tile([[10.0, 10.0, 10.0, 10.0, 1.0]], (40, 1))
    for kind in ("gasf", "gadf", "recurrence"):
        img = render(ImageSpec(kind, window=32, size=16), flat, [39])
        assert np.isfinite(img).all() and img.min() >= 0 and img.max() <= 1
    # pyts/sklearn map a flat series to -1 everywhere: GASF cos(pi + pi) = 1 -> pixel 1
    assert render(ImageSpec("gasf", window=32, size=16), flat, [39]).min() == 1.0
