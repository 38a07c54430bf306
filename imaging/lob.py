"""Order books -> heatmap images: the input format, validation, Binance and Hyperliquid parsers.

The input is an :class:`OrderBook`: ``timestamps (T,)`` datetime64[ns] UTC and
``levels (T, L, 4)`` float64 with columns ``bid_px, bid_sz, ask_px, ask_sz``, best level
first (level 0 = best bid / best ask); a missing level has size 0 (its price is ignored).
A DataFrame with a DatetimeIndex and columns ``bid_px_0, bid_sz_0, ask_px_0, ask_sz_0,
bid_px_1, ...`` or a bare ``(T, L, 4)`` array are accepted too.
``render_lob(spec, book, ends)`` is causal like ``render``: image ``i`` uses snapshots
``ends[i]-window+1 .. ends[i]`` only (see ``_lob`` for the pixel layout).
"""

from __future__ import annotations

import gzip
import heapq
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from effnet_trading.errors import DataError, SpecError
from effnet_trading.imaging._lob import lob_heatmap_images
from effnet_trading.imaging.spec import AnySpec

__all__ = [
    "OrderBook",
    "as_order_book",
    "render_lob",
    "lob_valid_ends",
    "read_binance_depth",
    "read_hyperliquid_l2",
    "read_hftbacktest",
    "read_books",
]

_COLUMNS = ("bid_px", "bid_sz", "ask_px", "ask_sz")


@dataclass(frozen=True)
class OrderBook:
    """Order-book snapshots: ``timestamps (T,)`` datetime64[ns] UTC, ``levels (T, L, 4)`` float64."""

    timestamps: np.ndarray
    levels: np.ndarray

    def __len__(self) -> int:
        return len(self.levels)

    def to_frame(self) -> pd.DataFrame:
        """Wide DataFrame ``bid_px_0, bid_sz_0, ask_px_0, ask_sz_0, bid_px_1, ...`` on a UTC index."""
        t, depth, _ = self.levels.shape
        cols = [f"{c}_{k}" for k in range(depth) for c in _COLUMNS]
        index = pd.DatetimeIndex(pd.to_datetime(self.timestamps, utc=True), name="timestamp")
        return pd.DataFrame(self.levels.reshape(t, depth * 4), index=index, columns=cols)


def _from_frame(frame: pd.DataFrame) -> OrderBook:
    depth = 0
    while f"bid_px_{depth}" in frame.columns:
        depth += 1
    missing = [f"{c}_{k}" for k in range(max(depth, 1)) for c in _COLUMNS if f"{c}_{k}" not in frame.columns]
    if depth == 0 or missing:
        raise DataError(
            f"order-book DataFrame is missing column(s) {missing[:8]}; expected bid_px_k, bid_sz_k, ask_px_k, "
            f"ask_sz_k for levels k = 0 .. L-1 (level 0 = best), got {list(frame.columns)[:8]}."
        )
    if not isinstance(frame.index, pd.DatetimeIndex):
        raise DataError("order-book DataFrame needs a DatetimeIndex of snapshot times; set it with df.set_index(...).")
    cols = [f"{c}_{k}" for k in range(depth) for c in _COLUMNS]
    levels = frame[cols].to_numpy(dtype="float64").reshape(len(frame), depth, 4)
    stamps = frame.index.tz_localize("UTC") if frame.index.tz is None else frame.index.tz_convert("UTC")
    return OrderBook(stamps.tz_localize(None).as_unit("ns").to_numpy(), levels)


