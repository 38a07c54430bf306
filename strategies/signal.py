"""SignalModel: OHLCV bars -> class probabilities per bar, batched (history) or one bar at a time (live).

Both paths render with ``effnet_trading.imaging`` and call the same ``predict``, so a bar
scored live gets the same probabilities as the same bar scored in a backtest.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from effnet_trading.errors import DataError, SpecError
from effnet_trading.imaging import (
    MODEL_INPUT_DTYPE as IMAGE_DTYPE,
)
from effnet_trading.imaging import (
    OHLCV_COLUMNS,
    iter_render,
    parse_timeframe,
    render,
    validate_ohlcv,
    warmup,
)

__all__ = ["SignalModel", "parse_bar", "canonical_ohlcv", "bars_needed", "require_history"]


def canonical_ohlcv(ohlcv) -> pd.DataFrame:
    """The validated OHLCV frame (``imaging.validate_ohlcv``): validate once at the boundary; a
    frame that is already canonical (validated, lower-case columns) passes through unchanged."""
    if isinstance(ohlcv, pd.DataFrame) and list(ohlcv.columns[:5]) == list(OHLCV_COLUMNS) and "repairs" in ohlcv.attrs:
        return ohlcv
    return validate_ohlcv(ohlcv)


def parse_bar(bar) -> tuple[pd.Timestamp, np.ndarray]:
    """One closed bar -> (UTC timestamp, ``(5,)`` float64 open, high, low, close, volume).

    Accepts a Mapping/Series with a ``timestamp`` key (or a Series whose ``.name`` is the
    timestamp) plus open/high/low/close/volume, or a 1-row OHLCV DataFrame.
    """
    if isinstance(bar, pd.DataFrame):
        if len(bar) != 1:
            raise DataError(
                f"update() takes one bar; got a DataFrame with {len(bar)} rows. Use predict_proba() for many bars."
            )
        frame = validate_ohlcv(bar, name="bar")
        return frame.index[0], frame.to_numpy()[0]
    if isinstance(bar, pd.Series):
        data = {str(k).lower(): v for k, v in bar.items()}
        ts = data.pop("timestamp", bar.name)
    elif isinstance(bar, Mapping):
        data = {str(k).lower(): v for k, v in bar.items()}
        ts = data.pop("timestamp", None)
    else:
        raise DataError(
            f"a bar must be a Mapping, a pandas Series or a 1-row DataFrame, got {type(bar).__name__}; "
            "e.g. {'timestamp': ..., 'open': .., 'high': .., 'low': .., 'close': .., 'volume': ..}."
        )
    if ts is None:
        raise DataError(
            "bar has no timestamp: add a 'timestamp' key (bar open time, UTC) or pass a Series named by it."
        )
    missing = [c for c in OHLCV_COLUMNS if c not in data]
    if missing:
        raise DataError(f"bar is missing field(s) {missing}; a bar needs open, high, low, close, volume and timestamp.")
    try:
        row = np.array([float(data[c]) for c in OHLCV_COLUMNS])
        ts = pd.Timestamp(ts)
    except (TypeError, ValueError) as exc:
        raise DataError(f"bar at {ts!r} has a non-numeric field or an unreadable timestamp ({exc}).") from exc
    ts = ts.tz_localize("UTC") if ts.tz is None else ts.tz_convert("UTC")
    _check_row(row, ts)
    return ts, row


def _check_row(row: np.ndarray, ts) -> None:
    """The per-bar subset of ``validate_ohlcv``'s checks (fast path for live bars)."""
    o, h, lo, c, v = row
    if not np.isfinite(row).all():
        raise DataError(f"bar at {ts} has NaN/inf values {row.tolist()}; only pass complete, closed bars.")
    if min(o, h, lo, c) <= 0:
        raise DataError(f"bar at {ts} has non-positive prices {row[:4].tolist()}; prices must be > 0.")
    if h < max(o, c) or lo > min(o, c):
        raise DataError(
            f"bar at {ts} has high < max(open, close) or low > min(open, close): {row[:4].tolist()}; "
            "check the field order (open, high, low, close)."
        )
    if v < 0:
        raise DataError(f"bar at {ts} has negative volume {v}; volume must be >= 0.")


