"""OHLCV loading, validation and resampling: the one entry point every layer uses.

The public functions validate once, at the boundary, and return a canonical frame:
float64 columns ``open high low close volume`` on a UTC ``DatetimeIndex`` named
``timestamp`` (bar **open** time), sorted and unique. Nothing is dropped silently;
``repair=True`` sorts and de-duplicates and records what it changed in
``frame.attrs["repairs"]``.
"""

from __future__ import annotations

import logging
import os
import re
import warnings
from typing import Union

import numpy as np
import pandas as pd

from effnet_trading.errors import DataError

__all__ = [
    "OHLCV_COLUMNS",
    "load_ohlcv",
    "symbol_paths",
    "load_symbols",
    "validate_ohlcv",
    "ohlcv_array",
    "infer_interval",
    "parse_timeframe",
    "resample_ohlcv",
    "last_closed_index",
    "time_gaps",
]

_log = logging.getLogger(__name__)

OHLCV_COLUMNS = ("open", "high", "low", "close", "volume")

_ALIASES = {
    "o": "open",
    "op": "open",
    "open_price": "open",
    "h": "high",
    "hi": "high",
    "high_price": "high",
    "l": "low",
    "lo": "low",
    "low_price": "low",
    "c": "close",
    "cl": "close",
    "last": "close",
    "close_price": "close",
    "v": "volume",
    "vol": "volume",
    "volume_base": "volume",
    "base_volume": "volume",
}
_TIME_COLUMNS = ("timestamp", "time", "date", "datetime", "open_time", "ts", "start", "starttime")

OhlcvSource = Union[pd.DataFrame, str, os.PathLike]


def _rows(index: pd.Index, positions: np.ndarray, limit: int = 5) -> str:
    shown = ", ".join(f"#{p} ({index[p]})" for p in positions[:limit])
    more = f" and {len(positions) - limit} more" if len(positions) > limit else ""
    return shown + more


_NUMERIC_DATE = re.compile(r"^\s*(\d{1,2})([/.\-])(\d{1,2})[/.\-](\d{2,4})(.*)$")


def _time_format(rest: str) -> str:
    """strptime format of the time part after a numeric date ('' / ' 13:00' / ' 13:00:05' / 'T13:00')."""
    body = str(rest).strip()
    if not body:
        return ""
    lead = "T" if body.startswith("T") else " "
    body = body.lstrip("T")
    return lead + ("%H:%M:%S" if body.count(":") == 2 else "%H:%M" if body.count(":") == 1 else "%H")


def _numeric_date_format(values: pd.Index, what: str) -> str | None:
    """For dates written ``NN/NN/YYYY [time]``: the one strptime format that fits every row, or None when
    the strings are not in that form. Raises DataError when day-first and month-first both fit."""
    if not len(values) or not _NUMERIC_DATE.match(str(values[0])):
        return None  # ISO-8601 and other forms: pandas reads them unambiguously (and fast)
    text = values.astype(str)
    parts = text.str.extract(_NUMERIC_DATE)
    if not len(parts) or parts.isna().any(axis=None):
        return None
    first, sep, second, year = parts[0].astype(int), parts[1].iloc[0], parts[2].astype(int), parts[3].iloc[0]
    yfmt = "%Y" if len(year) == 4 else "%y"
    tfmt = _time_format(parts[4].iloc[0])
    day_first = bool((first <= 31).all() and (second <= 12).all())
    month_first = bool((first <= 12).all() and (second <= 31).all())
    if day_first and month_first:
        raise DataError(
            f"{what} holds dates like {text[0]!r} that read both day-first and month-first (no day above 12 "
            f"tells them apart); say which: date_format='%d{sep}%m{sep}{yfmt}{tfmt}' (day-first) or "
            f"date_format='%m{sep}%d{sep}{yfmt}{tfmt}' (month-first) in load_ohlcv, or --date-format on the command line."
        )
    if not (day_first or month_first):
        return None
    return (f"%d{sep}%m{sep}{yfmt}" if day_first else f"%m{sep}%d{sep}{yfmt}") + tfmt


