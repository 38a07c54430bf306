"""OHLCV loading, validation and resampling: the one entry point every layer uses.

The public functions validate once, at the boundary, and return a canonical frame:
float64 columns ``open high low close volume`` on a UTC ``DatetimeIndex`` named
``timestamp`` (bar **open** time), sorted and unique. Nothing is dropped silently;
``repair=True`` sorts and de-duplicates and records what it changed in
``frame.attrs["repairs"]``.
"""
from __future__ import annotations

import os
import warnings
from typing import Union

import numpy as np
import pandas as pd

from effnet_trading.errors import DataError

__all__ = [
    "OHLCV_COLUMNS",
    "load_ohlcv",
    "validate_ohlcv",
    "ohlcv_array",
    "infer_interval",
    "parse_timeframe",
    "resample_ohlcv",
    "last_closed_index",
]

OHLCV_COLUMNS = ("open", "high", "low", "close", "volume")

_ALIASES = {
    "o": "open", "op": "open", "open_price": "open",
    "h": "high", "hi": "high", "high_price": "high",
    "l": "low", "lo": "low", "low_price": "low",
    "c": "close", "cl": "close", "last": "close", "close_price": "close",
    "v": "volume", "vol": "volume", "volume_base": "volume", "base_volume": "volume",
}
_TIME_COLUMNS = ("timestamp", "time", "date", "datetime", "open_time", "ts", "start", "starttime")

OhlcvSource = Union[pd.DataFrame, str, os.PathLike]


def _rows(index: pd.Index, positions: np.ndarray, limit: int = 5) -> str:
    shown = ", ".join(f"#{p} ({index[p]})" for p in positions[:limit])
    more = f" and {len(positions) - limit} more" if len(positions) > limit else ""
    return shown + more


def _to_utc_index(values, what: str) -> pd.DatetimeIndex:
    """Timestamps (datetime-like, ISO strings, or epoch s/ms/us/ns numbers) -> UTC DatetimeIndex."""
    values = pd.Index(values)
    if isinstance(values, pd.DatetimeIndex):
        idx = values
    elif pd.api.types.is_numeric_dtype(values.dtype):
        arr = np.asarray(values, dtype="float64")
        if not np.isfinite(arr).all():
            bad = np.flatnonzero(~np.isfinite(arr))
            raise DataError(f"{what} has non-finite epoch values at rows {bad[:5].tolist()}; fix or drop those rows.")
        magnitude = np.nanmedian(np.abs(arr)) if len(arr) else 0.0
        unit = "s" if magnitude < 1e11 else "ms" if magnitude < 1e14 else "us" if magnitude < 1e17 else "ns"
        idx = pd.to_datetime(arr.astype("int64"), unit=unit, utc=True)
    else:
        try:
            idx = pd.to_datetime(values, utc=True)
        except (ValueError, TypeError) as exc:
            raise DataError(
                f"could not parse {what} as timestamps ({exc}); use ISO-8601 strings or epoch seconds/ms."
            ) from exc
    if idx.tz is None:
        idx = idx.tz_localize("UTC")
    else:
        idx = idx.tz_convert("UTC")
    return pd.DatetimeIndex(idx, name="timestamp").as_unit("ns")


def _normalise_columns(frame: pd.DataFrame) -> pd.DataFrame:
    rename = {}
    for col in frame.columns:
        key = str(col).strip().lower().replace(" ", "_")
        key = _ALIASES.get(key, key)
        if key in OHLCV_COLUMNS and key not in rename.values():
            rename[col] = key
    out = frame.rename(columns=rename)
    missing = [c for c in OHLCV_COLUMNS if c not in out.columns]
    if missing:
        raise DataError(
            f"OHLCV input is missing column(s) {missing}; found {list(frame.columns)}. "
            "Provide open, high, low, close, volume (case-insensitive; aliases like 'Open', 'vol' work). "
            "If you have no volume, add a column of ones."
        )
    return out