class _Ring:
    """Bounded buffer of the last ``size`` bars: timestamps (int64 ns) and ``(size, 5)`` float64."""

    def __init__(self, size: int):
        self.size = int(size)
        self.times = np.empty(self.size, dtype=np.int64)
        self.bars = np.empty((self.size, 5), dtype=np.float64)
        self.count = 0  # bars ever pushed

    def push(self, ts: int, row: np.ndarray) -> None:
        i = self.count % self.size
        self.times[i] = ts
        self.bars[i] = row
        self.count += 1

    def __len__(self) -> int:
        return min(self.count, self.size)

    def ordered(self) -> tuple[np.ndarray, np.ndarray]:
        n = len(self)
        if self.count <= self.size:
            return self.times[:n], self.bars[:n]
        i = self.count % self.size
        return np.concatenate([self.times[i:], self.times[:i]]), np.concatenate([self.bars[i:], self.bars[:i]])

    def resized(self, size: int) -> _Ring:
        out = _Ring(max(size, 1))
        times, bars = self.ordered()
        for t, b in zip(times[-out.size :], bars[-out.size :]):
            out.push(int(t), b)
        return out

    @property
    def last_time(self) -> int | None:
        return None if self.count == 0 else int(self.times[(self.count - 1) % self.size])


class _HigherBars:
    """One timeframe member's bars, resampled one base bar at a time (``update()``'s incremental path).

    Buckets are ``imaging.resample_ohlcv``'s: ``[k * step, (k + 1) * step)`` from the epoch, labelled
    by open time, first/max/min/last/sum, empty buckets skipped. The last ``keep`` completed bars
    are kept plus the forming one, which counts as closed once its end is at or before the decision
    time (end of the newest base bar), as in ``imaging.last_closed_index``. Each base bar costs
    O(1), whatever the timeframe, instead of resampling the whole buffer.
    """

    def __init__(self, spec, step_ns: int):
        self.spec = spec.replace(timeframe=None)  # renders from already-resampled bars
        self.step = int(step_ns)
        self.done = _Ring(spec.history + 1)  # completed bars
        self.label: int | None = None  # open time (ns) of the forming bar
        self.bar = np.zeros(5)
        self.count = 0  # completed bars ever

    def push(self, ts_ns: int, row: np.ndarray) -> None:
        label = ts_ns - ts_ns % self.step
        if label == self.label:
            b = self.bar
            b[1] = max(b[1], row[1])
            b[2] = min(b[2], row[2])
            b[3] = row[3]
            b[4] += row[4]
            return
        if self.label is not None:
            self.done.push(self.label, self.bar)
            self.count += 1
        self.label, self.bar = label, np.array(row, dtype=np.float64)

    def closed(self, decision_ns: int) -> np.ndarray:
        """``(n, 5)`` the closed bars at the decision time, oldest first (the last ``spec.history + 1`` at most)."""
        bars = self.done.ordered()[1]
        if self.label is not None and self.label + self.step <= decision_ns:
            bars = np.concatenate([bars, self.bar[None, :]])
        return bars

    def n_closed(self, decision_ns: int) -> int:
        return self.count + int(self.label is not None and self.label + self.step <= decision_ns)


