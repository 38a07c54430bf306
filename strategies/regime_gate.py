"""RegimeGate: a ``Policy`` whose target is scaled by the market regime at each bar.

``RegimeGate(policy, regimes, weights={"trend_up": 1, "trend_down": 1})`` trades the wrapped
policy's target times the weight of the bar's regime (0 = flat, 0.5 = half size, 1 = full);
regimes not named get ``default`` (0). ``regimes`` is a DataFrame of regime probabilities on a
UTC index (``RegimeModel.predict_proba``, a ``regimes.csv`` from ``regimes scan``), computed
causally: the weight at bar t reads only row t. ``mode="argmax"`` uses the most likely regime's
weight; ``mode="expected"`` the probability-weighted mean of the weights. A bar without a regime
row (or with NaN) gets ``default``. It has the members adapters use (``positions``, ``step``,
``reset``, ``replace``, ``to_dict``, ``class_names``), so it goes wherever a ``Policy`` goes.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from effnet_trading.errors import DataError, SpecError
from effnet_trading.strategies.policy import Policy

__all__ = ["RegimeGate", "regime_weights", "TREND_ONLY", "NOT_REGIMES"]

TREND_ONLY = {"trend_up": 1.0, "trend_down": 1.0}  # trend-following: trade only in trends, flat otherwise
NOT_REGIMES = ("regime", "p_switch")  # columns of regimes.csv that are not regime probabilities


def regime_weights(regimes: pd.DataFrame, weights: Mapping[str, float], *, mode: str = "argmax", default=0.0):
    """``(T,)`` weight per row of ``regimes`` (NaN rows -> ``default``)."""
    p = regimes.to_numpy(np.float64)
    w = np.array([float(weights.get(c, default)) for c in regimes.columns])
    missing = np.isnan(p).any(axis=1)
    if mode == "argmax":
        out = w[np.nan_to_num(p).argmax(axis=1)]
    else:
        out = np.nan_to_num(p) @ w / np.maximum(np.nan_to_num(p).sum(axis=1), 1e-12)
    return np.where(missing, float(default), out)


class RegimeGate:
    """Wraps a ``Policy``: target x weight of the bar's regime (see module docstring)."""

    def __init__(
        self,
        policy: Policy,
        regimes: pd.DataFrame,
        weights: Mapping[str, float] = TREND_ONLY,
        *,
        mode: str = "argmax",
        default: float = 0.0,
    ):
        if not isinstance(regimes, pd.DataFrame) or not isinstance(regimes.index, pd.DatetimeIndex):
            raise DataError(
                "RegimeGate needs regimes as a DataFrame of regime probabilities on a DatetimeIndex "
                "(RegimeModel(...).predict_proba(ohlcv), or regimes.csv read with index_col='timestamp')."
            )
        # a regimes.csv from `regimes scan` also holds the argmax label and the switch probability
        regimes = regimes.drop(columns=[c for c in NOT_REGIMES if c in regimes.columns])
        try:
            regimes = regimes.astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise DataError(
                f"RegimeGate needs one probability column per regime; columns {list(regimes.columns)} are not all "
                f"numeric ({exc}). Pass RegimeModel.predict_proba(...) or regimes.csv from `regimes scan`."
            ) from exc
        unknown = sorted(set(weights) - set(map(str, regimes.columns)))
        if unknown:
            raise SpecError(f"RegimeGate weights name regime(s) {unknown} not in the regimes {list(regimes.columns)}.")
        bad = {k: v for k, v in weights.items() if not 0.0 <= float(v) <= 1.0}
        if bad or not 0.0 <= float(default) <= 1.0:
            raise SpecError(
                f"RegimeGate weights {bad or {'default': default}} must lie in [0, 1] (0 = flat, 1 = full)."
            )
        if mode not in ("argmax", "expected"):
            raise SpecError(f"RegimeGate mode={mode!r} must be 'argmax' or 'expected'.")
        index = regimes.index.tz_localize("UTC") if regimes.index.tz is None else regimes.index.tz_convert("UTC")
        self.policy, self.mode, self.default = policy, mode, float(default)
        self.weights = {str(k): float(v) for k, v in weights.items()}
        self.regimes = regimes.set_axis(index)
        self._w = pd.Series(regime_weights(self.regimes, self.weights, mode=mode, default=default), index=index)

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.policy.class_names

    @property
    def long_only(self) -> bool:
        return self.policy.long_only

    def weight_at(self, index) -> np.ndarray:
        """Weights for timestamps ``index`` (``default`` where no regime row exists)."""
        idx = pd.DatetimeIndex(index)
        idx = idx.tz_localize("UTC") if idx.tz is None else idx.tz_convert("UTC")
        return self._w.reindex(idx).fillna(self.default).to_numpy()

    def positions(self, probs: pd.DataFrame) -> pd.Series:
        """The wrapped policy's targets times the regime weight of each bar."""
        base = self.policy.positions(probs)
        idx = pd.DatetimeIndex(probs.index)
        covered = (
            idx.tz_localize("UTC").isin(self._w.index) if idx.tz is None else idx.tz_convert("UTC").isin(self._w.index)
        )
        if len(idx) and covered.mean() < 0.5:
            warnings.warn(
                f"RegimeGate: only {covered.mean():.0%} of the bars have a regime row at the same timestamp; the "
                f"others get default={self.default}. Score the regimes on the same bars (regimes scan on this data).",
                stacklevel=2,
            )
        return (base * self.weight_at(probs.index)).rename("target")

    def step(self, probs_row) -> float:
        """One bar: the policy's step times the weight of the row's timestamp (``probs_row.name``)."""
        target = self.policy.step(probs_row)
        ts = getattr(probs_row, "name", None)
        w = self.default if ts is None else float(self.weight_at([pd.Timestamp(ts)])[0])
        return target * w

    def reset(self) -> None:
        self.policy.reset()

    def replace(self, **changes: Any) -> RegimeGate:
        """A new gate around ``policy.replace(**changes)`` with the same regimes and weights."""
        return RegimeGate(
            self.policy.replace(**changes), self.regimes, self.weights, mode=self.mode, default=self.default
        )

    def to_dict(self) -> dict[str, Any]:
        return self.policy.to_dict() | {
            "regime_gate": {"weights": dict(self.weights), "mode": self.mode, "default": self.default}
        }

    def __repr__(self) -> str:
        return f"RegimeGate({self.policy!r}, weights={self.weights}, mode={self.mode!r})"