def as_order_book(book) -> OrderBook:
    """Validate an OrderBook, wide DataFrame or ``(T, L, 4)`` array; raise DataError naming the snapshot."""
    if isinstance(book, pd.DataFrame):
        book = _from_frame(book)
    elif not isinstance(book, OrderBook):
        arr = np.asarray(book, dtype="float64")
        book = OrderBook(np.arange(len(arr)).astype("datetime64[ns]") if arr.ndim else np.array([]), arr)
    levels = np.ascontiguousarray(np.asarray(book.levels, dtype="float64"))
    if levels.ndim != 3 or levels.shape[2] != 4 or len(levels) == 0:
        raise DataError(
            f"order book must be (T, levels, 4) = bid_px, bid_sz, ask_px, ask_sz per level, got shape {levels.shape}."
        )
    sizes = levels[:, :, [1, 3]]
    if not np.isfinite(sizes).all() or (sizes < 0).any():
        bad = np.flatnonzero((~np.isfinite(sizes) | (sizes < 0)).any(axis=(1, 2)))
        raise DataError(
            f"order book has NaN/inf or negative sizes at snapshots {bad[:5].tolist()}; sizes must be >= 0."
        )
    prices = levels[:, :, [0, 2]]
    with np.errstate(invalid="ignore"):
        bad_px = (sizes > 0) & ~(np.isfinite(prices) & (prices > 0))
    if bad_px.any():
        bad = np.flatnonzero(bad_px.any(axis=(1, 2)))
        raise DataError(
            f"order book has levels with size > 0 but a missing or non-positive price at snapshots {bad[:5].tolist()}."
        )
    empty = (levels[:, 0, 1] <= 0) | (levels[:, 0, 3] <= 0)
    crossed = ~empty & (levels[:, 0, 0] >= levels[:, 0, 2])
    if empty.any() or crossed.any():
        bad = np.flatnonzero(empty | crossed)
        raise DataError(
            f"order book snapshots {bad[:5].tolist()} have no best bid/ask or a crossed book (bid >= ask); "
            "the mid price needs both sides at level 0 with bid < ask. Drop those snapshots."
        )
    stamps = np.asarray(book.timestamps).astype("datetime64[ns]")
    if len(stamps) != len(levels):
        raise DataError(f"order book has {len(stamps)} timestamps for {len(levels)} snapshots; they must match.")
    if len(stamps) > 1 and (np.diff(stamps.astype("int64")) <= 0).any():
        bad = np.flatnonzero(np.diff(stamps.astype("int64")) <= 0) + 1
        raise DataError(
            f"order book timestamps are not strictly increasing at snapshots {bad[:5].tolist()}; sort them."
        )
    return OrderBook(stamps, levels)


def _lob_specs(spec: AnySpec):
    specs = spec.specs
    bad = [s.kind for s in specs if s.kind != "lob_heatmap"]
    if bad:
        raise SpecError(
            f"render_lob renders kind 'lob_heatmap' only, got {bad}; use render(spec, ohlcv) for OHLCV kinds."
        )
    return specs


def lob_valid_ends(spec: AnySpec, book) -> np.ndarray:
    """All renderable snapshot positions, ``window-1 .. T-1``."""
    first = max(s.window for s in _lob_specs(spec)) - 1
    return np.arange(first, len(as_order_book(book)), dtype=np.int64)


def render_lob(spec: AnySpec, book, ends=None, *, dtype=np.float32) -> np.ndarray:
    """Order-book heatmaps ending at snapshots ``ends`` -> ``(N, 2, H, W)`` float32 in [0, 1] (or uint8).

    Channel 0 bids, channel 1 asks; H price buckets of ``spec.bucket_bps`` around the decision
    mid, W = the last ``spec.window`` snapshots. A StackSpec of lob_heatmap specs concatenates.
    """
    specs = _lob_specs(spec)
    ob = as_order_book(book)
    first, n = max(s.window for s in specs) - 1, len(ob)
    ends = np.arange(first, n, dtype=np.int64) if ends is None else np.asarray(ends, dtype=np.int64).reshape(-1)
    if len(ends) and (ends.min() < first or ends.max() >= n):
        raise DataError(
            f"ends must lie in [{first}, {n - 1}] (the first {first} snapshots are warm-up for the window); "
            f"got min {ends.min()}, max {ends.max()}. Use lob_valid_ends(spec, book)."
        )
    parts = [lob_heatmap_images(s, ob.levels, ends) for s in specs]
    out = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)
    if np.dtype(dtype) == np.uint8:
        return np.rint(out * 255.0).astype(np.uint8)
    return out.astype(dtype, copy=False)


