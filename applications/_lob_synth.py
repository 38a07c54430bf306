"""A seeded synthetic order book with planted walls and place-then-cancel sequences (for tests and docs).

The touch moves one tick at a time (a lazy random walk); every visible level holds lognormal
noise around ``base_size``. A planted wall is ``wall_mult x base_size`` resting at a fixed
price from ``start`` until ``end`` (pulled then, or kept to the end); a planted place-cancel
puts ``spoof_mult x base_size`` on one level for ``life`` snapshots, away from the touch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from effnet_trading.imaging.lob import OrderBook

__all__ = ["PlantedWall", "PlantedSpoof", "synthetic_book"]


@dataclass(frozen=True)
class PlantedWall:
    side: str  # "bid" or "ask"
    start: int
    end: int | None  # snapshot it is pulled at (None = stays)
    ticks: int = 6  # distance from the touch at ``start``
    mult: float = 12.0


@dataclass(frozen=True)
class PlantedSpoof:
    side: str
    start: int
    life: int = 3  # snapshots the size rests
    ticks: int = 4
    mult: float = 8.0


def synthetic_book(
    n: int = 600,
    levels: int = 10,
    *,
    walls=(),
    spoofs=(),
    tick: float = 0.5,
    base_size: float = 1.0,
    noise: float = 0.3,
    move_prob: float = 0.05,
    seed: int = 0,
    start="2024-01-01",
    every_ms: int = 1000,
) -> tuple[OrderBook, pd.DataFrame]:
    """``(OrderBook (n snapshots, levels deep), planted events)``; events have columns
    ``kind`` (wall / spoof), ``side``, ``price``, ``start``, ``end`` (snapshot positions)."""
    rng = np.random.default_rng(seed)
    steps = rng.choice([-1, 0, 1], size=n, p=[move_prob / 2, 1 - move_prob, move_prob / 2])
    steps[0] = 0
    bid0 = 10_000.0 + tick * np.cumsum(steps)
    k = np.arange(levels)
    bid_px = bid0[:, None] - tick * k
    ask_px = bid0[:, None] + tick + tick * k
    bid_sz = base_size * np.exp(rng.normal(0, noise, (n, levels)))
    ask_sz = base_size * np.exp(rng.normal(0, noise, (n, levels)))
    events = []

    def _put(side: str, price: float, t0: int, t1: int, size: float) -> None:
        px, sz = (bid_px, bid_sz) if side == "bid" else (ask_px, ask_sz)
        for t in range(t0, t1):
            j = np.flatnonzero(np.isclose(px[t], price))
            if len(j):
                sz[t, j[0]] += size

    for w in walls:
        price = bid_px[w.start, 0] - w.ticks * tick if w.side == "bid" else ask_px[w.start, 0] + w.ticks * tick
        _put(w.side, price, w.start, n if w.end is None else w.end, w.mult * base_size)
        events.append({"kind": "wall", "side": w.side, "price": price, "start": w.start, "end": w.end})
    for s in spoofs:
        price = bid_px[s.start, 0] - s.ticks * tick if s.side == "bid" else ask_px[s.start, 0] + s.ticks * tick
        _put(s.side, price, s.start, s.start + s.life, s.mult * base_size)
        events.append({"kind": "spoof", "side": s.side, "price": price, "start": s.start, "end": s.start + s.life})
    book = np.stack([bid_px, bid_sz, ask_px, ask_sz], axis=-1)
    stamps = (pd.Timestamp(start).value + np.arange(n, dtype=np.int64) * every_ms * 1_000_000).astype("datetime64[ns]")
    frame = pd.DataFrame(events, columns=["kind", "side", "price", "start", "end"])
    return OrderBook(stamps, book), frame
