"""Walk-forward splits: chronological, purged (gap > horizon), embargoed, deterministic."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from effnet_trading.errors import TrainingError
from effnet_trading.model_zoo.splits import walk_forward_splits


def _parts(sp):
    return [p for p in (sp.train, sp.valid, sp.test) if p is not None]


@settings(max_examples=150, deadline=None)
@given(
    n=st.integers(200, 5000),
    folds=st.integers(1, 5),
    horizon=st.integers(0, 30),
    embargo=st.integers(0, 30),
    valid=st.sampled_from([0, 0.1, 0.2, 50]),
    expanding=st.booleans(),
)
def test_split_properties(n, folds, horizon, embargo, valid, expanding):
    try:
        splits = walk_forward_splits(n, folds, horizon=horizon, embargo=embargo, valid=valid, expanding=expanding)
    except TrainingError as exc:
        assert "too few" in str(exc) or "training samples" in str(exc)
        return
    assert [s.fold for s in splits] == list(range(folds))
    for sp in splits:
        parts = _parts(sp)
        allidx = np.concatenate(parts)
        assert len(np.unique(allidx)) == len(allidx), "an index is in two sets"
        assert allidx.min() >= 0 and allidx.max() < n
        for p in parts:
            assert np.all(np.diff(p) > 0), "parts are sorted, never shuffled"
        # purge: the label window t..t+horizon of every train/valid sample ends before the test starts
        fit = np.concatenate([sp.train] + ([sp.valid] if sp.valid is not None else []))
        assert fit.max() < sp.test.min()
        assert sp.test.min() - fit.max() > horizon
        if sp.valid is not None:
            assert sp.train.max() < sp.valid.min()
            assert sp.valid.min() - sp.train.max() > horizon
        # embargo: no training sample within `embargo` samples after an earlier test window
        for earlier in splits[: sp.fold]:
            e0 = earlier.test.max() + 1
            assert not np.any((fit >= e0) & (fit < e0 + embargo))
    tests = [s.test for s in splits]
    for a, b in zip(tests, tests[1:]):
        assert a.max() < b.min(), "test windows move forward in time"
    again = walk_forward_splits(n, folds, horizon=horizon, embargo=embargo, valid=valid, expanding=expanding)
    for a, b in zip(splits, again):
        for x, y in zip(_parts(a), _parts(b)):
            np.testing.assert_array_equal(x, y)


def test_single_fold_layout_by_hand():
    (sp,) = walk_forward_splits(100, 1, horizon=6, valid=0.1)
    np.testing.assert_array_equal(sp.test, np.arange(80, 100))
    # training span 0..73 (73 + 6 < 80); validation = its last 7; train purged before validation
    np.testing.assert_array_equal(sp.valid, np.arange(67, 74))
    np.testing.assert_array_equal(sp.train, np.arange(0, 61))


def test_rolling_window_keeps_min_train():
    splits = walk_forward_splits(1000, 3, horizon=5, min_train=300, expanding=False, valid=0)
    assert all(len(s.train) == 300 for s in splits)
    assert splits[0].train[0] < splits[1].train[0] < splits[2].train[0]


def test_earlier_test_window_becomes_purged_history():
    a, b = walk_forward_splits(1000, 2, horizon=2, embargo=20, valid=0)
    assert np.isin(a.test[: -2 - 1], b.train).all()  # walk-forward: later folds learn from earlier test bars
    assert b.train.max() == b.test.min() - 3  # ... up to the purge before their own test window
    # with adjacent test windows the embargo zone after fold 0 lies inside fold 1's test window
    assert not np.isin(np.arange(a.test.max() + 1, a.test.max() + 21), b.train).any()


def test_too_little_data_says_how_to_fix():
    with pytest.raises(TrainingError, match="fewer folds"):
        walk_forward_splits(30, 5, horizon=10)
