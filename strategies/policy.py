"""Policy: class probabilities -> target position in [-1, 1] (fraction of equity; + long, - short).

Rules, applied at the close of each bar to that bar's probabilities ``p`` (K classes):

1. NaN row (warm-up, or no score): target 0 (flat), and the policy's state becomes flat.
2. The winner is ``argmax p`` (first on ties) with confidence ``c = max p``.
   If ``c < threshold``: keep the current position unchanged.
3. The winner's direction: buy -> +1, sell -> -1 (``long_only``: sell -> 0, i.e. close longs),
   hold -> keep the current position (``on_hold="keep"``) or 0 (``on_hold="flat"``).
4. Hysteresis: a target that **opens** a position from flat or **flips** its sign needs
   ``c >= threshold + hysteresis``; closing to flat or staying on the same side needs only
   ``threshold``. Otherwise the current position is kept.
5. Size: ``sizing="fixed"`` -> 1; ``sizing="prob"`` -> ``(c - 1/K) / (1 - 1/K)`` clipped to
   [0, 1] (0 at an uninformative 1/K, 1 at certainty), re-evaluated on each confident bar
   on the same side.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from effnet_trading.errors import SpecError

__all__ = ["Policy", "class_directions"]

_DIRECTIONS = {
    "sell": -1,
    "down": -1,
    "short": -1,
    "bear": -1,
    "hold": 0,
    "flat": 0,
    "neutral": 0,
    "none": 0,
    "buy": 1,
    "up": 1,
    "long": 1,
    "bull": 1,
}


def class_directions(class_names: Sequence[str]) -> np.ndarray:
    """``(K,)`` int direction per class name: sell/down/short -1, hold/flat 0, buy/up/long +1."""
    out = []
    for name in class_names:
        key = str(name).strip().lower()
        if key not in _DIRECTIONS:
            raise SpecError(
                f"class name {name!r} has no trading direction; use sell/hold/buy (or down/flat/up, short/long). "
                f"Known names: {sorted(_DIRECTIONS)}."
            )
        out.append(_DIRECTIONS[key])
    return np.asarray(out, dtype=np.int64)


class Policy:
    """Probabilities -> target position (see the module docstring for the exact rules)."""

    _FIELDS = ("threshold", "hysteresis", "long_only", "sizing", "on_hold", "class_names")

    def __init__(
        self,
        threshold: float = 0.5,
        hysteresis: float = 0.0,
        long_only: bool = False,
        sizing: str = "fixed",
        on_hold: str = "keep",
        class_names: Sequence[str] = ("sell", "hold", "buy"),
    ):
        if not 0.0 <= float(threshold) <= 1.0:
            raise SpecError(f"Policy threshold={threshold} must be a probability in [0, 1] (e.g. 0.5).")
        if float(hysteresis) < 0.0:
            raise SpecError(f"Policy hysteresis={hysteresis} must be >= 0 (extra confidence needed to open or flip).")
        if sizing not in ("fixed", "prob"):
            raise SpecError(f"Policy sizing={sizing!r} must be 'fixed' or 'prob'.")
        if on_hold not in ("keep", "flat"):
            raise SpecError(f"Policy on_hold={on_hold!r} must be 'keep' (hold keeps the position) or 'flat'.")
        self.threshold = float(threshold)
        self.hysteresis = float(hysteresis)
        self.long_only = bool(long_only)
        self.sizing = sizing
        self.on_hold = on_hold
        self.class_names = tuple(str(c) for c in class_names)
        if len(self.class_names) < 2:
            raise SpecError(f"Policy needs at least 2 class names, got {list(self.class_names)}.")
        self._dirs = class_directions(self.class_names)
        self._current = 0.0
        self._row_index: tuple[Any, list[int]] | None = None  # (last row's Index, positions of class_names in it)

    # -- shared per-class tables --------------------------------------------------------
    def _targets_by_class(self) -> np.ndarray:
        """``(K,)`` float: the winner's direction (NaN = keep), after long_only / on_hold."""
        d = self._dirs.astype(np.float64)
        if self.long_only:
            d = np.maximum(d, 0.0)  # sell closes longs
        d[self._dirs == 0] = np.nan if self.on_hold == "keep" else 0.0
        return d

    def _size(self, conf: np.ndarray | float):
        if self.sizing == "fixed":
            return np.ones_like(conf) if isinstance(conf, np.ndarray) else 1.0
        k = len(self.class_names)
        return np.clip((conf - 1.0 / k) / (1.0 - 1.0 / k), 0.0, 1.0)

    # -- whole history ------------------------------------------------------------------
    def _matrix(self, probs: pd.DataFrame) -> np.ndarray:
        missing = [c for c in self.class_names if c not in probs.columns]
        if missing:
            raise SpecError(
                f"probabilities lack column(s) {missing} of Policy.class_names {list(self.class_names)}; "
                f"got columns {list(probs.columns)}. Pass Policy(class_names=model.class_names)."
            )
        return probs.loc[:, list(self.class_names)].to_numpy(dtype=np.float64)

    def positions(self, probs: pd.DataFrame) -> pd.Series:
        """Target position per bar for a whole probability frame (NaN rows -> 0). Starts flat."""
        p = self._matrix(probs)
        nan_row = np.isnan(p).any(axis=1)
        safe = np.where(nan_row[:, None], 0.0, p)
        win = safe.argmax(axis=1)
        conf = safe[np.arange(len(p)), win]
        want = self._targets_by_class()[win] * self._size(conf)  # NaN = keep
        confident = conf >= self.threshold
        strong = conf >= self.threshold + self.hysteresis
        # Only rows that can change the position need the sequential rule; the others keep it.
        active = np.flatnonzero(nan_row | (confident & ~np.isnan(want)))
        decided = np.empty(len(active))
        cur = 0.0
        for j, i in enumerate(active):
            new = 0.0 if nan_row[i] else want[i]
            if new != 0.0 and np.sign(new) != np.sign(cur) and not strong[i]:
                new = cur  # opening or flipping needs threshold + hysteresis
            decided[j] = cur = new
        out = np.full(len(p), np.nan)
        out[active] = decided
        filled = pd.Series(out).ffill().fillna(0.0).to_numpy()
        return pd.Series(filled, index=probs.index, name="target")

    # -- one bar at a time --------------------------------------------------------------
    def step(self, probs_row) -> float:
        """Target position after one bar's probabilities (Series/Mapping by class name, or a
        sequence in ``class_names`` order); updates the policy's state."""
        if isinstance(probs_row, pd.Series) and self._row_index is not None and probs_row.index is self._row_index[0]:
            # live scorers reuse one Index for every row: look the class positions up once (a label lookup
            # per class on a string Index costs more than the rest of the step)
            values = probs_row.to_numpy()
            p = [float(values[j]) for j in self._row_index[1]]
        elif isinstance(probs_row, (pd.Series, Mapping)):
            try:
                p = [float(probs_row[c]) for c in self.class_names]
                if isinstance(probs_row, pd.Series) and probs_row.index.is_unique:
                    self._row_index = (probs_row.index, [probs_row.index.get_loc(c) for c in self.class_names])
            except KeyError as exc:
                raise SpecError(
                    f"probabilities row lacks class {exc.args[0]!r}; Policy.class_names are {list(self.class_names)}."
                ) from None
        elif probs_row is None:
            p = [float("nan")] * len(self.class_names)
        else:
            p = [float(x) for x in probs_row]
            if len(p) != len(self.class_names):
                raise SpecError(
                    f"probabilities row has {len(p)} values; expected {len(self.class_names)} ({list(self.class_names)})."
                )
        if any(x != x for x in p):
            self._current = 0.0
            return 0.0
        win = max(range(len(p)), key=lambda j: (p[j], -j))
        conf = p[win]
        if conf < self.threshold:
            return self._current
        direction = int(self._dirs[win])
        if direction == 0:
            if self.on_hold == "keep":
                return self._current
            new = 0.0
        elif direction < 0 and self.long_only:
            new = 0.0
        else:
            new = direction * float(self._size(conf))
        flips_or_opens = new != 0.0 and (self._current == 0.0 or (new > 0) != (self._current > 0))
        if flips_or_opens and conf < self.threshold + self.hysteresis:
            return self._current
        self._current = new
        return new

    def reset(self) -> None:
        """Back to flat (start of a new run)."""
        self._current = 0.0

    # -- configuration ------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in self._FIELDS}
        d["class_names"] = list(self.class_names)
        return d

    def replace(self, **changes: Any) -> Policy:
        """A new, flat Policy with ``changes`` applied (adapters bind a scorer's class names this way)."""
        return type(self).from_dict(self.to_dict() | changes)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Policy:
        unknown = set(d) - set(cls._FIELDS)
        if unknown:
            raise SpecError(f"unknown Policy option(s) {sorted(unknown)}; known: {list(cls._FIELDS)}.")
        return cls(**d)

    @classmethod
    def from_json(cls, text: str) -> Policy:
        return cls.from_dict(json.loads(text))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={getattr(self, k)!r}" for k in self._FIELDS)
        return f"Policy({args})"
