"""Walk-forward splits with purge and embargo (numpy only).

Labels look ``horizon`` bars ahead, so a training sample whose label window ``t .. t+horizon``
reaches into the test window would leak the test outcome. Every split here is chronological:
training (and validation) samples always precede the test window, with at least
``horizon + 1`` samples between the last training sample and the first test sample.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from effnet_trading.errors import TrainingError

__all__ = ["Split", "walk_forward_splits"]


@dataclass(frozen=True)
class Split:
    """Index arrays into the labelled samples of one walk-forward fold (each sorted ascending)."""

    train: np.ndarray
    valid: np.ndarray | None
    test: np.ndarray
    fold: int

    def describe(self) -> dict[str, list[int] | int]:
        """First/last sample index of each part (for logs and model cards)."""
        out: dict[str, list[int] | int] = {"fold": self.fold}
        for name in ("train", "valid", "test"):
            part = getattr(self, name)
            if part is not None and len(part):
                out[name] = [int(part[0]), int(part[-1])]
        return out


def _as_count(value: int | float | None, total: int, default: float) -> int:
    """An int is a count, a float in (0, 1) a fraction of ``total``."""
    value = default if value is None else value
    if isinstance(value, float) and 0 < value < 1:
        return int(total * value)
    return int(value)


def walk_forward_splits(
    n: int,
    folds: int = 1,
    *,
    horizon: int,
    embargo: int = 0,
    min_train: int | None = None,
    test_size: int | float | None = None,
    expanding: bool = True,
    valid: int | float | None = 0.15,
) -> list[Split]:
    """Chronological purged/embargoed splits of ``n`` samples into ``folds`` consecutive test windows.

    horizon: label look-ahead in samples; train samples ``i`` with ``i + horizon >= test_start``
    are purged. embargo: samples right after each earlier test window excluded from later
    training (test windows here are adjacent, so that zone lies in the next test window; the
    purge is what separates each fold's training from its test).
    min_train: minimum training samples per fold (default: half the data for several folds).
    test_size: samples per test window (int) or fraction of ``n`` (float); default 20 % for one
    fold, else the data after ``min_train`` divided evenly. expanding: train from sample 0
    (True) or use a rolling window of ``min_train`` samples (False). valid: the last part of
    each training span (int count or fraction) held out for early stopping, purged from train
    the same way; 0/None for none.
    """
    n, folds, horizon, embargo = int(n), int(folds), int(horizon), int(embargo)
    if folds < 1:
        raise TrainingError(f"folds must be >= 1, got {folds}.")
    if horizon < 0 or embargo < 0:
        raise TrainingError(f"horizon and embargo must be >= 0 samples, got horizon={horizon}, embargo={embargo}.")
    if min_train is None:
        min_train = n // 2 if folds > 1 else 0
    if test_size is None:
        test = int(n * 0.2) if folds == 1 else (n - min_train - horizon - 1) // folds
    else:
        test = _as_count(test_size, n, 0.2)
    if test < 1:
        raise TrainingError(
            f"{n} samples are too few for {folds} test window(s) after min_train={min_train} and horizon={horizon}; "
            "use fewer folds, a smaller min_train/test_size, or more data."
        )
    splits = []
    for k in range(folds):
        t0 = n - (folds - k) * test
        t1 = t0 + test
        end = t0 - horizon  # exclusive: the label window of sample end-1 ends at t0-1
        start = 0 if expanding else max(0, end - int(min_train or end))
        span = np.arange(start, max(start, end), dtype=np.int64)
        for j in range(k):  # embargo after earlier test windows
            e0 = n - (folds - j) * test + test
            span = span[(span < e0) | (span >= e0 + embargo)]
        n_valid = _as_count(valid, len(span), 0.0) if valid else 0
        if n_valid > 0:
            va = span[len(span) - n_valid :]
            tr = span[span + horizon < va[0]]
        else:
            va, tr = None, span
        if len(span) < max(1, int(min_train or 1)) or len(tr) < 1 or t0 < 0:
            raise TrainingError(
                f"fold {k}: only {len(span)} training samples (need >= {max(1, int(min_train or 1))}, of which "
                f"{0 if va is None else len(va)} validation and {len(tr)} train after purging) before the test "
                f"window starting at sample {t0} of {n}; use fewer folds, a smaller test_size or more data."
            )
        splits.append(Split(train=tr, valid=va, test=np.arange(t0, t1, dtype=np.int64), fold=k))
    return splits
