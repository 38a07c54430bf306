"""Statistics for honest strategy evaluation (numpy + stdlib only): block-bootstrap intervals of
any statistic of a return series, Sharpe intervals, and the deflated Sharpe ratio.

Deflated Sharpe ratio (Bailey & López de Prado, "The Deflated Sharpe Ratio", 2014), with
per-bar (not annualised) Sharpe ``SR``, ``T`` returns, skewness ``g3`` and (non-excess)
kurtosis ``g4``::

    PSR(SR*) = Phi((SR - SR*) * sqrt(T - 1) / sqrt(1 - g3 * SR + (g4 - 1) / 4 * SR**2))
    SR0      = sqrt(V) * ((1 - gamma) * Phi^-1(1 - 1/N) + gamma * Phi^-1(1 - 1/(N e)))
    DSR      = PSR(SR0)

where ``N`` is the number of strategy variants tried, ``V`` the variance of their (per-bar)
Sharpe ratios and ``gamma`` the Euler-Mascheroni constant. DSR is the probability that the
true Sharpe ratio is above zero after allowing for the best-of-N selection.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from statistics import NormalDist

import numpy as np

from effnet_trading.errors import DataError
from effnet_trading.model_zoo.metrics import block_indices
from effnet_trading.strategies.performance import sharpe_ratio

__all__ = [
    "bootstrap_stat",
    "sharpe_ratio",
    "sharpe_ci",
    "expected_max_sharpe",
    "probabilistic_sharpe",
    "deflated_sharpe",
    "deflated_sharpe_from_moments",
]

EULER_GAMMA = 0.5772156649015329
_N = NormalDist()


def bootstrap_stat(
    x: np.ndarray,
    stat: Callable[[np.ndarray], float],
    *,
    n: int = 1000,
    block: int | None = None,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, float]:
    """Percentile (block-)bootstrap interval of ``stat(x)`` over the first axis of ``x``: {estimate, low, high, std}."""
    x = np.asarray(x)
    m = len(x)
    if m < 2:
        raise DataError(f"bootstrap needs at least 2 observations, got {m}; evaluate on a longer span.")
    rng = np.random.default_rng(seed)
    vals = np.array([stat(x[block_indices(m, block or 1, rng)]) for _ in range(int(n))], dtype=np.float64)
    vals = vals[np.isfinite(vals)]
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(vals, [alpha, 1.0 - alpha]) if len(vals) else (float("nan"), float("nan"))
    return {
        "estimate": float(stat(x)),
        "low": float(lo),
        "high": float(hi),
        "std": float(vals.std(ddof=1)) if len(vals) > 1 else float("nan"),
        "n": int(n),
        "block": int(block or 1),
    }


def sharpe_ci(
    returns: np.ndarray,
    bars_per_year: float,
    *,
    n: int = 1000,
    block: int = 24,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, float]:
    """Block-bootstrap interval of the annualised Sharpe ratio (blocks keep volatility clustering)."""
    return bootstrap_stat(
        np.asarray(returns, np.float64),
        lambda r: sharpe_ratio(r, bars_per_year),
        n=n,
        block=block,
        seed=seed,
        level=level,
    )


def expected_max_sharpe(n_trials: int, sr_var: float) -> float:
    """SR0: the expected maximum of ``n_trials`` per-bar Sharpe estimates with true Sharpe 0 and variance ``sr_var``."""
    n = int(n_trials)
    if n <= 1 or sr_var <= 0:
        return 0.0
    return math.sqrt(sr_var) * (
        (1 - EULER_GAMMA) * _N.inv_cdf(1 - 1 / n) + EULER_GAMMA * _N.inv_cdf(1 - 1 / (n * math.e))
    )


def probabilistic_sharpe(sr: float, t: int, skew: float, kurt: float, sr_benchmark: float = 0.0) -> float:
    """P(true per-bar Sharpe > ``sr_benchmark``) given the estimate ``sr`` from ``t`` returns (kurt non-excess)."""
    var = 1.0 - skew * sr + (kurt - 1.0) / 4.0 * sr * sr
    if t < 2 or not np.isfinite(sr) or var <= 0:
        return float("nan")
    return _N.cdf((sr - sr_benchmark) * math.sqrt(t - 1) / math.sqrt(var))


def deflated_sharpe_from_moments(
    sr: float, t: int, skew: float, kurt: float, n_trials: int, sr_var: float
) -> dict[str, float]:
    """DSR from per-bar Sharpe ``sr`` over ``t`` returns, skew, non-excess kurtosis, trials and their Sharpe variance."""
    sr0 = expected_max_sharpe(n_trials, sr_var)
    return {
        "dsr": probabilistic_sharpe(sr, t, skew, kurt, sr0),
        "psr": probabilistic_sharpe(sr, t, skew, kurt, 0.0),
        "sr": float(sr),
        "sr0": float(sr0),
        "skew": float(skew),
        "kurtosis": float(kurt),
        "t": int(t),
        "n_trials": int(n_trials),
        "sr_var": float(sr_var),
    }


def deflated_sharpe(returns: np.ndarray, n_trials: int, sr_var: float) -> dict[str, float]:
    """DSR of a per-bar return series, given the number of variants tried and the variance of their per-bar Sharpes."""
    r = np.asarray(returns, dtype=np.float64)
    t = len(r)
    sd = r.std() if t else 0.0
    if t < 3 or sd == 0:
        nan = float("nan")
        return {
            "dsr": nan,
            "psr": nan,
            "sr": nan,
            "sr0": expected_max_sharpe(n_trials, sr_var),
            "skew": nan,
            "kurtosis": nan,
            "t": int(t),
            "n_trials": int(n_trials),
            "sr_var": float(sr_var),
        }
    z = (r - r.mean()) / sd
    skew, kurt = float(np.mean(z**3)), float(np.mean(z**4))
    return deflated_sharpe_from_moments(sharpe_ratio(r), t, skew, kurt, n_trials, sr_var)
