"""Policy: rules on hand-made rows, batch == stateful step, JSON round trip."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from effnet_trading.errors import SpecError
from effnet_trading.strategies import Policy

S, H, B = [0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.1, 0.2, 0.7]
WEAK_B = [0.3, 0.25, 0.45]


def _frame(rows):
    return pd.DataFrame(rows, columns=["sell", "hold", "buy"], dtype=float)


def _both(policy, rows):
    frame = _frame(rows)
    batch = policy.positions(frame).tolist()
    policy.reset()
    steps = [policy.step(r) for _, r in frame.iterrows()]
    assert batch == steps
    return batch


def test_argmax_threshold_keep():
    nan = [np.nan] * 3
    assert _both(Policy(), [nan, B, WEAK_B, H, S, WEAK_B]) == [0, 1, 1, 1, -1, -1]


def test_on_hold_flat_and_long_only():
    assert _both(Policy(on_hold="flat"), [B, H, S]) == [1, 0, -1]
    assert _both(Policy(long_only=True), [S, B, H, S, S]) == [0, 1, 1, 0, 0]


def test_hysteresis_needed_to_open_or_flip_not_to_close():
    mid_b, mid_s = [0.1, 0.25, 0.65], [0.65, 0.25, 0.1]
    p = Policy(threshold=0.5, hysteresis=0.1)  # open/flip needs 0.6
    assert _both(p, [[0.35, 0.1, 0.55], mid_b, [0.58, 0.3, 0.12], mid_s]) == [0, 1, 1, -1]
    p = Policy(threshold=0.5, hysteresis=0.2, on_hold="flat")  # open/flip needs 0.7
    assert _both(p, [mid_b, B, mid_s, [0.1, 0.55, 0.35]]) == [0, 1, 1, 0]


def test_prob_sizing():
    p = Policy(sizing="prob", threshold=0.4)
    out = _both(p, [B, [0.1, 0.1, 0.8], S, [1 / 3, 1 / 3, 1 / 3]])
    np.testing.assert_allclose(
        out, [(0.7 - 1 / 3) / (2 / 3), (0.8 - 1 / 3) / (2 / 3), -(0.7 - 1 / 3) / (2 / 3), -(0.7 - 1 / 3) / (2 / 3)]
    )


def test_nan_row_goes_flat():
    assert _both(Policy(), [B, [np.nan] * 3, WEAK_B]) == [1, 0, 0]


@pytest.mark.parametrize(
    "kw",
    [
        dict(),
        dict(hysteresis=0.15, threshold=0.4),
        dict(long_only=True, on_hold="flat"),
        dict(sizing="prob", hysteresis=0.05),
    ],
)
def test_batch_equals_step_on_random_probabilities(kw):
    rng = np.random.default_rng(3)
    probs = rng.dirichlet([1, 1, 1], 2000)
    probs[:20] = np.nan
    probs[rng.random(2000) < 0.01] = np.nan
    frame = pd.DataFrame(
        probs, columns=["sell", "hold", "buy"], index=pd.date_range("2024", periods=2000, freq="5min", tz="UTC")
    )
    p = Policy(**kw)
    batch = p.positions(frame)
    steps = np.array([p.step(r) for _, r in frame.iterrows()])
    np.testing.assert_array_equal(batch.to_numpy(), steps)
    assert (
        batch.index.equals(frame.index)
        and np.abs(steps).max() <= 1.0
        and len(np.unique(np.sign(steps))) == (2 if kw.get("long_only") else 3)
    )


def test_columns_by_name_and_extra_columns_ignored():
    frame = _frame([B, S])[["buy", "sell", "hold"]].assign(agreement=1.0)
    assert Policy().positions(frame).tolist() == [1, -1]


def test_json_round_trip_and_errors():
    p = Policy(threshold=0.6, hysteresis=0.1, long_only=True, sizing="prob", on_hold="flat", class_names=("down", "up"))
    q = Policy.from_json(p.to_json())
    assert q.to_dict() == p.to_dict()
    assert q.step([0.2, 0.8]) == pytest.approx(0.6) and q.step([0.8, 0.2]) == 0.0
    with pytest.raises(SpecError, match="unknown Policy option"):
        Policy.from_dict({"treshold": 0.5})
    with pytest.raises(SpecError, match="no trading direction"):
        Policy(class_names=("a", "b", "c"))
    with pytest.raises(SpecError, match="lack column"):
        Policy().positions(pd.DataFrame({"up": [1.0]}))
    with pytest.raises(SpecError, match="sizing"):
        Policy(sizing="kelly")
