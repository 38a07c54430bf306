"""Baselines an image model must beat, scored under the same folds and execution (numpy; sklearn/lightgbm lazily).

* ``ma_crossover_target``: +1 when the fast moving average of closes is above the slow one, -1
  (or 0 long-only) below; decided at the close of bar t from closes <= t.
* ``lagged_features`` + ``fit_logistic``: multinomial logistic regression on lagged 1-bar
  log returns and log volume changes, predicting the same 3-class label as the image models.
* ``fit_gbm``: LightGBM on any feature matrix (e.g. frozen CNN features).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from effnet_trading.errors import DataError, require

__all__ = ["ma_crossover_target", "lagged_features", "fit_logistic", "fit_gbm"]


def _sma(x: np.ndarray, n: int) -> np.ndarray:
    """Causal simple moving average; NaN for the first ``n-1`` bars."""
    c = np.concatenate([[0.0], np.cumsum(x)])
    out = np.full(len(x), np.nan)
    if len(x) >= n:
        out[n - 1 :] = (c[n:] - c[:-n]) / n
    return out


def ma_crossover_target(close: np.ndarray, fast: int = 24, slow: int = 96, *, long_only: bool = False) -> np.ndarray:
    """``(T,)`` target in {-1, 0, 1}: sign(SMA_fast - SMA_slow) of closes up to t; 0 in the warm-up."""
    if not 1 <= fast < slow:
        raise DataError(f"moving-average crossover needs 1 <= fast < slow bars, got fast={fast}, slow={slow}.")
    close = np.asarray(close, np.float64)
    diff = _sma(close, fast) - _sma(close, slow)
    target = np.nan_to_num(np.sign(diff))
    return np.maximum(target, 0.0) if long_only else target


def lagged_features(ohlcv: pd.DataFrame, lags: int = 12, volume_lags: int = 4) -> np.ndarray:
    """``(T, lags + volume_lags + 2)`` float64 features at bar t from bars <= t (NaN in the warm-up):
    1-bar log returns r[t-j] (j < lags), log volume changes (j < volume_lags), the return over
    ``lags`` bars and the rolling std of 1-bar returns over ``lags`` bars."""
    close = ohlcv["close"].to_numpy(np.float64)
    vol = np.log1p(ohlcv["volume"].to_numpy(np.float64))
    r = np.concatenate([[np.nan], np.diff(np.log(close))])
    dv = np.concatenate([[np.nan], np.diff(vol)])

    def lag(x: np.ndarray, j: int) -> np.ndarray:
        return np.concatenate([np.full(j, np.nan), x[: len(x) - j]]) if j else x

    cols = [lag(r, j) for j in range(lags)] + [lag(dv, j) for j in range(volume_lags)]
    long_ret = np.full(len(close), np.nan)
    long_ret[lags:] = np.log(close[lags:] / close[:-lags])
    roll = pd.Series(r).rolling(lags).std().to_numpy()
    return np.column_stack(cols + [long_ret, roll])


def fit_logistic(x: np.ndarray, y: np.ndarray, *, c: float = 1.0, seed: int = 0):
    """Standardised multinomial logistic regression (balanced class weights); returns a fitted
    sklearn pipeline with ``predict_proba``. Rows with NaN features must be dropped first."""
    require("sklearn", "train")
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    _check_xy(x, y)
    model = make_pipeline(
        StandardScaler(), LogisticRegression(C=c, class_weight="balanced", max_iter=2000, random_state=seed)
    )
    return model.fit(x, y)


def fit_gbm(
    x: np.ndarray,
    y: np.ndarray,
    *,
    n_estimators: int = 200,
    learning_rate: float = 0.05,
    seed: int = 0,
    n_jobs: int = 1,
):
    """LightGBM multiclass classifier (balanced class weights, shallow trees) with ``predict_proba``."""
    from effnet_trading.model_zoo.features import make_gbm_classifier  # torch-using module: import lazily

    _check_xy(x, y)
    model = make_gbm_classifier(
        "lightgbm", seed, n_estimators=n_estimators, learning_rate=learning_rate, min_child_samples=50, n_jobs=n_jobs
    )
    return model.fit(x, y)


def _check_xy(x: np.ndarray, y: np.ndarray) -> None:
    if len(x) != len(y) or len(x) == 0:
        raise DataError(
            f"features and labels must be non-empty and equally long; got {len(x)} rows and {len(y)} labels."
        )
    if not np.isfinite(x).all():
        raise DataError(
            "features contain NaN/inf (warm-up rows?); drop rows with np.isfinite(x).all(1) == False first."
        )
    if len(np.unique(y)) < 2:
        raise DataError(f"labels hold a single class {np.unique(y).tolist()}; a classifier needs at least two.")
