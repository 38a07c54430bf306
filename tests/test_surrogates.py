"""Surrogates keep the bars' return distribution and destroy their order (the null set of evaluate)."""

import numpy as np
import pandas as pd
import pytest

from effnet_trading.errors import DataError
from effnet_trading.evaluation.surrogates import bar_ratios, block_bootstrap, make_surrogate, random_walk_like
from effnet_trading.imaging import validate_ohlcv


def _ar1_frame(n=6000, phi=0.5, seed=0) -> pd.DataFrame:
    """Bars whose close-to-close returns follow an AR(1): strong, known serial order."""
    rng = np.random.default_rng(seed)
    r = np.empty(n)
    r[0] = 0.0
    e = rng.normal(0, 0.004, n)
    for t in range(1, n):
        r[t] = phi * r[t - 1] + e[t]
    close = 100 * np.exp(np.cumsum(r))
    open_ = np.concatenate([[100.0], close[:-1]])
    wig = np.abs(rng.normal(0, 0.002, (2, n)))
    df = pd.DataFrame(
        {
            "open": open_,
            "high": np.maximum(open_, close) * (1 + wig[0]),
            "low": np.minimum(open_, close) * (1 - wig[1]),
            "close": close,
            "volume": rng.uniform(1, 10, n),
        },
        index=pd.date_range("2024-01-01", periods=n, freq="5min", tz="UTC"),
    )
    return validate_ohlcv(df)


def _lag1(x):
    x = x - x.mean()
    return float((x[1:] * x[:-1]).mean() / (x * x).mean())


def test_block_shuffle_is_an_exact_permutation_of_the_bars():
    df = _ar1_frame()
    surr = make_surrogate(df, "block_shuffle", block=1, seed=1)
    a, b = bar_ratios(df), bar_ratios(surr)
    a[:, :4] -= a[:, 3].mean()  # the surrogate is zero-drift: same bars shifted by the mean return
    for col in range(5):
        np.testing.assert_allclose(np.sort(b[:, col]), np.sort(a[:, col]), atol=1e-9)
    assert surr.index.equals(df.index)


def test_order_is_destroyed_at_block_1_and_kept_within_long_blocks():
    df = _ar1_frame()
    r = bar_ratios(df)[:, 3]
    assert _lag1(r) == pytest.approx(0.5, abs=0.05)
    iid = bar_ratios(block_bootstrap(df, block=1, seed=2))[:, 3]
    blocks = bar_ratios(block_bootstrap(df, block=200, seed=2))[:, 3]
    assert abs(_lag1(iid)) < 0.05
    assert _lag1(blocks) > 0.4


def test_bootstrap_keeps_the_return_distribution():
    df = _ar1_frame()
    r = bar_ratios(df)[:, 3]
    s = bar_ratios(block_bootstrap(df, block=5, seed=3))[:, 3]
    qs = [0.01, 0.1, 0.5, 0.9, 0.99]
    np.testing.assert_allclose(np.quantile(s, qs), np.quantile(r - r.mean(), qs), atol=0.1 * r.std())
    assert abs(s.mean()) < 1e-12 + 0.05 * r.std()  # zero drift


def test_surrogates_are_valid_bars_and_deterministic(random_walk):
    df = random_walk.iloc[:3000]
    for kind in ("block_bootstrap", "block_shuffle", "random_walk"):
        a = make_surrogate(df, kind, seed=5)
        validate_ohlcv(a)  # raises on high < low etc.
        pd.testing.assert_frame_equal(a, make_surrogate(df, kind, seed=5))
        assert not np.allclose(a["close"].to_numpy(), df["close"].to_numpy())


def test_random_walk_matches_volatility(planted):
    df = planted.iloc[:5000]
    rw = random_walk_like(df, seed=0)
    r0, r1 = bar_ratios(df)[:, 3], bar_ratios(rw)[:, 3]
    assert r1.std() == pytest.approx(r0.std(), rel=0.05)
    assert abs(_lag1(r1)) < 0.05


def test_unknown_kind_and_short_input_are_errors(random_walk):
    with pytest.raises(DataError, match="surrogate kind 'shuffle' is unknown"):
        make_surrogate(random_walk, "shuffle")
    with pytest.raises(DataError, match="at least 3 bars"):
        block_bootstrap(random_walk.iloc[:2])
