"""TimeframeEnsemble: SignalModels on several bar sizes, combined without look-ahead.

Each member scores bars of its own timeframe, resampled from the base bars. At base bar t a
member contributes the probabilities of its **last higher bar that has closed by the end of
base bar t** (``last_closed_index``); a higher bar still forming is never used. Rows where
any member is still warming up are NaN.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from effnet_trading.errors import DataError, SpecError
from effnet_trading.imaging import OHLCV_COLUMNS, infer_interval, last_closed_index, parse_timeframe, resample_ohlcv
from effnet_trading.strategies.signal import SignalModel, canonical_ohlcv, parse_bar

__all__ = ["TimeframeEnsemble", "combine_probabilities"]


def combine_probabilities(member_probs: np.ndarray, weights: np.ndarray, method: str) -> tuple[np.ndarray, np.ndarray]:
    """``(M, T, K)`` member probabilities -> ``(T, K)`` ensemble and ``(T,)`` agreement
    (share of members whose argmax equals the ensemble argmax); rows with a NaN member -> NaN."""
    m, t, k = member_probs.shape
    bad = np.isnan(member_probs).any(axis=(0, 2))
    safe = np.where(np.isnan(member_probs), 0.0, member_probs)
    w = weights[:, None, None] / weights.sum()
    votes = safe.argmax(axis=2)  # (M, T)
    if method == "mean":
        out = (w * safe).sum(axis=0)
    else:
        onehot = np.eye(k)[votes]  # (M, T, K)
        out = (w * onehot).sum(axis=0)
    agreement = (votes == out.argmax(axis=1)[None, :]).mean(axis=0)
    out[bad] = np.nan
    agreement = np.where(bad, np.nan, agreement)
    return out, agreement


class _Bucket:
    """Live higher-bar aggregation of base bars (first/max/min/last/sum), labelled by open time."""

    def __init__(self, step: pd.Timedelta):
        self.step_ns = int(step.value)
        self.start: int | None = None
        self.row: np.ndarray | None = None
        self.emitted = False

    def add(self, ts_ns: int, row: np.ndarray, base_ns: int | None) -> list[tuple[int, np.ndarray]]:
        """Add one base bar; return the higher bars that closed (at most two: after a gap, the
        previous bucket, and this bar's bucket if the bar completes it)."""
        out = []
        start = ts_ns // self.step_ns * self.step_ns  # origin = epoch, as resample_ohlcv
        if self.start is not None and start != self.start:
            if not self.emitted:
                assert self.row is not None  # set together with start
                out.append((self.start, self.row))
            self.start = None
        if self.start is None:
            self.start, self.row, self.emitted = start, row.copy(), False
        else:
            assert self.row is not None  # set together with start
            o, h, lo, c, v = self.row
            self.row = np.array([o, max(h, row[1]), min(lo, row[2]), row[3], v + row[4]])
        if base_ns is not None and ts_ns + base_ns >= self.start + self.step_ns and not self.emitted:
            out.append((self.start, self.row))
            self.emitted = True
        return out


class TimeframeEnsemble:
    """Combine SignalModels keyed by timeframe ('5m', '15m', '1h', ...) on base OHLCV.

    weights: Mapping timeframe -> weight or a sequence in member order (default equal).
    method: 'mean' (weighted mean of probabilities) or 'vote' (weighted share of argmax votes).
    base_timeframe: the input bar size; inferred from the data when omitted (live: from the
    smallest spacing seen so far, so pass it when the first bars may have gaps).
    """

    # live state, set by reset()
    _buckets: dict[str, _Bucket]
    _latest: dict[str, pd.Series | None]
    _last: int | None
    _base_ns: int | None
    last_member_probs: dict[str, pd.Series | None]

    def __init__(
        self,
        members: Mapping[str, SignalModel],
        *,
        weights: Mapping[str, float] | Sequence[float] | None = None,
        method: str = "mean",
        base_timeframe=None,
    ):
        if not members:
            raise SpecError("TimeframeEnsemble needs at least one member, e.g. {'5m': SignalModel(...), '1h': ...}.")
        if method not in ("mean", "vote"):
            raise SpecError(f"TimeframeEnsemble method={method!r} must be 'mean' or 'vote'.")
        self.members = dict(members)
        self.timeframes = list(self.members)
        self.steps = {tf: parse_timeframe(tf) for tf in self.timeframes}
        names = {tf: tuple(m.class_names) for tf, m in self.members.items()}
        self.class_names = names[self.timeframes[0]]
        if len(set(names.values())) != 1:
            raise SpecError(f"ensemble members must share class names; got {names}.")
        if weights is None:
            w = np.ones(len(self.timeframes))
        elif isinstance(weights, Mapping):
            unknown = set(weights) - set(self.timeframes)
            if unknown:
                raise SpecError(f"weights for unknown timeframe(s) {sorted(unknown)}; members are {self.timeframes}.")
            w = np.array([float(weights.get(tf, 1.0)) for tf in self.timeframes])
        else:
            w = np.asarray(weights, dtype=np.float64)
            if w.shape != (len(self.timeframes),):
                raise SpecError(f"weights has {w.size} values for {len(self.timeframes)} members {self.timeframes}.")
        if (w < 0).any() or w.sum() <= 0:
            raise SpecError(f"weights {w.tolist()} must be >= 0 with a positive sum.")
        self.weights = w
        self.method = method
        self.base = None if base_timeframe is None else parse_timeframe(base_timeframe)
        self.reset()

    @property
    def warmup(self) -> int:
        """Base bars before the first ensemble output (index of the first scored base bar) when
        the data starts on a boundary of every member timeframe (the worst case)."""
        if self.base is None:
            raise SpecError("TimeframeEnsemble.warmup needs the base bar size: pass base_timeframe='5m'.")
        out = 0
        for tf, model in self.members.items():
            ratio = int(self.steps[tf] // self.base)
            if getattr(model, "_base", None) is None:
                model._base = self.steps[tf]  # the member's input bars are its timeframe's bars
            out = max(out, (model.warmup + 1) * ratio - 1)
        return out

    # -- batch ---------------------------------------------------------------------------
    def _base_of(self, frame: pd.DataFrame) -> pd.Timedelta:
        base = self.base if self.base is not None else infer_interval(frame.index)
        for tf, step in self.steps.items():
            if step < base or step % base != pd.Timedelta(0):
                raise SpecError(f"member timeframe {tf!r} must be a multiple of the base bar size {base}.")
        return base

    def member_proba(self, ohlcv) -> dict[str, pd.DataFrame]:
        """Each member's probabilities aligned to the base index (last closed higher bar; NaN before)."""
        frame = canonical_ohlcv(ohlcv)
        base = self._base_of(frame)
        out = {}
        for tf, model in self.members.items():
            step = self.steps[tf]
            if step == base:
                out[tf] = model.predict_proba(frame)
                continue
            hi = resample_ohlcv(frame, step, base_interval=base)
            hi = hi.loc[hi["closed"].to_numpy(), list(OHLCV_COLUMNS)]
            aligned = np.full((len(frame), len(self.class_names)), np.nan)
            if len(hi):
                probs = model.predict_proba(hi).to_numpy()
                pos = last_closed_index(hi.index, step, frame.index + base)
                ok = pos >= 0
                aligned[ok] = probs[pos[ok]]
            out[tf] = pd.DataFrame(aligned, index=frame.index, columns=list(self.class_names))
        return out

    def predict_proba(self, ohlcv) -> pd.DataFrame:
        """Ensemble probabilities per base bar plus an ``agreement`` column; NaN while any member warms up."""
        members = self.member_proba(ohlcv)
        index = next(iter(members.values())).index
        stacked = np.stack([members[tf].to_numpy() for tf in self.timeframes])
        probs, agreement = combine_probabilities(stacked, self.weights, self.method)
        out = pd.DataFrame(probs, index=index, columns=list(self.class_names))
        out["agreement"] = agreement
        return out

    # -- incremental ---------------------------------------------------------------------
    def update(self, bar) -> pd.Series | None:
        """One new closed base bar -> ensemble probabilities + agreement (None during warm-up);
        the same numbers as ``predict_proba``. ``last_member_probs`` holds each member's row."""
        ts, row = parse_bar(bar)
        ts_ns = int(ts.as_unit("ns").value)
        if self._last is not None and ts_ns <= self._last:
            raise DataError(
                f"bar timestamp {ts} is not after the previous bar {pd.Timestamp(self._last, tz='UTC')}; "
                "update() takes closed bars in increasing time order (call reset() to start over)."
            )
        if self.base is not None:
            base_ns = int(self.base.value)
        elif self._last is not None:
            base_ns = ts_ns - self._last if self._base_ns is None else min(self._base_ns, ts_ns - self._last)
            self._base_ns = base_ns
        else:
            base_ns = None
        self._last = ts_ns
        for tf, model in self.members.items():
            bucket = self._buckets.setdefault(tf, _Bucket(self.steps[tf]))
            for start, hrow in bucket.add(ts_ns, row, base_ns):
                self._latest[tf] = model.update(
                    {"timestamp": pd.Timestamp(start, tz="UTC"), **dict(zip(OHLCV_COLUMNS, hrow))}
                )
        self.last_member_probs = {tf: self._latest.get(tf) for tf in self.timeframes}
        rows = [p for p in self.last_member_probs.values() if p is not None]
        if len(rows) < len(self.timeframes):
            return None
        stacked = np.stack([p.to_numpy()[None, :] for p in rows])
        probs, agreement = combine_probabilities(stacked, self.weights, self.method)
        return pd.Series([*probs[0], agreement[0]], index=[*self.class_names, "agreement"], name=ts)

    def reset(self) -> None:
        """Forget live state (members' buffers included)."""
        for model in self.members.values():
            model.reset()
        self._buckets = {}
        self._latest = {}
        self._last = None
        self._base_ns = None
        self.last_member_probs = {}

    def __repr__(self) -> str:
        return f"TimeframeEnsemble({self.timeframes}, method={self.method!r}, weights={self.weights.tolist()})"
