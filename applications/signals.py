"""Detections -> trading scores: ``DetectionScorer`` wraps a pattern model (chart patterns or
candlesticks) as a ``strategies.Scorer`` with classes ``("sell", "hold", "buy")``, so a detection
drives a ``Policy`` in backtrader, vectorbt and live like the buy/hold/sell models (e.g. "long after a
detected inverse head-and-shoulders with probability > p": ``long=["inverse_head_and_shoulders"]``
and ``Policy(threshold=p, long_only=True)``).

buy = the probability of any ``long`` class, sell = of any ``short`` class, hold = the rest. For a
softmax model (classes exclude each other) "any" is the sum; for a multi-label model (one sigmoid per
pattern) it is the largest of them (a lower bound of P(any)), and both are scaled down together if
they add up to more than 1, so each row is a distribution.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from effnet_trading.errors import SpecError
from effnet_trading.strategies.scorer import as_scorer

__all__ = ["DetectionScorer"]

CLASSES = ("sell", "hold", "buy")


def _output_of(scorer) -> str:
    """'sigmoid' for a multi-label model folder, else 'softmax' (read from the card when there is one)."""
    card = getattr(getattr(scorer, "model", None), "card", None)
    return str(getattr(card, "normalization", {}).get("output", "softmax"))


class DetectionScorer:
    """A ``Scorer`` whose sell/hold/buy come from the probabilities of chosen pattern classes."""

    class_names = CLASSES

    def __init__(self, model: Any, *, long: Sequence[str] = (), short: Sequence[str] = (), combine: str | None = None):
        self.inner = as_scorer(model, what="DetectionScorer")
        self.long, self.short = tuple(long), tuple(short)
        if not self.long and not self.short:
            raise SpecError("DetectionScorer needs long=[...] and/or short=[...] pattern names to trade on.")
        unknown = sorted(set(self.long + self.short) - set(self.inner.class_names))
        if unknown:
            raise SpecError(
                f"pattern(s) {unknown} are not classes of the model; its classes are {list(self.inner.class_names)}."
            )
        self.combine = combine or ("max" if _output_of(self.inner) == "sigmoid" else "sum")
        if self.combine not in ("sum", "max"):
            raise SpecError(f"combine={combine!r} must be 'sum' (exclusive classes) or 'max' (multi-label).")

    @property
    def warmup(self) -> int:
        return self.inner.warmup

    def _map(self, p: pd.DataFrame) -> pd.DataFrame:
        agg = (lambda cols: p[list(cols)].sum(1)) if self.combine == "sum" else (lambda cols: p[list(cols)].max(1))
        zero = pd.Series(0.0, index=p.index).where(p.notna().all(1))
        buy = agg(self.long).where(p.notna().all(1)) if self.long else zero
        sell = agg(self.short).where(p.notna().all(1)) if self.short else zero
        scale = np.maximum(1.0, buy + sell)  # sigmoid outputs may add up to more than 1
        buy, sell = buy / scale, sell / scale
        return pd.DataFrame({"sell": sell, "hold": 1.0 - buy - sell, "buy": buy}, index=p.index)

    def predict_proba(self, ohlcv: pd.DataFrame) -> pd.DataFrame:
        """sell/hold/buy per bar (NaN in warm-up)."""
        return self._map(self.inner.predict_proba(ohlcv))

    def update(self, bar: Any) -> pd.Series | None:
        row = self.inner.update(bar)
        return None if row is None else self._map(row.to_frame().T).iloc[0].rename(row.name)

    def reset(self) -> None:
        self.inner.reset()

    def __repr__(self) -> str:
        return f"DetectionScorer({self.inner!r}, long={list(self.long)}, short={list(self.short)}, {self.combine})"
