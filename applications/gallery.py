"""Galleries a person can check: the top detections per class as mplfinance candle charts with the
detected span shaded. One PNG per class (``<class>.png``), the top ``top`` detections side by side."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pandas as pd

from effnet_trading.errors import require

__all__ = ["detection_gallery"]


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(name))


def detection_gallery(
    ohlcv: pd.DataFrame,
    detections: pd.DataFrame,
    out_dir: str | os.PathLike,
    *,
    top: int = 3,
    before: int = 10,
    after: int = 10,
    dpi: int = 60,
) -> list[Path]:
    """Write ``out_dir/<class>.png`` for each class in ``detections`` (columns start, end, class,
    probability; optional detected_at): its ``top`` most probable detections, each drawn from
    ``before`` bars before ``start`` to ``after`` bars after ``end``, span shaded, the bar of
    detection (``detected_at``) marked with a dashed line. Returns the written paths."""
    mpf = require("mplfinance", "plot")
    matplotlib = require("matplotlib", "plot")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from effnet_trading.strategies.signal import canonical_ohlcv

    frame = canonical_ohlcv(ohlcv).rename(columns=str.capitalize)
    frame.index = frame.index.tz_localize(None)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, group in detections.groupby("class", sort=True):
        best = group.sort_values("probability", ascending=False).head(int(top))
        fig, axes = plt.subplots(1, len(best), figsize=(3.2 * len(best), 2.6), squeeze=False)
        for ax, (_, det) in zip(axes[0], best.iterrows()):
            start = frame.index.get_indexer([pd.Timestamp(det["start"]).tz_localize(None)])[0]
            end = frame.index.get_indexer([pd.Timestamp(det["end"]).tz_localize(None)])[0]
            lo, hi = max(0, start - before), min(len(frame), end + after + 1)
            bars = frame.iloc[lo:hi]
            mpf.plot(bars, type="candle", ax=ax, style="charles", xrotation=0)
            ax.axvspan(start - lo - 0.5, end - lo + 0.5, color="tab:orange", alpha=0.18, lw=0)
            if "detected_at" in det:
                at = frame.index.get_indexer([pd.Timestamp(det["detected_at"]).tz_localize(None)])[0]
                ax.axvline(at - lo, color="tab:red", ls="--", lw=0.8)
            ax.set_title(f"{pd.Timestamp(det['end']):%Y-%m-%d %H:%M}  p={det['probability']:.2f}", fontsize=7)
            ax.tick_params(labelsize=5)
            ax.set_ylabel("")
        fig.suptitle(str(name), fontsize=9)
        fig.tight_layout()
        path = out / f"{_safe(name)}.png"
        fig.savefig(path, dpi=dpi)
        plt.close(fig)
        paths.append(path)
    return paths
