"""Monitor: live health of a signal — latency, confidence, class rates, model agreement, drift.

Drift is the population stability index, PSI = sum((a - e) * ln(a / e)) over bins, with the
bins set by the reference's deciles (continuous inputs) or by the classes (outputs); shares
are floored at 1e-4 so an empty bin stays finite. PSI > 0.25 raises an alarm (the usual
"significant shift" rule of thumb; 0.1-0.25 is "moderate").
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping

import numpy as np
import pandas as pd

from effnet_trading.errors import DataError

__all__ = ["Monitor", "psi", "PSI_ALARM"]

PSI_ALARM = 0.25
_FLOOR = 1e-4


def _shares(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    return np.maximum(counts / total if total else np.zeros_like(counts, dtype=float), _FLOOR)


def psi(expected, actual, bins: int = 10) -> float:
    """PSI of ``actual`` against ``expected`` (1-D samples), bins at the expected quantiles."""
    e = np.asarray(expected, dtype=np.float64)
    a = np.asarray(actual, dtype=np.float64)
    e, a = e[np.isfinite(e)], a[np.isfinite(a)]
    if len(e) < 2 or len(a) < 1:
        return float("nan")
    edges = np.unique(np.quantile(e, np.linspace(0, 1, bins + 1))[1:-1])
    pe = _shares(np.bincount(np.searchsorted(edges, e, side="right"), minlength=len(edges) + 1))
    pa = _shares(np.bincount(np.searchsorted(edges, a, side="right"), minlength=len(edges) + 1))
    return float(np.sum((pa - pe) * np.log(pa / pe)))


def _psi_categorical(expected_rates: np.ndarray, actual_rates: np.ndarray) -> float:
    pe, pa = np.maximum(expected_rates, _FLOOR), np.maximum(actual_rates, _FLOOR)
    return float(np.sum((pa - pe) * np.log(pa / pe)))


def _as_rows(probs) -> tuple[np.ndarray, list[str] | None]:
    if isinstance(probs, pd.DataFrame):
        cols = [c for c in probs.columns if c != "agreement"]
        return probs[cols].to_numpy(dtype=np.float64), cols
    if isinstance(probs, pd.Series):
        cols = [c for c in probs.index if c != "agreement"]
        return probs[cols].to_numpy(dtype=np.float64)[None, :], cols
    arr = np.asarray(probs, dtype=np.float64)
    return arr.reshape(1, -1) if arr.ndim == 1 else arr, None


class Monitor:
    """Rolling window (``window`` records) of a live signal's health.

    reference_returns: log-returns of a reference period (array), or a reference OHLCV frame
    (then its log-returns and log-volumes are both references). reference_probs: a
    reference period's probabilities (DataFrame or ``(N, K)`` array) for output drift.
    """

    def __init__(self, *, reference_returns=None, reference_probs=None, window: int = 1000):
        if int(window) < 2:
            raise DataError(f"Monitor window={window} must be >= 2 records.")
        self.window = int(window)
        self._ref_volume = None
        if isinstance(reference_returns, pd.DataFrame):
            close = reference_returns["close"].to_numpy(dtype=np.float64)
            self._ref_returns = np.diff(np.log(close))
            if "volume" in reference_returns:
                self._ref_volume = np.log1p(reference_returns["volume"].to_numpy(dtype=np.float64))
        else:
            self._ref_returns = None if reference_returns is None else np.asarray(reference_returns, dtype=np.float64)
        self._ref_rates = None
        if reference_probs is not None:
            rows, _ = _as_rows(reference_probs)
            rows = rows[np.isfinite(rows).all(axis=1)]
            self._ref_rates = np.bincount(rows.argmax(axis=1), minlength=rows.shape[1]) / max(len(rows), 1)
        self.reset()

    def reset(self) -> None:
        self.class_names: list[str] | None = None
        self._probs: deque[np.ndarray] = deque(maxlen=self.window)
        self._latency: deque[float] = deque(maxlen=self.window)
        self._agree: deque[float] = deque(maxlen=self.window)
        self._returns: deque[float] = deque(maxlen=self.window)
        self._volume: deque[float] = deque(maxlen=self.window)
        self._last_close: float | None = None

    def record(self, probs, latency_ms: float | None = None, member_probs=None, bar=None) -> None:
        """Record one bar's probabilities (or a frame of many). member_probs: Mapping name -> row
        (or ``(M, K)`` array) of the ensemble members; bar: the bar (close, volume) for input drift."""
        rows, cols = _as_rows(probs)
        if cols is not None:
            self.class_names = cols
        for row in rows:
            if np.isfinite(row).all():
                self._probs.append(row)
        if latency_ms is not None:
            self._latency.append(float(latency_ms))
        if member_probs is not None:
            self._record_members(member_probs)
        if bar is not None:
            close = float(bar["close"])
            if self._last_close is not None:
                self._returns.append(np.log(close / self._last_close))
            self._last_close = close
            if "volume" in bar:
                self._volume.append(float(np.log1p(float(bar["volume"]))))

    def _record_members(self, member_probs) -> None:
        if isinstance(member_probs, Mapping):
            rows = [np.asarray(v, dtype=np.float64) for v in member_probs.values() if v is not None]
        else:
            rows = list(np.asarray(member_probs, dtype=np.float64))
        rows = [r for r in rows if np.isfinite(r).all()]
        if len(rows) < 2:
            return
        votes = np.array([r.argmax() for r in rows])
        majority = np.bincount(votes).argmax()
        self._agree.append(float((votes == majority).mean()))

    def summary(self) -> dict:
        """Latency percentiles, confidence, class rates, agreement, input/output drift and alarms."""
        out: dict = {"records": len(self._probs)}
        lat = np.asarray(self._latency)
        out["latency_ms"] = {f"p{q}": float(np.percentile(lat, q)) if len(lat) else float("nan") for q in (50, 95, 99)}
        probs = np.array(self._probs) if self._probs else np.empty((0, 0))
        names = self.class_names or [str(i) for i in range(probs.shape[1] if probs.size else 0)]
        if probs.size:
            conf = probs.max(axis=1)
            hist, edges = np.histogram(conf, bins=10, range=(0.0, 1.0))
            out["confidence"] = {
                "mean": float(conf.mean()),
                **{f"q{int(q * 100)}": float(np.quantile(conf, q)) for q in (0.05, 0.25, 0.5, 0.75, 0.95)},
                "histogram": hist.tolist(),
                "bin_edges": edges.tolist(),
            }
            rates = np.bincount(probs.argmax(axis=1), minlength=probs.shape[1]) / len(probs)
            out["class_rates"] = dict(zip(names, rates.tolist()))
        else:
            rates = None
            out["confidence"] = {}
            out["class_rates"] = {}
        out["agreement"] = float(np.mean(self._agree)) if self._agree else float("nan")
        drift: dict = {}
        if self._ref_returns is not None and self._returns:
            drift["returns_psi"] = psi(self._ref_returns, np.asarray(self._returns))
        if self._ref_volume is not None and self._volume:
            drift["volume_psi"] = psi(self._ref_volume, np.asarray(self._volume))
        if self._ref_rates is not None and rates is not None and len(rates) == len(self._ref_rates):
            drift["output_psi"] = _psi_categorical(self._ref_rates, rates)
        out["drift"] = drift
        out["alarms"] = [
            f"{name} = {value:.3f} > {PSI_ALARM}: the {'model outputs' if name == 'output_psi' else 'input bars'} "
            "have drifted from the reference; re-validate or retrain the model."
            for name, value in drift.items()
            if value > PSI_ALARM
        ]
        return out

    def plot(self, path) -> str:
        """Save a one-page health figure (confidence histogram, class rates, latency) to ``path``."""
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        s = self.summary()
        fig = Figure(figsize=(12, 3.5))
        FigureCanvasAgg(fig)  # Agg canvas on this figure only: no global backend change
        axes = fig.subplots(1, 3)
        conf = s["confidence"]
        if conf:
            edges = np.asarray(conf["bin_edges"])
            axes[0].bar(edges[:-1], conf["histogram"], width=np.diff(edges), align="edge")
        axes[0].set_title("confidence (max probability)")
        axes[1].bar(list(s["class_rates"]), list(s["class_rates"].values()))
        axes[1].set_title("class rates")
        if self._latency:
            axes[2].plot(np.asarray(self._latency))
        axes[2].set_title("latency (ms) p50 {p50:.2f} p99 {p99:.2f}".format(**s["latency_ms"]))
        if s["alarms"]:
            fig.suptitle("ALARM: " + "; ".join(a.split(":")[0] for a in s["alarms"]), color="red")
        fig.tight_layout()
        fig.savefig(path)
        return str(path)
