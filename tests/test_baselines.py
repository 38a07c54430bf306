"""Baselines against slow per-bar references; causality; the logistic baseline learns a planted rule."""

import numpy as np
import pytest

from effnet_trading.errors import DataError
from effnet_trading.evaluation.baselines import fit_gbm, fit_logistic, lagged_features, ma_crossover_target


def test_ma_crossover_matches_per_bar_loop(random_walk):
    close = random_walk["close"].to_numpy()[:2000]
    got = ma_crossover_target(close, 5, 20)
    ref = np.zeros(len(close))
    for t in range(19, len(close)):
        ref[t] = np.sign(close[t - 4 : t + 1].mean() - close[t - 19 : t + 1].mean())
    np.testing.assert_allclose(got, ref)
    assert set(np.unique(ma_crossover_target(close, 5, 20, long_only=True))) <= {0.0, 1.0}
    with pytest.raises(DataError, match="fast < slow"):
        ma_crossover_target(close, 20, 5)


def test_lagged_features_match_loop_and_are_causal(random_walk):
    df = random_walk.iloc[:400]
    x = lagged_features(df, lags=4, volume_lags=2)
    c, v = df["close"].to_numpy(), np.log1p(df["volume"].to_numpy())
    t = 100
    ref = [np.log(c[t - j] / c[t - j - 1]) for j in range(4)] + [v[t - j] - v[t - j - 1] for j in range(2)]
    ref += [np.log(c[t] / c[t - 4]), np.std([np.log(c[t - j] / c[t - j - 1]) for j in range(4)], ddof=1)]
    np.testing.assert_allclose(x[t], ref, rtol=1e-10)
    future = df.copy()
    future.iloc[t + 1 :, :4] *= 1.5  # change every later bar
    np.testing.assert_allclose(lagged_features(future, lags=4, volume_lags=2)[: t + 1], x[: t + 1])
    assert np.isnan(x[:4]).any(axis=1).all()


def test_logistic_and_gbm_learn_a_planted_rule():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1500, 5))
    y = np.where(x[:, 0] > 0.5, 2, np.where(x[:, 0] < -0.5, 0, 1))
    for fit in (fit_logistic, fit_gbm):
        model = fit(x[:1000], y[:1000])
        acc = (model.predict_proba(x[1000:]).argmax(1) == y[1000:]).mean()
        assert acc > 0.8, (fit.__name__, acc)


def test_classifier_input_errors():
    x = np.ones((10, 2))
    with pytest.raises(DataError, match="NaN/inf"):
        fit_logistic(np.full((10, 2), np.nan), np.arange(10) % 3)
    with pytest.raises(DataError, match="single class"):
        fit_logistic(x, np.zeros(10, int))
    with pytest.raises(DataError, match="equally long"):
        fit_gbm(x, np.zeros(3, int))