def _extract_index(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DatetimeIndex]:
    if isinstance(frame.index, pd.DatetimeIndex):
        return frame, _to_utc_index(frame.index, "the index")
    lower = {str(c).strip().lower(): c for c in frame.columns}
    for name in _TIME_COLUMNS:
        if name in lower:
            col = lower[name]
            return frame.drop(columns=[col]), _to_utc_index(frame[col].to_numpy(), f"column {col!r}")
    raise DataError(
        "OHLCV input has no DatetimeIndex and no timestamp column "
        f"(looked for {list(_TIME_COLUMNS)}); set the index with df.set_index(pd.to_datetime(df['time'], utc=True))."
    )


def validate_ohlcv(
    frame: pd.DataFrame, *, min_bars: int = 1, repair: bool = False, name: str = "OHLCV input"
) -> pd.DataFrame:
    """Check and canonicalise an OHLCV frame; raise DataError naming rows and the fix.

    ``repair=True`` sorts the index and drops duplicate timestamps (keeping the first),
    recording the changes in ``result.attrs["repairs"]`` and warning once. Every other
    defect (NaN/inf, high/low inconsistency, negative volume) always raises.
    """
    if not isinstance(frame, pd.DataFrame):
        raise DataError(f"{name} must be a pandas DataFrame, got {type(frame).__name__}; load CSVs with load_ohlcv(path).")
    frame, index = _extract_index(frame)
    frame = _normalise_columns(frame)
    try:
        values = frame.loc[:, list(OHLCV_COLUMNS)].to_numpy(dtype="float64", copy=True)
    except (ValueError, TypeError) as exc:
        raise DataError(f"{name} has non-numeric OHLCV values ({exc}); convert with pd.to_numeric.") from exc
    out = pd.DataFrame(values, index=index, columns=list(OHLCV_COLUMNS))
    repairs: list[str] = []

    if not out.index.is_monotonic_increasing:
        if not repair:
            pos = np.flatnonzero(np.diff(out.index.as_unit("ns").asi8) < 0) + 1
            raise DataError(
                f"{name} index is not sorted: rows {_rows(out.index, pos)} come before earlier timestamps. "
                "Sort it with df.sort_index(), or pass repair=True."
            )
        out = out.sort_index(kind="stable")
        repairs.append("sorted the index")
    dup = out.index.duplicated(keep="first")
    if dup.any():
        pos = np.flatnonzero(dup)
        if not repair:
            raise DataError(
                f"{name} has {len(pos)} duplicate timestamp(s): rows {_rows(out.index, pos)}. "
                "Drop them with df[~df.index.duplicated()], or pass repair=True (keeps the first)."
            )
        repairs.append(f"dropped {len(pos)} duplicate timestamp(s) (kept the first): rows {_rows(out.index, pos)}")
        out = out[~dup]

    arr = out.to_numpy()
    finite = np.isfinite(arr)
    if not finite.all():
        r, c = np.nonzero(~finite)
        cols = sorted({OHLCV_COLUMNS[i] for i in c})
        raise DataError(
            f"{name} has NaN/inf in column(s) {cols} at rows {_rows(out.index, np.unique(r))}. "
            "Fill or drop those bars explicitly (e.g. df.dropna()) before rendering."
        )
    o, h, lo, cl, v = arr.T
    if (arr[:, :4] <= 0).any():
        pos = np.flatnonzero((arr[:, :4] <= 0).any(axis=1))
        raise DataError(f"{name} has non-positive prices at rows {_rows(out.index, pos)}; prices must be > 0.")
    bad_high = h < np.maximum(o, cl)
    bad_low = lo > np.minimum(o, cl)
    if bad_high.any() or bad_low.any():
        pos = np.flatnonzero(bad_high | bad_low)
        raise DataError(
            f"{name} has high < max(open, close) or low > min(open, close) at rows {_rows(out.index, pos)}. "
            "Check the column order (open, high, low, close) or fix those bars."
        )
    if (v < 0).any():
        pos = np.flatnonzero(v < 0)
        raise DataError(f"{name} has negative volume at rows {_rows(out.index, pos)}; volume must be >= 0.")
    if len(out) < min_bars:
        raise DataError(
            f"{name} has {len(out)} bars but at least {min_bars} are needed (the image window); "
            "load a longer history or use a smaller window."
        )
    if repairs:
        warnings.warn(f"{name} repaired: " + "; ".join(repairs), stacklevel=2)
    out.attrs["repairs"] = repairs
    return out