def _to_utc_index(
    values, what: str, *, date_format: str | None = None, tz: str | None = None
) -> tuple[pd.DatetimeIndex, bool]:
    """Timestamps (datetime-like, strings, or epoch s/ms/us/ns numbers) -> (UTC DatetimeIndex, assumed_utc).

    Naive timestamps are read in ``tz`` (default UTC, then ``assumed_utc`` is True) and converted
    to UTC. Numeric dates that read both day-first and month-first raise unless ``date_format``
    says which."""
    values = pd.Index(values)
    if isinstance(values, pd.DatetimeIndex):
        idx = values
    elif pd.api.types.is_numeric_dtype(values.dtype) and date_format is None:
        arr = np.asarray(values, dtype="float64")
        if not np.isfinite(arr).all():
            bad = np.flatnonzero(~np.isfinite(arr))
            raise DataError(f"{what} has non-finite epoch values at rows {bad[:5].tolist()}; fix or drop those rows.")
        magnitude = np.nanmedian(np.abs(arr)) if len(arr) else 0.0
        unit = "s" if magnitude < 1e11 else "ms" if magnitude < 1e14 else "us" if magnitude < 1e17 else "ns"
        idx = pd.to_datetime(arr.astype("int64"), unit=unit, utc=True)  # epoch numbers are UTC by definition
    else:
        fmt = date_format if date_format is not None else _numeric_date_format(values, what)
        try:
            idx = pd.DatetimeIndex(pd.to_datetime(values.astype(str) if fmt else values, format=fmt))
        except (ValueError, TypeError) as exc:
            hint = (
                f"check date_format={date_format!r} against a value like {str(values[0])!r}"
                if date_format
                else "use ISO-8601 strings or epoch seconds/ms, or pass date_format= (CLI: --date-format), e.g. '%d/%m/%Y %H:%M'"
            )
            raise DataError(f"could not parse {what} as timestamps ({exc}); {hint}.") from exc
    assumed = False
    if idx.tz is None:
        assumed = tz is None
        try:
            idx = idx.tz_localize(tz or "UTC", ambiguous="raise", nonexistent="raise")
        except Exception as exc:  # unknown zone name, or a DST gap/overlap
            raise DataError(
                f"could not read {what} in time zone {tz!r} ({exc}); use an IANA name like "
                "'Europe/Berlin', or data with UTC offsets."
            ) from exc
    elif tz is not None:
        raise DataError(f"{what} already carries a UTC offset / time zone ({idx.tz}); drop tz={tz!r} (--tz).")
    return pd.DatetimeIndex(idx.tz_convert("UTC"), name="timestamp").as_unit("ns"), assumed


def _normalise_columns(frame: pd.DataFrame) -> pd.DataFrame:
    rename: dict = {}
    for col in frame.columns:
        key = str(col).strip().lower().replace(" ", "_")
        key = _ALIASES.get(key, key)
        if key in OHLCV_COLUMNS:
            clash = [c for c, k in rename.items() if k == key]
            if clash:
                raise DataError(
                    f"columns {clash[0]!r} and {col!r} both map to {key!r}; keep one, e.g. "
                    f"df.drop(columns=[{col!r}]) or rename it."
                )
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


def _extract_index(
    frame: pd.DataFrame, *, date_format: str | None = None, tz: str | None = None
) -> tuple[pd.DataFrame, pd.DatetimeIndex, bool]:
    if isinstance(frame.index, pd.DatetimeIndex):
        return (frame, *_to_utc_index(frame.index, "the index", date_format=date_format, tz=tz))
    lower = {str(c).strip().lower(): c for c in frame.columns}
    if "date" in lower and "time" in lower and not ({"timestamp", "datetime"} & set(lower)):
        # separate date and time-of-day columns: one timestamp is their concatenation
        dcol, tcol = lower["date"], lower["time"]
        text = frame[dcol].astype(str).str.strip() + " " + frame[tcol].astype(str).str.strip()
        idx, assumed = _to_utc_index(text.to_numpy(), f"columns {dcol!r} + {tcol!r}", date_format=date_format, tz=tz)
        return frame.drop(columns=[dcol, tcol]), idx, assumed
    for name in _TIME_COLUMNS:
        if name in lower:
            col = lower[name]
            return (
                frame.drop(columns=[col]),
                *_to_utc_index(frame[col].to_numpy(), f"column {col!r}", date_format=date_format, tz=tz),
            )
    raise DataError(
        "OHLCV input has no DatetimeIndex and no timestamp column "
        f"(looked for {list(_TIME_COLUMNS)}; found {list(frame.columns)[:8]}); set the index with "
        "df.set_index(pd.to_datetime(df['time'], utc=True))."
    )


