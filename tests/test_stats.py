"""Deflated Sharpe ratio against the paper's worked example and a hand computation; bootstrap coverage."""

import math

import numpy as np
import pytest

from effnet_trading.errors import DataError
from effnet_trading.evaluation.stats import (
    bootstrap_stat,
    deflated_sharpe,
    deflated_sharpe_from_moments,
    expected_max_sharpe,
    sharpe_ci,
    sharpe_ratio,
)


def test_dsr_matches_bailey_lopez_de_prado_example():
    # Bailey & López de Prado (2014), numerical example: annual SR 2.5 over 1250 daily returns, 100 trials,
    # annualised variance of trial Sharpes 0.5, skew -3, kurtosis 10 -> SR0 ~ 0.1132 daily, DSR ~ 0.9004.
    out = deflated_sharpe_from_moments(2.5 / math.sqrt(250), 1250, -3.0, 10.0, 100, 0.5 / 250)
    assert out["sr0"] == pytest.approx(0.1132, abs=5e-4)
    assert out["dsr"] == pytest.approx(0.9004, abs=2e-3)


def test_dsr_against_hand_computation_with_scipy():
    import scipy.stats as stats

    rng = np.random.default_rng(3)
    r = 0.0004 + 0.01 * rng.standard_t(5, 3000)
    sr = r.mean() / r.std(ddof=1)
    g3, g4 = stats.skew(r), stats.kurtosis(r, fisher=False)
    n, v = 20, 4e-4
    e = 0.5772156649015329
    sr0 = math.sqrt(v) * ((1 - e) * stats.norm.ppf(1 - 1 / n) + e * stats.norm.ppf(1 - 1 / (n * math.e)))
    z = (sr - sr0) * math.sqrt(len(r) - 1) / math.sqrt(1 - g3 * sr + (g4 - 1) / 4 * sr**2)
    got = deflated_sharpe(r, n, v)
    assert got["sr0"] == pytest.approx(sr0, rel=1e-9)
    assert got["dsr"] == pytest.approx(stats.norm.cdf(z), rel=1e-6)
    assert got["dsr"] < got["psr"]  # more trials can only lower the confidence


def test_one_trial_is_not_deflated():
    assert expected_max_sharpe(1, 0.3) == 0.0
    r = np.random.default_rng(0).normal(0.001, 0.01, 500)
    out = deflated_sharpe(r, 1, 0.0)
    assert out["dsr"] == out["psr"]


def test_sharpe_ratio_annualises():
    r = np.array([0.01, -0.005, 0.02, 0.0])
    assert sharpe_ratio(r, 8766) == pytest.approx(r.mean() / r.std(ddof=1) * math.sqrt(8766))
    assert math.isnan(sharpe_ratio(np.zeros(10)))


def test_bootstrap_mean_interval_covers_the_truth_about_95_percent():
    rng = np.random.default_rng(1)
    hits = 0
    for i in range(200):
        x = rng.normal(0.3, 1.0, 200)
        ci = bootstrap_stat(x, np.mean, n=300, seed=i)
        hits += ci["low"] <= 0.3 <= ci["high"]
    assert 0.88 <= hits / 200 <= 0.99


def test_block_bootstrap_keeps_coverage_for_autocorrelated_series():
    # AR(1) with phi=0.7: an i.i.d. bootstrap understates the variance of the mean; blocks of 20 restore coverage.
    rng = np.random.default_rng(2)
    hits_iid = hits_block = 0
    for i in range(150):
        e = rng.normal(size=400)
        x = np.empty(400)
        x[0] = e[0]
        for t in range(1, 400):
            x[t] = 0.7 * x[t - 1] + e[t]
        hits_iid += (c := bootstrap_stat(x, np.mean, n=200, seed=i))["low"] <= 0 <= c["high"]
        hits_block += (c := bootstrap_stat(x, np.mean, n=200, block=20, seed=i))["low"] <= 0 <= c["high"]
    assert hits_iid / 150 < 0.8
    assert hits_block / 150 > 0.85


def test_classification_bootstrap_ci_coverage():
    from effnet_trading.model_zoo.metrics import bootstrap_ci

    rng = np.random.default_rng(4)
    hits = 0
    for i in range(150):
        y = rng.integers(0, 3, 300)
        pred = np.where(rng.random(300) < 0.4, y, rng.integers(0, 3, 300))  # true accuracy 0.4 + 0.6/3 = 0.6
        ci = bootstrap_ci(y, pred, "accuracy", n=300, seed=i)
        hits += ci["low"] <= 0.6 <= ci["high"]
    assert 0.88 <= hits / 150 <= 0.99


def test_sharpe_ci_contains_estimate_and_rejects_too_short_input():
    r = np.random.default_rng(5).normal(0.0, 0.01, 1000)
    ci = sharpe_ci(r, 8766, n=200)
    assert ci["low"] < ci["estimate"] < ci["high"]
    with pytest.raises(DataError, match="at least 2 observations"):
        sharpe_ci(np.array([0.1]), 8766)
