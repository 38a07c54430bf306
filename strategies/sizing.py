"""Sizers: how much of the equity a ``Policy`` decision puts at risk, from the class probabilities.

A sizer multiplies the policy's target (its direction, in [-1, 1]) by a size in [0, 1]. The size is
taken at the bar where the target **changes** (an entry, a flip, a resize) and held until the next
change, so a sizer never rebalances a held position bar by bar (no churn; the execution contract
sends an order only on a change). The same object sizes a whole history (``sizes``: vectorbt size
arrays, ``simulate``, backtrader's ``once()``) and one closed bar at a time (``step``: backtrader's
``next()``, live), with the same numbers.

- ``FixedFraction(fraction, threshold)``: ``fraction`` when the winning probability >= threshold, else 0.
- ``ProbabilityWeighted(max_fraction)``: ``max_fraction * (c - 1/K) / (1 - 1/K)`` for winning probability c.
- ``CappedKelly(cap, window)``: Kelly fraction ``p - (1 - p) / b``, clipped to [0, cap]; p is the
  probability of the class in the trade's direction (buy for a long, sell for a short), b the payoff
  ratio of the last ``window`` close-to-close returns taken in that direction (mean gain / mean loss).
  Kelly needs calibrated probabilities: it refuses a model whose card has no ``calibration`` entry
  unless ``allow_uncalibrated=True``.
- ``VolTarget(vol_target, window)``: ``vol_target / realised volatility`` clipped to 1, computed by
  ``Risk`` (one implementation of volatility targeting).
"""

from __future__ import annotations

import json
import math
import warnings
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from effnet_trading.errors import SpecError
from effnet_trading.strategies.execution import align_target
from effnet_trading.strategies.policy import class_directions
from effnet_trading.strategies.risk import Risk
from effnet_trading.strategies.signal import canonical_ohlcv, parse_bar

__all__ = ["Sizer", "FixedFraction", "ProbabilityWeighted", "CappedKelly", "VolTarget", "calibration_of"]


def calibration_of(scorer: Any) -> dict | None:
    """The ``calibration`` entry of the model card(s) behind ``scorer``, or the one a score file recorded
    (``PrecomputedScores.calibration``); None when any member has none."""
    members = list(getattr(scorer, "members", {}).values()) or [scorer]
    found = None
    for m in members:
        inner = getattr(m, "model", m)
        card = getattr(inner, "card", None)
        cal = getattr(card, "calibration", None)
        if cal is None and getattr(inner, "model_dir", None) is not None:
            try:
                cal = json.loads((Path(inner.model_dir) / "card.json").read_text()).get("calibration")
            except (OSError, ValueError):
                cal = None
        if cal is None and card is None:
            cal = getattr(m, "calibration", None)  # precomputed scores: what their score file records
        if not cal:
            return None
        found = cal
    return found