def _top(side: dict, depth: int, best_high: bool) -> list[tuple[float, float]]:
    pick = heapq.nlargest if best_high else heapq.nsmallest
    return [(p, side[p]) for p in pick(depth, side)]


def _apply(side: dict, updates) -> None:
    for px, qty in updates:
        p, q = float(px), float(qty)
        if q == 0.0:
            side.pop(p, None)
        else:
            side[p] = q


def read_binance_depth(path: str | os.PathLike, levels: int = 20, every_ms: int = 1000) -> OrderBook:
    """Rebuild a Binance book from an hftbacktest capture and sample it every ``every_ms``.

    The file is gzip text, one ``<receive_ts_ns> <websocket JSON>`` per line: one REST depth
    snapshot (``lastUpdateId``) and ``depthUpdate`` diffs (others lines, e.g. trades, are
    skipped). Diffs with ``u <= lastUpdateId`` are dropped, the rest applied in order; a
    quantity of 0 removes the level. Snapshot ``k`` is the book after every message received
    up to grid time ``t0 + k * every_ms`` (``t0`` = the REST snapshot's receive time rounded up;
    the last row is the first grid time at or after the last message). Timestamps are receive times.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise DataError(f"order-book file {path!r} does not exist; check the path.")
    snapshot, diffs = None, []
    with gzip.open(path, "rt") as fh:
        for line in fh:
            ts, _, payload = line.partition(" ")
            if '"lastUpdateId"' in payload and snapshot is None:
                snapshot = (int(ts), json.loads(payload))
            elif '"depthUpdate"' in payload:
                msg = json.loads(payload)
                diffs.append((int(ts), msg.get("data", msg)))
    if snapshot is None:
        raise DataError(
            f"{path!r} has no REST depth snapshot line (a JSON object with 'lastUpdateId'); cannot rebuild the book."
        )
    t_snap, snap = snapshot
    bids = {float(p): float(q) for p, q in snap["bids"] if float(q) > 0}
    asks = {float(p): float(q) for p, q in snap["asks"] if float(q) > 0}
    live = [(max(t, t_snap), d) for t, d in diffs if d["u"] > snap["lastUpdateId"]]
    step = int(every_ms) * 1_000_000
    grid_t = -(-t_snap // step) * step
    last_t = -(-max([t_snap] + [t for t, _ in live]) // step) * step  # the final state gets a row too
    stamps, rows, gaps, prev_u, i = [], [], 0, None, 0
    while grid_t <= last_t:
        while i < len(live) and live[i][0] <= grid_t:
            d = live[i][1]
            if prev_u is not None and (d["pu"] != prev_u if "pu" in d else d["U"] != prev_u + 1):
                gaps += 1  # spot: U follows the previous u; futures: pu names it
            prev_u = d["u"]
            _apply(bids, d["b"])
            _apply(asks, d["a"])
            i += 1
        row = np.zeros((levels, 4))
        row[:, [0, 2]] = np.nan
        for k, (p, q) in enumerate(_top(bids, levels, True)):
            row[k, 0:2] = p, q
        for k, (p, q) in enumerate(_top(asks, levels, False)):
            row[k, 2:4] = p, q
        stamps.append(grid_t)
        rows.append(row)
        grid_t += step
    if gaps:
        warnings.warn(
            f"{os.path.basename(path)}: {gaps} depth diff(s) out of sequence; the rebuilt book may drift.", stacklevel=2
        )
    return OrderBook(np.array(stamps, dtype="datetime64[ns]"), np.array(rows))


def _on_grid(times: list[int], rows: list[np.ndarray], every_ms: int) -> OrderBook:
    """Snapshot ``k`` = the last state received at or before grid time ``t0 + k * every_ms`` (``t0`` =
    the first receive time rounded up; the last row is the first grid time at or after the last state)."""
    step = int(every_ms) * 1_000_000
    t = np.asarray(times, dtype=np.int64)
    grid = np.arange(-(-t[0] // step) * step, -(-t[-1] // step) * step + 1, step, dtype=np.int64)
    pick = np.searchsorted(t, grid, side="right") - 1
    return OrderBook(grid.astype("datetime64[ns]"), np.stack(rows)[pick])


def read_hyperliquid_l2(path: str | os.PathLike, levels: int = 20, every_ms: int = 1000) -> OrderBook:
    """A Hyperliquid book from an hftbacktest capture, sampled every ``every_ms``.

    The file is gzip text, one ``<receive_ts_ns> <websocket JSON>`` per line. ``l2Book`` messages
    are full snapshots: ``data.levels = [bids, asks]``, each a best-first list of ``{"px", "sz", "n"}``
    (price and size in coin units as decimal strings, ``n`` = number of orders, not used); other
    channels (``trades``, ...) are skipped. Unlike Binance there are no diffs: snapshot ``k`` is the
    last ``l2Book`` received at or before grid time ``t0 + k * every_ms`` (receive times, UTC).
    Levels beyond ``levels`` are dropped; missing ones have size 0.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise DataError(f"order-book file {path!r} does not exist; check the path.")
    times, rows = [], []
    with gzip.open(path, "rt") as fh:
        for line in fh:
            ts, _, payload = line.partition(" ")
            if '"l2Book"' not in payload:
                continue
            msg = json.loads(payload)
            if msg.get("channel") != "l2Book":  # e.g. a subscriptionResponse that names l2Book
                continue
            sides = msg["data"]["levels"]
            row = np.zeros((levels, 4))
            row[:, [0, 2]] = np.nan
            for col, side in ((0, sides[0]), (2, sides[1])):
                for k, lvl in enumerate(side[:levels]):
                    row[k, col : col + 2] = float(lvl["px"]), float(lvl["sz"])
            times.append(int(ts))
            rows.append(row)
    if not rows:
        raise DataError(f"{path!r} has no Hyperliquid 'l2Book' line; cannot build the book.")
    order = np.argsort(times, kind="stable")
    return _on_grid([times[i] for i in order], [rows[i] for i in order], every_ms)