def validate_ohlcv(
    frame: pd.DataFrame,
    *,
    min_bars: int = 1,
    repair: bool = False,
    name: str = "OHLCV input",
    date_format: str | None = None,
    tz: str | None = None,
) -> pd.DataFrame:
    """Check and canonicalise an OHLCV frame; raise DataError naming rows and the fix.

    date_format: strptime format of string timestamps (needed when dates read both day-first
    and month-first, e.g. '%d/%m/%Y %H:%M'). tz: the zone of naive timestamps (default UTC:
    ``result.attrs["assumed_utc"]`` is then True). Separate ``date`` and ``time`` columns are
    combined.

    ``repair=True`` sorts the index and drops duplicate timestamps (keeping the first),
    recording the changes in ``result.attrs["repairs"]`` and warning once. Every other
    defect (NaN/inf, high/low inconsistency, negative volume) always raises.
    """
    if not isinstance(frame, pd.DataFrame):
        raise DataError(
            f"{name} must be a pandas DataFrame, got {type(frame).__name__}; load CSVs with load_ohlcv(path)."
        )
    frame, index, assumed_utc = _extract_index(frame, date_format=date_format, tz=tz)
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
    out.attrs["assumed_utc"] = assumed_utc
    return out


def _sniff_csv(path: str, sep: str | None, decimal: str | None) -> tuple[str, str]:
    """The field separator and decimal mark of a CSV, from its first lines; DataError when unclear."""
    import gzip

    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rt", errors="replace") as fh:
            lines = [fh.readline() for _ in range(6)]
    except OSError as exc:
        raise DataError(f"could not read {path!r} ({exc}).") from exc
    lines = [ln.rstrip("\r\n") for ln in lines if ln.strip()]
    if not lines:
        raise DataError(f"{path!r} is empty; an OHLCV CSV needs a header row and one row per bar.")
    header = lines[0]
    if sep is None:
        counts = {c: header.count(c) for c in (",", ";", "\t", "|")}
        found = [c for c, n in counts.items() if n >= 4]  # five OHLCV fields at least: >= 4 separators
        if len(found) == 1:
            sep = found[0]
        elif not found:
            sep = ","  # let pandas report what it sees
        else:
            raise DataError(
                f"cannot tell the field separator of {path!r}: its header has {', '.join(repr(c) for c in found)}; "
                "pass sep=';' (or ',') to load_ohlcv."
            )
    if decimal is None:
        decimal = "."
        if sep != ",":
            body = [f.strip().strip('"') for ln in lines[1:] for f in ln.split(sep)]
            if any(re.fullmatch(r"-?\d+,\d+", f) for f in body):
                decimal = ","
    return sep, decimal


def load_ohlcv(
    source: OhlcvSource,
    *,
    min_bars: int = 1,
    repair: bool = False,
    date_format: str | None = None,
    tz: str | None = None,
    sep: str | None = None,
    decimal: str | None = None,
) -> pd.DataFrame:
    """Load a DataFrame or CSV path (``.csv``/``.csv.gz``; timestamp column auto-detected) and validate it.

    The field separator (',', ';', tab, '|') and a decimal comma are detected from the first lines
    (or given with ``sep``/``decimal``). date_format and tz: see ``validate_ohlcv``. Naive
    timestamps read as UTC are said once, in a log line (logger ``effnet_trading.imaging.data``).
    """
    if isinstance(source, pd.DataFrame):
        out = validate_ohlcv(source, min_bars=min_bars, repair=repair, date_format=date_format, tz=tz)
        what = "OHLCV frame"
    else:
        path = os.fspath(source)
        if not os.path.exists(path):
            raise DataError(
                f"OHLCV file {path!r} does not exist; check the path (sample data: effnet-trading sample-data)."
            )
        sep, decimal = _sniff_csv(path, sep, decimal)
        try:
            raw = pd.read_csv(path, sep=sep, decimal=decimal)
        except Exception as exc:  # pandas raises many types for unreadable files
            raise DataError(f"could not read {path!r} as CSV ({exc}).") from exc
        what = f"OHLCV file {os.path.basename(path)!r}"
        if raw.shape[1] == 1 and len(str(raw.columns[0])) > 20:
            raise DataError(
                f"{what} reads as one column ({str(raw.columns[0])[:60]!r}); its field separator is not "
                f"{sep!r}: pass sep=';' (or the one it uses) to load_ohlcv."
            )
        out = validate_ohlcv(raw, min_bars=min_bars, repair=repair, name=what, date_format=date_format, tz=tz)
    if out.attrs.get("assumed_utc"):
        _log.warning(
            "%s has timestamps without a time zone: read as UTC (pass tz=..., CLI --tz, if they are local time).", what
        )
    return out