class Sizer:
    """Base: subclasses give the size in [0, 1] per bar (``_raw_history``) and for one bar (``_raw_step``)."""

    # live state, set by reset()
    _last_target: float
    _size: float

    def __init__(self):
        self.reset()

    # -- per subclass ---------------------------------------------------------------------
    def _raw_history(self, frame: pd.DataFrame, p: np.ndarray, target: np.ndarray, names, rows) -> np.ndarray:
        """Sizes at bar positions ``rows`` (where the target changes), ``(len(rows),)``."""
        raise NotImplementedError

    def _raw_step(self, row: np.ndarray, p: np.ndarray, target: float, names) -> float:
        raise NotImplementedError

    def _observe(self, ts, row: np.ndarray) -> None:
        """Live state update with one closed bar (before sizing it)."""

    def check(self, scorer: Any) -> None:
        """Raise when this sizer cannot be used with ``scorer`` (Kelly: uncalibrated probabilities)."""

    # -- shared -----------------------------------------------------------------------------
    def sizes(self, ohlcv, probs: pd.DataFrame, target) -> pd.Series:
        """Sized targets for a whole history: ``target * size``, the size taken where the target changes."""
        frame = canonical_ohlcv(ohlcv)
        t = align_target(frame, target)
        names = tuple(str(c) for c in probs.columns)
        p = probs.reindex(frame.index).to_numpy(dtype=np.float64)
        prev = np.concatenate([[0.0], t[:-1]])
        rows = np.flatnonzero((t != prev) & (t != 0.0))
        raw = np.full(len(t), np.nan)
        raw[t == 0.0] = 0.0
        raw[rows] = np.clip(np.nan_to_num(self._raw_history(frame, p, t, names, rows)), 0.0, 1.0)
        size = pd.Series(raw).ffill().fillna(0.0).to_numpy()
        return pd.Series(t * size, index=frame.index, name="target")

    def step(self, bar, probs_row, target: float) -> float:
        """The sized target for one new closed bar (probabilities: Series by class name, or None)."""
        ts, row = parse_bar(bar)
        self._observe(ts, row)
        t = 0.0 if target is None or target != target else float(target)
        if t != self._last_target:
            if t == 0.0 or probs_row is None:
                self._size = 0.0
            else:
                names = tuple(str(c) for c in probs_row.index)
                raw = self._raw_step(row, probs_row.to_numpy(dtype=np.float64), t, names)
                self._size = 0.0 if not math.isfinite(raw) else min(max(raw, 0.0), 1.0)
            self._last_target = t
        return t * self._size

    def reset(self) -> None:
        self._last_target = 0.0
        self._size = 0.0

    def to_dict(self) -> dict:
        return {"sizer": type(self).__name__, **{k: v for k, v in vars(self).items() if not k.startswith("_")}}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.to_dict().items() if k != "sizer")
        return f"{type(self).__name__}({args})"


def _confidence(p: np.ndarray) -> np.ndarray:
    return np.nanmax(np.where(np.isnan(p), -np.inf, p), axis=-1)


class FixedFraction(Sizer):
    """``fraction`` of the equity when the winning probability is >= ``threshold``, else nothing."""

    def __init__(self, fraction: float = 0.5, threshold: float = 0.0):
        if not 0.0 < fraction <= 1.0:
            raise SpecError(f"FixedFraction fraction={fraction} must be in (0, 1] (a fraction of equity).")
        self.fraction, self.threshold = float(fraction), float(threshold)
        super().__init__()

    def _raw_history(self, frame, p, target, names, rows):
        return np.where(_confidence(p[rows]) >= self.threshold, self.fraction, 0.0)

    def _raw_step(self, row, p, target, names):
        return self.fraction if float(_confidence(p)) >= self.threshold else 0.0


class ProbabilityWeighted(Sizer):
    """``max_fraction * (c - 1/K) / (1 - 1/K)``: nothing at an uninformative 1/K, ``max_fraction`` at certainty."""

    def __init__(self, max_fraction: float = 1.0):
        if not 0.0 < max_fraction <= 1.0:
            raise SpecError(f"ProbabilityWeighted max_fraction={max_fraction} must be in (0, 1].")
        self.max_fraction = float(max_fraction)
        super().__init__()

    def _raw(self, p):
        k = p.shape[-1]
        return self.max_fraction * (_confidence(p) - 1.0 / k) / (1.0 - 1.0 / k)

    def _raw_history(self, frame, p, target, names, rows):
        return self._raw(p[rows])

    def _raw_step(self, row, p, target, names):
        return float(self._raw(p))


