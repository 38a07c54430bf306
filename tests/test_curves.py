"""Learning curves and the near-uniform diagnosis (model_zoo.curves) and their place in the evaluate report."""

from __future__ import annotations

import numpy as np

from effnet_trading.evaluation.eval_report import learning_curves_markdown
from effnet_trading.model_zoo.curves import curves_by_fold, diagnose

PRIOR = [0.35, 0.30, 0.35]


def _hist(val_losses, fold=0):
    return [
        {"fold": fold, "epoch": i + 1, "loss": 1.1 - 0.01 * i, "acc": 0.35 + 0.01 * i, "val_loss": v, "val_acc": 0.35}
        for i, v in enumerate(val_losses)
    ]


def _near_uniform(n=500, seed=0):
    rng = np.random.default_rng(seed)
    p = np.asarray(PRIOR) + rng.normal(0, 0.005, (n, 3))
    return p / p.sum(1, keepdims=True)


def test_near_uniform_and_still_falling_is_under_trained():
    d = diagnose(_hist([1.10, 1.09, 1.08]), _near_uniform(), PRIOR)
    assert d["near_uniform"] and d["val_loss_falling_at_end"] and d["state"] == "under-trained"
    assert "under-trained" in d["line"] and "epoch 3" in d["line"]


def test_near_uniform_after_the_loss_stopped_falling_is_the_base_rate():
    d = diagnose(_hist([1.09, 1.08, 1.085, 1.09]), _near_uniform(), PRIOR)
    assert d["near_uniform"] and not d["val_loss_falling_at_end"] and d["state"] == "converged to base rate"


def test_confident_predictions_are_not_flagged():
    p = np.eye(3)[np.random.default_rng(0).integers(0, 3, 500)] * 0.8 + 0.2 / 3
    d = diagnose(_hist([1.1, 1.0, 1.05]), p, PRIOR)
    assert not d["near_uniform"] and d["state"] == "learned" and d["mean_top_proba"] > 0.8


def test_curves_by_fold_splits_the_history():
    c = curves_by_fold(_hist([1.1, 1.0]) + _hist([1.2, 1.1, 1.0], fold=1))
    assert set(c) == {0, 1} and c[1]["epoch"] == [1.0, 2.0, 3.0] and c[0]["val_loss"] == [1.1, 1.0]


def test_report_shows_each_fold_curve_beside_the_majority_rate_and_the_diagnosis():
    flat = diagnose(_hist([1.09, 1.08, 1.085]), _near_uniform(), PRIOR)
    entry = {
        "kind": "model",
        "best_epoch": 2,
        "curve": _hist([1.09, 1.08, 1.085]),
        "diagnosis": flat,
        "classification": {"accuracy": 0.351, "majority_rate": 0.352},
    }
    md = learning_curves_markdown([{"fold": 0, "strategies": {"compact": entry, "logreg": {"kind": "classifier"}}}])
    assert "| compact | 0 | 1.100 → 1.090 → 1.080 | 1.090 → 1.080* → 1.085 |" in md
    assert "0.351 / 0.352 | converged to base rate |" in md
    assert "- compact, fold 0: near-uniform probabilities" in md and "logreg" not in md
    assert learning_curves_markdown([{"fold": 0, "strategies": {"logreg": {"kind": "classifier"}}}]) == ""