def read_hftbacktest(path: str | os.PathLike, levels: int = 20, every_ms: int = 1000) -> OrderBook:
    """An hftbacktest capture of either venue: Hyperliquid when its first lines hold an ``l2Book``
    message (``read_hyperliquid_l2``), Binance otherwise (``read_binance_depth``)."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise DataError(f"order-book file {path!r} does not exist; check the path.")
    with gzip.open(path, "rt") as fh:
        head = [line for _, line in zip(range(20), fh)]
    if any('"l2Book"' in line for line in head):
        return read_hyperliquid_l2(path, levels=levels, every_ms=every_ms)
    return read_binance_depth(path, levels=levels, every_ms=every_ms)


def read_books(path: str | os.PathLike, *, levels: int = 20, every_ms: int = 1000) -> tuple[dict, dict]:
    """``({name: OrderBook}, {name: why skipped})`` from a file or a folder of files: hftbacktest
    captures (``.gz``: Binance rebuilt by ``imaging.read_binance_depth``, Hyperliquid ``l2Book``
    snapshots by ``imaging.read_hyperliquid_l2``; ``imaging.read_hftbacktest`` tells them apart) or wide order-book CSVs
    (``bid_px_0, bid_sz_0, ask_px_0, ask_sz_0, ...`` with a ``timestamp`` column)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"order-book path {path} does not exist; pass an order-book file or a folder of them.")
    files = sorted(p for p in path.iterdir() if p.suffix in (".gz", ".csv")) if path.is_dir() else [path]
    books, skipped = {}, {}
    for f in files:
        try:
            if f.suffix == ".csv":
                frame = pd.read_csv(f, parse_dates=["timestamp"], index_col="timestamp")
                books[f.name] = as_order_book(frame)
            else:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    books[f.name] = as_order_book(read_hftbacktest(f, levels=levels, every_ms=every_ms))
        except (DataError, ValueError, KeyError, OSError, EOFError) as exc:  # a truncated .gz is OSError/EOFError
            skipped[f.name] = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
    if not books:
        raise DataError(
            f"no readable order book in {path} (skipped: {skipped}); see `effnet-trading lob analyze --help` for formats."
        )
    return books, skipped
