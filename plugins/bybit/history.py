"""Kline history download: paginated, closed bars only (by the exchange's clock), resumable, validated.

The CSV is appended one page at a time, each page one ``write`` of whole lines; an interrupted
download leaves at most a partial last line, which the next run drops before resuming after the
last complete bar, so a bar is never lost nor written twice.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from effnet_trading.errors import DataError, SpecError
from effnet_trading.plugins.bybit.bars import Bar, interval_ms
from effnet_trading.plugins.bybit.rest import BybitREST

__all__ = ["fetch_klines", "FetchResult", "to_ms"]

_HEADER = "timestamp,open,high,low,close,volume\n"
PAGE = 1000  # Bybit's maximum rows per kline page


@dataclass
class FetchResult:
    path: Path
    bars: int  # bars in the file
    new_bars: int  # bars written by this run
    resumed_from: pd.Timestamp | None
    pages: int
    dropped_open: bool  # the still-open last candle was seen and left out


def to_ms(t) -> int:
    """A date/time (string, Timestamp, datetime) read as UTC -> ms since the epoch."""
    ts = pd.Timestamp(t)
    ts = ts.tz_localize("UTC") if ts.tz is None else ts.tz_convert("UTC")
    return int(ts.value // 1_000_000)


def _line(b: Bar) -> str:
    ts = pd.Timestamp(b.start, unit="ms").strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"{ts},{b.open!r},{b.high!r},{b.low!r},{b.close!r},{b.volume!r}\n"


def _resume_point(path: Path) -> int | None:
    """Open time (ms) of the last complete row of an existing download; trims a partial last line."""
    if not path.exists() or path.stat().st_size == 0:
        return None
    data = path.read_bytes()
    if not data.endswith(b"\n"):
        cut = data.rfind(b"\n") + 1
        with open(path, "r+b") as fh:
            fh.truncate(cut)
        data = data[:cut]
    lines = data.decode("utf-8").splitlines()
    if not lines or lines[0] + "\n" != _HEADER:
        raise DataError(
            f"{path} exists but is not a kline download (header {lines[:1]}); pass a new --out path or delete it."
        )
    if len(lines) == 1:
        return None
    return to_ms(lines[-1].split(",", 1)[0])


def fetch_klines(
    rest: BybitREST, symbol: str, category: str, interval: str, start, end, out, *, progress: bool = False
) -> FetchResult:
    """Download closed bars with open time in [start, end) into the CSV ``out`` (resuming it if present)."""
    from effnet_trading.imaging import load_ohlcv

    step = interval_ms(interval)
    start_ms, end_ms = to_ms(start), to_ms(end)
    if end_ms <= start_ms:
        raise SpecError(
            f"--end {end} is not after --start {start}; give a range like --start 2024-01-01 --end 2024-02-01."
        )
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    last = _resume_point(path)
    if last is not None and not start_ms <= last < end_ms:
        raise DataError(
            f"{path} holds bars up to {pd.Timestamp(last, unit='ms', tz='UTC')}, outside --start..--end; "
            "pass a new --out path to download another range."
        )
    cursor = -(-start_ms // step) * step if last is None else last + step
    now = rest.server_time_ms()
    stop = min(end_ms - 1, now)  # open times up to here; the open bar is filtered below
    total = max(0, (stop - cursor) // step + 1)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, unit="bar", desc=f"{symbol} {interval}", leave=False)
    new, pages, dropped = 0, 0, False
    if last is None:
        path.write_text(_HEADER, encoding="utf-8")
    try:
        with open(path, "a", encoding="utf-8") as fh:
            while cursor <= stop:
                page_end = min(stop, cursor + (PAGE - 1) * step)
                got = rest.klines(symbol, category, interval, cursor, page_end, limit=PAGE)
                pages += 1
                closed = [b for b in got if b.start + step <= now]
                dropped = dropped or len(closed) < len(got)
                if closed:
                    fh.write("".join(map(_line, closed)))  # one write per page: whole lines only
                    fh.flush()
                    os.fsync(fh.fileno())
                    new += len(closed)
                if bar is not None:
                    bar.update((page_end - cursor) // step + 1)
                cursor = page_end + step
    finally:
        if bar is not None:
            bar.close()
    frame = load_ohlcv(path)  # the project's one loader: sorted, unique, finite, consistent
    return FetchResult(
        path, len(frame), new, None if last is None else pd.Timestamp(last, unit="ms", tz="UTC"), pages, dropped
    )
