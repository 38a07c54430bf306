"""Calibration pictures for ``train`` and ``evaluate``: the reliability diagram and the predicted-class
distribution beside the true one, one row per named classification report (matplotlib, Agg)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from effnet_trading.evaluation.report import _subplots, fig_to_data_uri
from effnet_trading.outputs import atomic_file

__all__ = ["calibration_figure", "calibration_data_uri", "write_calibration_png", "calibration_lines"]


def calibration_figure(reports: Mapping[str, Mapping]):
    """``{name: report}`` -> a matplotlib Figure; a report holds ``reliability``, ``ece``, ``true_shares``, ``pred_shares``
    (``model_zoo.metrics.classification_report`` or ``calibration.calibration_report`` output)."""
    rows = [(n, r) for n, r in reports.items() if r and "reliability" in r]
    fig, axes = _subplots(max(1, len(rows)), 2, figsize=(9, 3.2 * max(1, len(rows))), squeeze=False)
    for (name, r), (ax1, ax2) in zip(rows, axes):
        b = r["reliability"]
        lower, upper = np.asarray(b["lower"]), np.asarray(b["upper"])
        acc = np.asarray(b["accuracy"], np.float64)
        conf = np.asarray(b["confidence"], np.float64)
        count = np.asarray(b["count"])
        full = count > 0
        ax1.bar(lower[full], acc[full], width=(upper - lower)[full], align="edge", alpha=0.7, label="accuracy")
        ax1.plot(conf[full], acc[full], "k.", ms=4, label="mean confidence")
        ax1.plot([0, 1], [0, 1], color="grey", ls="--", lw=0.8, label="calibrated")
        ax1.set(xlim=(0, 1), ylim=(0, 1), xlabel="top-class probability", ylabel="share correct")
        ax1.set_title(f"{name}: ECE {r['ece']:.3f} ({int(count.sum())} samples, {len(count)} bins)", fontsize=9)
        ax1.legend(fontsize=7, loc="upper left")
        names = list(r["true_shares"])
        x = np.arange(len(names))
        ax2.bar(x - 0.2, [r["true_shares"][c] for c in names], width=0.4, label="true")
        ax2.bar(x + 0.2, [r["pred_shares"][c] for c in names], width=0.4, label="predicted")
        ax2.set_xticks(x, names)
        ax2.set(ylim=(0, 1), ylabel="share of samples")
        ax2.set_title(f"{name}: class distribution", fontsize=9)
        ax2.legend(fontsize=7)
    fig.tight_layout()
    return fig


def calibration_data_uri(reports: Mapping[str, Mapping]) -> str:
    """The calibration figure as a ``data:image/png`` URI (for HTML reports)."""
    return fig_to_data_uri(calibration_figure(reports))


def write_calibration_png(reports: Mapping[str, Mapping], path: str | os.PathLike) -> Path:
    """Save the calibration figure as a PNG file."""
    path = Path(path)
    fig = calibration_figure(reports)
    with atomic_file(path) as tmp:
        fig.savefig(tmp, format="png", dpi=90, bbox_inches="tight")
    return path


def calibration_lines(reports: Mapping[str, Mapping]) -> list[str]:
    """One text line per report: ECE, and predicted vs true class shares."""
    out = []
    for name, r in reports.items():
        if not r or "ece" not in r:
            continue
        shares = ", ".join(f"{c} {r['pred_shares'][c]:.2f}/{r['true_shares'][c]:.2f}" for c in r["true_shares"])
        out.append(f"{name}: ECE {r['ece']:.4f}; predicted/true class shares {shares}")
    return out