class SignalModel:
    """Scores OHLCV bars with an image model: ``predict_proba`` (history) and ``update`` (live).

    model: a model folder path (loaded as ``Predictor``), a ``Predictor``/``FailoverPredictor``,
    or any object with ``predict(images, closes=None)``, ``spec``, ``class_names``, ``input_shape``.
    chunk: images rendered and scored per step of ``predict_proba`` (memory stays flat).
    base_interval: the input bar size (e.g. "5m"); only needed to read ``warmup``/``history``
    of timeframe specs before any data has been seen.
    """

    def __init__(self, model: Any, *, chunk: int = 2048, name: str | None = None, base_interval=None):
        if isinstance(model, (str, os.PathLike)):
            from effnet_trading.model_zoo.runtime import Predictor

            model = Predictor(model)
        missing = [a for a in ("predict", "spec", "class_names", "input_shape") if not hasattr(model, a)]
        if missing:
            raise SpecError(
                f"SignalModel needs a model folder path, a Predictor, or an object with predict(images, closes=None), "
                f"spec, class_names and input_shape; {type(model).__name__} lacks {missing}."
            )
        if int(chunk) < 1:
            raise SpecError(f"chunk={chunk} must be >= 1 images per step.")
        self.model = model
        self.spec = model.spec
        self.class_names: tuple[str, ...] = tuple(model.class_names)
        self.chunk = int(chunk)
        card = getattr(model, "card", None)
        self.name = name or getattr(card, "name", None) or getattr(model, "name", None) or type(model).__name__
        self._base = None if base_interval is None else parse_timeframe(base_interval)
        self._ring: _Ring | None = None
        self._higher: list[_HigherBars | None] | None = None  # per member: incremental resample (timeframe specs)
        self._pending: tuple[int, np.ndarray] | None = None
        self._ready = False  # once a bar was scoreable, every later one is (the buffer keeps enough)
        self._class_index: pd.Index | None = None

    # -- sizes ---------------------------------------------------------------------------
    def _ratios(self) -> list[int]:
        """Higher-bar size / base-bar size for each member spec (1 for specs without a timeframe)."""
        out = []
        for s in self.spec.specs:
            if s.timeframe is None:
                out.append(1)
                continue
            if self._base is None:
                raise SpecError(
                    f"spec {s.kind!r} uses timeframe {s.timeframe!r}: warmup/history depend on the input bar size; "
                    "pass SignalModel(..., base_interval='5m') or feed data first."
                )
            out.append(max(1, int(parse_timeframe(s.timeframe) // self._base)))
        return out

    @property
    def warmup(self) -> int:
        """Bars before the first score (index of the first scored bar); worst case over
        higher-bar alignment for timeframe specs."""
        return max(s.history * r - 1 for s, r in zip(self.spec.specs, self._ratios()))

    @property
    def history(self) -> int:
        """Bars the incremental buffer keeps: the window plus lookback margin (returns, moving
        average) and, for timeframe specs, a whole extra higher bar so that a partially
        covered first higher bar never enters a window."""
        need = 0
        for s, r in zip(self.spec.specs, self._ratios()):
            bars = s.history + 1  # the spec's own look-back (window, MA, returns) plus one bar of margin
            need = max(need, bars * r + (r - 1))
        return need

    # -- batch ---------------------------------------------------------------------------
    def _closes(self, arr: np.ndarray, ends: np.ndarray) -> np.ndarray:
        """``(N, L)`` close windows ending at each end (L = spec window), for rule-based fallbacks."""
        w = self.spec.window
        closes = arr[:, 3]
        idx = ends[:, None] + np.arange(-w + 1, 1)[None, :]
        return closes[np.clip(idx, 0, len(closes) - 1)]

    def _predict(self, images: np.ndarray, closes: np.ndarray) -> np.ndarray:
        probs = np.asarray(self.model.predict(images, closes=closes), dtype=np.float64)
        if probs.shape != (len(images), len(self.class_names)):
            raise SpecError(
                f"model {self.name!r} returned shape {probs.shape}; expected ({len(images)}, {len(self.class_names)}) "
                f"probabilities for classes {list(self.class_names)}."
            )
        return probs

    def predict_proba(self, ohlcv) -> pd.DataFrame:
        """Probabilities for every bar: DataFrame (index = input index, columns = class names),
        NaN during warm-up. Renders and scores in chunks of ``chunk`` images."""
        frame = canonical_ohlcv(ohlcv)
        if len(frame) >= 2 and self._base is None and any(s.timeframe for s in self.spec.specs):
            from effnet_trading.imaging import infer_interval

            self._base = infer_interval(frame.index)
        out = np.full((len(frame), len(self.class_names)), np.nan)
        arr = frame.to_numpy()
        if len(frame) >= 2:  # a single bar is never scoreable (and has no bar size to resample by)
            for ends, images in iter_render(self.spec, frame, chunk=self.chunk, dtype=IMAGE_DTYPE):
                out[ends] = self._predict(images, self._closes(arr, ends))
        return pd.DataFrame(out, index=frame.index, columns=list(self.class_names))

    # -- incremental ---------------------------------------------------------------------
    def _needs_base(self) -> bool:
        return any(s.timeframe is not None for s in self.spec.specs)

    def update(self, bar) -> pd.Series | None:
        """Score one new **closed** bar; None during warm-up. Same numbers as ``predict_proba``."""
        ts, row = parse_bar(bar)
        ts_ns = int(ts.as_unit("ns").value)
        last = self._ring.last_time if self._ring is not None else (self._pending[0] if self._pending else None)
        if last is not None and ts_ns <= last:
            raise DataError(
                f"bar timestamp {ts} is not after the previous bar {pd.Timestamp(last, tz='UTC')}; "
                "update() takes closed bars in increasing time order (call reset() to start over)."
            )
        if self._needs_base():
            if self._ring is None and self._pending is None and self._base is None:
                self._pending = (ts_ns, row)  # the buffer size depends on the bar size: wait for bar 2
                return None
            step = pd.Timedelta(ts_ns - last, unit="ns") if last is not None else None
            if step is not None and (self._base is None or step < self._base):
                self._base = step  # a gap between the first bars overstated the bar size: grow the buffer
                if self._ring is not None:
                    self._ring = self._ring.resized(self.history)
                    self._higher = None  # rebuilt from the buffer below
        if self._ring is None:
            self._ring = _Ring(self.history)
            if self._pending is not None:
                self._ring.push(*self._pending)
                self._pending = None
        self._ring.push(ts_ns, row)
        if self._needs_base():
            self._push_higher(ts_ns, row)
        return self._score_last()

    def _push_higher(self, ts_ns: int, row: np.ndarray) -> None:
        """Add the new bar to every timeframe member's incremental bars (built from the buffer when missing)."""
        if self._higher is None:
            self._higher = [
                None if s.timeframe is None else _HigherBars(s, parse_timeframe(s.timeframe).value)
                for s in self.spec.specs
            ]
            assert self._ring is not None  # update() pushed this bar into the ring first
            times, bars = self._ring.ordered()
            for t, b in zip(times[:-1], bars[:-1]):
                for h in self._higher:
                    if h is not None:
                        h.push(int(t), b)
        for h in self._higher:
            if h is not None:
                h.push(ts_ns, row)

    def _render_incremental(self, times: np.ndarray, bars: np.ndarray) -> np.ndarray | None:
        """The image of the newest bar from the members' incremental bars; None while a member lacks history."""
        # _score_last calls this after _push_higher, which needs (and built) the base interval and members
        assert self._base is not None and self._higher is not None
        decision = int(times[-1]) + self._base.value  # the end of the newest bar
        parts = []
        for s, h in zip(self.spec.specs, self._higher):
            if h is None:
                if len(bars) < s.history:
                    return None
                parts.append(render(s, bars, np.array([len(bars) - 1]), dtype=IMAGE_DTYPE))
                continue
            if h.n_closed(decision) < s.history:
                return None
            closed = h.closed(decision)
            parts.append(render(h.spec, closed, np.array([len(closed) - 1]), dtype=IMAGE_DTYPE))
        return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)

    def _render_plain(self, bars: np.ndarray) -> np.ndarray | None:
        """The image of the newest bar for specs without a timeframe (rendered from the buffer array)."""
        n = len(bars)
        if not self._ready:
            try:
                self._ready = n >= 2 and warmup(self.spec, bars) <= n - 1
            except DataError:
                return None
            if not self._ready:
                return None
        return render(self.spec, bars, np.array([n - 1], dtype=np.int64), dtype=IMAGE_DTYPE)

    def _score_last(self) -> pd.Series | None:
        assert self._ring is not None  # update() pushed this bar into the ring first
        times, bars = self._ring.ordered()
        n = len(bars)
        if self._needs_base():
            images = self._render_incremental(times, bars) if n >= 2 else None
        else:
            images = self._render_plain(bars)
        if images is None:
            return None
        probs = self._predict(images, self._closes(bars, np.array([n - 1], dtype=np.int64)))[0]
        if self._class_index is None:
            self._class_index = pd.Index(list(self.class_names))  # one Index for every row (cheaper rows)
        return pd.Series(probs, index=self._class_index, name=pd.Timestamp(int(times[-1]), tz="UTC"))

    def reset(self) -> None:
        """Forget the incremental buffer (start a new live session)."""
        self._ring = None
        self._higher = None
        self._pending = None
        self._ready = False

    def __repr__(self) -> str:
        return f"SignalModel({self.name!r}, spec={self.spec.kind}, classes={list(self.class_names)})"


def bars_needed(scorer, ohlcv) -> int:
    """Bars ``scorer`` (a SignalModel or TimeframeEnsemble) needs for its first score on ``ohlcv``'s bar size."""
    frame = canonical_ohlcv(ohlcv)
    if len(frame) >= 2:
        from effnet_trading.imaging import infer_interval

        step = infer_interval(frame.index)
        if hasattr(scorer, "members") and getattr(scorer, "base", "") is None:
            scorer.base = step  # what predict_proba infers too
        elif getattr(scorer, "_base", "") is None and any(s.timeframe for s in scorer.spec.specs):
            scorer._base = step
    try:
        return int(scorer.warmup) + 1
    except (SpecError, AttributeError):
        return 2  # the bar size is unknown before two bars: at least that many


def require_history(scorer, ohlcv, *, what: str = "the data") -> None:
    """Raise DataError when ``ohlcv`` is too short for a single score: a backtest of it would be all warm-up."""
    n, need = len(ohlcv), bars_needed(scorer, ohlcv)
    if n < need:
        name = getattr(scorer, "name", None) or type(scorer).__name__
        window = getattr(getattr(scorer, "spec", None), "window", None)
        detail = f" (image window {window} bars plus look-back)" if window else ""
        raise DataError(
            f"{what} has {n} bars but model {name!r} needs at least {need}{detail} before its first score; "
            f"load a longer history (at least {need} bars, more to have anything to trade)."
        )