def _symbol_of(path: str) -> str:
    name = os.path.basename(path)
    for ext in (".csv.gz", ".csv"):
        if name.lower().endswith(ext):
            return name[: -len(ext)]
    return os.path.splitext(name)[0]


def symbol_paths(sources) -> dict[str, str]:
    """``{symbol: CSV path}`` from a CSV path, a folder of CSVs (``*.csv``, ``*.csv.gz``, sorted) or a
    list of either; a symbol is the file's stem (``btcusdt_5m.csv.gz`` -> ``btcusdt_5m``)."""
    items = [sources] if isinstance(sources, (str, os.PathLike)) else list(sources)
    out: dict[str, str] = {}
    for item in items:
        path = os.fspath(item)
        if os.path.isdir(path):
            found = sorted(os.path.join(path, f) for f in os.listdir(path) if f.lower().endswith((".csv", ".csv.gz")))
            if not found:
                raise DataError(f"folder {path!r} holds no .csv or .csv.gz files; pass OHLCV CSVs or a folder of them.")
        elif os.path.isfile(path):
            found = [path]
        else:
            raise DataError(f"{path!r} does not exist; pass an OHLCV CSV, a folder of CSVs, or several of either.")
        for f in found:
            symbol = _symbol_of(f)
            if symbol in out:
                raise DataError(
                    f"two files give symbol {symbol!r} ({out[symbol]!r} and {f!r}); a symbol is the file's stem: rename one."
                )
            out[symbol] = f
    return out


def load_symbols(sources, **kwargs) -> dict[str, pd.DataFrame]:
    """``{symbol: canonical OHLCV frame}`` for ``symbol_paths(sources)``; kwargs go to ``load_ohlcv``."""
    return {symbol: load_ohlcv(path, **kwargs) for symbol, path in symbol_paths(sources).items()}


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


def time_gaps(index: pd.DatetimeIndex, *, max_bars: float = 3.0, interval=None) -> dict:
    """Spacings longer than ``max_bars`` bar intervals (data missing, a market closed): reported, never bridged.

    Returns ``{"interval", "threshold", "count", "largest", "largest_at", "missing_bars"}`` (JSON-able):
    the bar size (most common spacing unless given), the gap threshold, how many gaps, the longest
    one and the bar it ends at, and the bars those gaps would hold at the bar size.
    """
    step = infer_interval(index) if interval is None else parse_timeframe(interval)
    out = {
        "interval": str(step),
        "threshold": str(step * max_bars),
        "count": 0,
        "largest": None,
        "largest_at": None,
        "missing_bars": 0,
    }
    if len(index) < 2:
        return out
    diffs = np.diff(index.as_unit("ns").asi8)
    big = np.flatnonzero(diffs > step.value * max_bars)
    if len(big):
        k = big[np.argmax(diffs[big])]
        out.update(
            count=int(len(big)),
            largest=str(pd.Timedelta(int(diffs[k]), unit="ns")),
            largest_at=str(index[k + 1]),
            missing_bars=int(np.sum(diffs[big] // step.value - 1)),
        )
    return out


def parse_timeframe(tf: str | pd.Timedelta) -> pd.Timedelta:
    """'250ms', '1s', '5m', '15m', '1h', '4h', '1d', '1w' (or a Timedelta) -> Timedelta."""
    if isinstance(tf, pd.Timedelta):
        return tf
    text = str(tf).strip().lower()
    units = {"ms": "ms", "s": "s", "m": "min", "min": "min", "h": "h", "d": "D", "w": "W"}
    num = text.rstrip("abcdefghijklmnopqrstuvwxyz")
    unit = text[len(num) :]
    if not num.isdigit() or unit not in units:
        raise DataError(f"timeframe {tf!r} not understood; use forms like '250ms', '5m', '15m', '1h', '1d'.")
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


def last_closed_index(higher_index: pd.DatetimeIndex, higher_step, decision_times: pd.DatetimeIndex) -> np.ndarray:
    """For each decision time (the *end* of a base bar), the position in ``higher_index`` of the
    last higher-timeframe bar that has closed by then (-1 if none). This is the no-look-ahead rule."""
    step = parse_timeframe(higher_step)
    ends = (higher_index + step).as_unit("ns").asi8
    return np.searchsorted(ends, decision_times.as_unit("ns").asi8, side="right") - 1