class CappedKelly(Sizer):
    """Kelly fraction from the direction's class probability and the recent payoff ratio, capped."""

    _returns: deque[float]
    _last_close: float | None

    def __init__(self, cap: float = 0.25, window: int = 100, allow_uncalibrated: bool = False):
        if not 0.0 < cap <= 1.0:
            raise SpecError(f"CappedKelly cap={cap} must be in (0, 1] (e.g. 0.25 = a quarter of equity at most).")
        if int(window) < 2:
            raise SpecError(f"CappedKelly window={window} must be >= 2 returns.")
        self.cap, self.window, self.allow_uncalibrated = float(cap), int(window), bool(allow_uncalibrated)
        super().__init__()

    def check(self, scorer: Any) -> None:
        if not self.allow_uncalibrated and calibration_of(scorer) is None:
            raise SpecError(
                "CappedKelly needs calibrated probabilities but the model card (or the score file, which records "
                "its model's) has no 'calibration' entry: fit one (temperature scaling on the validation fold, "
                "`effnet-trading train --calibrate temperature`, then re-run `predict` for score files), or pass "
                "CappedKelly(allow_uncalibrated=True) to size from the raw probabilities knowingly."
            )

    def _kelly(self, p_dir: np.ndarray, gain: np.ndarray, loss: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            b = gain / loss
            f = p_dir - (1.0 - p_dir) / b
        return np.clip(np.where(np.isfinite(f), f, 0.0), 0.0, self.cap)

    @staticmethod
    def _gain_loss(r: np.ndarray, sign: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
        """Mean gain and mean loss (both >= 0) of returns ``r`` (``(..., W)``) taken in direction ``sign``."""
        x = r * np.asarray(sign)[..., None]
        pos, neg = np.where(x > 0, x, np.nan), np.where(x < 0, -x, np.nan)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a window without gains (or losses): NaN -> size 0
            return np.nanmean(pos, axis=-1), np.nanmean(neg, axis=-1)

    def _p_dir(self, p: np.ndarray, sign: np.ndarray, names) -> np.ndarray:
        dirs = class_directions(names)
        up, down = p[..., list(dirs).index(1)], p[..., list(dirs).index(-1)]
        return np.where(sign > 0, up, down)

    def _raw_history(self, frame, p, target, names, rows):
        r = np.diff(np.log(frame["close"].to_numpy()))
        w = self.window
        out = np.zeros(len(rows))
        ok = rows >= w  # a full window of returns up to the bar's close
        at = rows[ok]
        if len(at):
            wins = r[at[:, None] - w + np.arange(w)[None, :]]  # the w returns ending at each bar's close
            sign = np.sign(target[at])
            gain, loss = self._gain_loss(wins, sign)
            out[ok] = self._kelly(self._p_dir(p[at], sign, names), gain, loss)
        return out

    def _observe(self, ts, row) -> None:
        if self._last_close is not None:
            self._returns.append(math.log(row[3]) - math.log(self._last_close))
        self._last_close = row[3]

    def _raw_step(self, row, p, target, names):
        if len(self._returns) < self.window:
            return 0.0
        sign = 1.0 if target > 0 else -1.0
        gain, loss = self._gain_loss(np.fromiter(self._returns, float, self.window), sign)
        return float(self._kelly(self._p_dir(p, np.asarray(sign), names), gain, loss))

    def reset(self) -> None:
        super().reset()
        self._returns = deque(maxlen=getattr(self, "window", 2))
        self._last_close = None


class VolTarget(Sizer):
    """``vol_target / realised volatility`` (annualised, last ``window`` returns), at most 1: ``Risk``'s rule."""

    def __init__(self, vol_target: float = 0.5, window: int = 100, periods_per_year: float | None = None):
        self.vol_target, self.window, self.periods_per_year = vol_target, int(window), periods_per_year
        self._risk = Risk(vol_target=vol_target, vol_window=window, periods_per_year=periods_per_year)
        super().__init__()

    def _raw_history(self, frame, p, target, names, rows):
        return self._risk.apply(frame, np.ones(len(frame))).to_numpy()[rows]

    def _observe(self, ts, row) -> None:
        bar = {"timestamp": ts, **dict(zip(("open", "high", "low", "close", "volume"), row))}
        self._vol_size = self._risk.step(bar, 1.0)

    def _raw_step(self, row, p, target, names):
        return self._vol_size

    def reset(self) -> None:
        super().reset()
        if hasattr(self, "_risk"):
            self._risk.reset()
        self._vol_size = 0.0
