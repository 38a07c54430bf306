"""Metrics against scikit-learn, the collapse warning, and the (block) bootstrap."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import sklearn.metrics as sk

from effnet_trading.errors import TrainingError
from effnet_trading.model_zoo.metrics import (
    CollapseWarning,
    bootstrap_ci,
    classification_report,
    format_report,
    macro_f1,
)


@pytest.mark.parametrize("seed", range(5))
def test_report_matches_sklearn(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(20, 800))
    y = rng.integers(0, 3, n)
    proba = rng.dirichlet(np.ones(3) * 0.7, n)
    proba[rng.random(n) < 0.3, 2] += 0.5  # skew predictions a little
    proba /= proba.sum(1, keepdims=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CollapseWarning)
        r = classification_report(y, proba)
    pred = proba.argmax(1)
    assert r["accuracy"] == pytest.approx(sk.accuracy_score(y, pred))
    assert r["macro_f1"] == pytest.approx(sk.f1_score(y, pred, average="macro", labels=[0, 1, 2]))
    assert r["log_loss"] == pytest.approx(sk.log_loss(y, proba, labels=[0, 1, 2]), rel=1e-9)
    assert r["confusion"] == sk.confusion_matrix(y, pred, labels=[0, 1, 2]).tolist()
    prec = sk.precision_score(y, pred, average=None, labels=[0, 1, 2], zero_division=0)
    rec = sk.recall_score(y, pred, average=None, labels=[0, 1, 2], zero_division=0)
    for i, name in enumerate(("sell", "hold", "buy")):
        assert r["per_class"][name]["precision"] == pytest.approx(prec[i])
        assert r["per_class"][name]["recall"] == pytest.approx(rec[i])
    counts = np.bincount(y, minlength=3)
    assert r["majority_rate"] == pytest.approx(counts.max() / n)
    assert r["majority_class"] == ("sell", "hold", "buy")[counts.argmax()]
    assert sum(r["pred_shares"].values()) == pytest.approx(1.0)
    assert r["pred_shares"]["buy"] == pytest.approx(np.mean(pred == 2))


def test_macro_f1_with_absent_class_matches_sklearn():
    y = np.array([0, 0, 1, 1, 0])
    p = np.array([0, 1, 1, 1, 0])
    assert macro_f1(y, p) == pytest.approx(sk.f1_score(y, p, average="macro"))


def test_collapse_warns_and_flags():
    y = np.array([0, 1, 2] * 100)
    proba = np.tile([0.2, 0.7, 0.1], (300, 1))
    proba[:10] = [0.8, 0.1, 0.1]  # 97 % "hold"
    with pytest.warns(CollapseWarning, match="97% of predictions are 'hold'"):
        r = classification_report(y, proba)
    assert r["collapsed"] and "majority rate" in r["warnings"][0]
    assert "COLLAPSED" in format_report({"test": r})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ok = classification_report(y, np.eye(3)[y] * 0.9 + 0.1 / 3)
    assert not ok["collapsed"] and ok["accuracy"] == 1.0


def test_report_rejects_bad_input_with_fix():
    with pytest.raises(TrainingError, match=r"proba must be \(N, 3\)"):
        classification_report(np.zeros(4, int), np.zeros((4, 2)))
    with pytest.raises(TrainingError, match="unlabelled bars, -1, must be dropped"):
        classification_report(np.array([-1, 0]), np.full((2, 3), 1 / 3))


def test_bootstrap_covers_truth_and_block_widens_on_serial_data():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 3000)
    pred = np.where(rng.random(3000) < 0.5, y, rng.integers(0, 3, 3000))  # true accuracy 0.5 + 0.5/3
    ci = bootstrap_ci(y, pred, "accuracy", n=400, seed=0)
    assert ci["low"] < 2 / 3 < ci["high"]
    assert ci["estimate"] == pytest.approx(np.mean(y == pred))
    se = np.sqrt(ci["estimate"] * (1 - ci["estimate"]) / 3000)
    assert ci["std"] == pytest.approx(se, rel=0.2)  # i.i.d. bootstrap ~ binomial standard error
    # hits in runs of 50 (serially dependent): the block bootstrap sees the wider spread
    hits = np.repeat(rng.random(60) < 0.6, 50)
    y2 = np.zeros(3000, int)
    p2 = np.where(hits, 0, 1)
    iid = bootstrap_ci(y2, p2, "accuracy", n=400, seed=0)
    blk = bootstrap_ci(y2, p2, "accuracy", n=400, block=50, seed=0)
    assert blk["std"] > 3 * iid["std"]
    assert bootstrap_ci(y2, p2, "accuracy", n=50, block=50, seed=3) == bootstrap_ci(
        y2, p2, "accuracy", n=50, block=50, seed=3
    )


def test_bootstrap_accepts_callable():
    y = np.array([0, 1, 2, 1, 0, 2, 1, 1])
    ci = bootstrap_ci(y, y, lambda a, b: macro_f1(a, b, 3), n=20)
    assert ci["low"] == ci["high"] == 1.0