def load_ohlcv(source: OhlcvSource, *, min_bars: int = 1, repair: bool = False) -> pd.DataFrame:
    """Load a DataFrame or CSV path (``.csv``/``.csv.gz``; timestamp column auto-detected) and validate it."""
    if isinstance(source, pd.DataFrame):
        return validate_ohlcv(source, min_bars=min_bars, repair=repair)
    path = os.fspath(source)
    if not os.path.exists(path):
        raise DataError(f"OHLCV file {path!r} does not exist; check the path (sample data: effnet-trading sample-data).")
    try:
        raw = pd.read_csv(path)
    except Exception as exc:  # pandas raises many types for unreadable files
        raise DataError(f"could not read {path!r} as CSV ({exc}).") from exc
    return validate_ohlcv(raw, min_bars=min_bars, repair=repair, name=f"OHLCV file {os.path.basename(path)!r}")


def ohlcv_array(frame: pd.DataFrame) -> np.ndarray:
    """Canonical frame -> ``(T, 5)`` float64 array in column order open, high, low, close, volume."""
    return np.ascontiguousarray(frame.loc[:, list(OHLCV_COLUMNS)].to_numpy(dtype="float64"))


def infer_interval(index: pd.DatetimeIndex) -> pd.Timedelta:
    """The bar size: the most common spacing of the index (robust to gaps)."""
    if len(index) < 2:
        raise DataError("need at least 2 bars to infer the bar interval; pass it explicitly.")
    diffs = np.diff(index.as_unit("ns").asi8)
    values, counts = np.unique(diffs, return_counts=True)
    return pd.Timedelta(int(values[np.argmax(counts)]), unit="ns")


def parse_timeframe(tf: str | pd.Timedelta) -> pd.Timedelta:
    """'5m', '15m', '1h', '4h', '1d', '1w' (or a Timedelta) -> Timedelta."""
    if isinstance(tf, pd.Timedelta):
        return tf
    text = str(tf).strip().lower()
    units = {"s": "s", "m": "min", "min": "min", "h": "h", "d": "D", "w": "W"}
    num = text.rstrip("abcdefghijklmnopqrstuvwxyz")
    unit = text[len(num):]
    if not num.isdigit() or unit not in units:
        raise DataError(f"timeframe {tf!r} not understood; use forms like '5m', '15m', '1h', '4h', '1d'.")
    return pd.Timedelta(int(num), unit=units[unit])


def resample_ohlcv(frame: pd.DataFrame, timeframe: str | pd.Timedelta, *, base_interval=None) -> pd.DataFrame:
    """Aggregate to a higher timeframe (first/max/min/last/sum), labelled by bar open time.

    Adds a boolean column ``closed``: True where the source data reaches the end of the
    higher bar (the last bar of a series may be still forming). Empty buckets (gaps)
    produce no row; nothing is forward-filled.
    """
    step = parse_timeframe(timeframe)
    base = infer_interval(frame.index) if base_interval is None else parse_timeframe(base_interval)
    if step < base or step % base != pd.Timedelta(0):
        raise DataError(f"cannot resample {base} bars to {step}: the target must be a multiple of the bar size.")
    grouped = frame.resample(step, label="left", closed="left", origin="epoch")
    out = grouped.agg({"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"})
    counts = grouped["close"].count()
    out = out[counts > 0]
    last_end = frame.index[-1] + base
    out["closed"] = (out.index + step) <= last_end
    return out


def last_closed_index(
    higher_index: pd.DatetimeIndex, higher_step, decision_times: pd.DatetimeIndex
) -> np.ndarray:
    """For each decision time (the *end* of a base bar), the position in ``higher_index`` of the
    last higher-timeframe bar that has closed by then (-1 if none). This is the no-look-ahead rule."""
    step = parse_timeframe(higher_step)
    ends = (higher_index + step).as_unit("ns").asi8
    return np.searchsorted(ends, decision_times.as_unit("ns").asi8, side="right") - 1
