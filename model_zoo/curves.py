"""Learning curves and what they say: per-epoch train/validation loss and accuracy of a run,
and a diagnosis when a model's probabilities stay near-uniform (under-trained, or converged
to the base rate)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["curves_by_fold", "diagnose", "format_curves", "NEAR_UNIFORM"]

NEAR_UNIFORM = 0.05  # mean top probability within this of the largest class prior (or 1/K) = "near-uniform"
_CURVE_KEYS = ("epoch", "loss", "acc", "val_loss", "val_acc")


def curves_by_fold(history: Sequence[dict]) -> dict[int, dict[str, list[float]]]:
    """``{fold: {"epoch": [...], "loss": [...], "acc": [...], "val_loss": [...], "val_acc": [...]}}`` from history rows."""
    out: dict[int, dict[str, list[float]]] = {}
    for row in history:
        c = out.setdefault(int(row["fold"]), {k: [] for k in _CURVE_KEYS})
        for k in _CURVE_KEYS:
            c[k].append(float(row.get(k, math.nan)))
    return out


def diagnose(
    history: Sequence[dict], proba: np.ndarray, train_prior: Sequence[float], *, tol: float = NEAR_UNIFORM
) -> dict:
    """Read one fold's learning curve beside its test probabilities ``(n, K)``.

    ``near_uniform``: the mean top probability is within ``tol`` of the best constant guess
    (the largest training class share). Then ``state`` says why: ``under-trained``
    (validation loss still falling at the last epoch: train longer / raise the learning rate)
    or ``converged to base rate`` (validation loss stopped falling: the model found nothing
    it could use beyond the class shares). Otherwise ``state`` is ``learned`` (confident
    somewhere; compare its accuracy with the majority rate). ``line`` is one readable sentence."""
    proba = np.asarray(proba, np.float64)
    prior = np.asarray(train_prior, np.float64)
    top = float(proba.max(1).mean()) if len(proba) else math.nan
    base = float(prior.max()) if len(prior) else math.nan
    spread = float(np.abs(proba - prior).max(1).mean()) if len(proba) and proba.shape[1] == len(prior) else math.nan
    val = [float(r["val_loss"]) for r in history if r.get("val_loss") is not None and math.isfinite(r["val_loss"])]
    trn = [float(r["loss"]) for r in history]
    falling = len(val) >= 2 and val[-1] < min(val[:-1]) - 1e-4
    near = bool(math.isfinite(top) and top - base < tol)
    epochs = len(history)
    if not near:
        state = "learned"
        line = f"confident predictions (mean top probability {top:.3f} vs base rate {base:.3f})"
    elif falling or (not val and len(trn) >= 2 and trn[-1] < trn[0] - 1e-3):
        state = "under-trained"
        line = (
            f"near-uniform probabilities (mean top {top:.3f} vs base rate {base:.3f}) and the validation loss was still "
            f"falling at epoch {epochs}: under-trained; give it more epochs or a higher learning rate"
        )
    else:
        state = "converged to base rate"
        line = (
            f"near-uniform probabilities (mean top {top:.3f} vs base rate {base:.3f}) after the validation loss stopped "
            f"falling: converged to the base rate; the model found nothing beyond the class shares"
        )
    return {
        "state": state,
        "near_uniform": near,
        "mean_top_proba": top,
        "base_rate": base,
        "mean_abs_dev_from_prior": spread,
        "val_loss_falling_at_end": bool(falling),
        "epochs": epochs,
        "line": line,
    }


def format_curves(history: Sequence[dict], folds: Sequence[dict]) -> str:
    """Plain-text learning curves per fold (train/valid loss and accuracy per epoch) beside each fold's
    test accuracy and majority rate, with the diagnosis line of near-uniform folds."""
    lines = ["learning curves (epoch: train loss/acc, valid loss/acc):"]
    curves = curves_by_fold(history)
    for f in folds:
        c = curves.get(int(f["fold"]))
        if c is None:
            continue
        cells = [
            f"{int(e)}: {lo:.3f}/{ac:.3f}, {vl:.3f}/{va:.3f}{'*' if int(e) == f.get('best_epoch') else ''}"
            for e, lo, ac, vl, va in zip(c["epoch"], c["loss"], c["acc"], c["val_loss"], c["val_acc"])
        ]
        t = f["test"]
        lines.append(
            f"  fold {f['fold']}: "
            + " | ".join(cells)
            + f"  -> test acc {t['accuracy']:.3f} vs majority {t['majority_rate']:.3f}"
        )
        d = f.get("diagnosis")
        if d and d.get("near_uniform"):
            lines.append(f"    diagnosis: {d['line']}")
    return "\n".join(lines)
