"""Order-book analysis: walls, place-and-cancel sequences, market impact, liquidity, move labels.

Input: an ``imaging.OrderBook`` (or what ``as_order_book`` accepts). Every detector reads
snapshots up to t only. Definitions, per side, with ``med_t`` = the median size of that side's
visible levels at snapshot t:

- **Wall**: a level with size ``>= wall_k x med_t``. It is reported (``wall_add``) once it has
  been a wall for ``min_life`` consecutive snapshots (at that snapshot; ``since`` = its first).
  When a confirmed wall stops being one: ``wall_hit`` if the touch reached its price (bids:
  best bid <= price; asks: best ask >= price; likely traded), ``wall_pull`` if the price is still
  inside the visible book away from the touch (the size was withdrawn), else ``wall_left_view``.
- **Place-and-cancel** (spoofing-like): a level's size grows by ``>= spoof_k x med_t`` from one
  snapshot to the next at a price that was already inside the visible book and is not the
  touch, and within ``max_updates`` snapshots falls back by ``>= drop`` of that increase while
  the level never reached the touch (so no market order could have traded it: the snapshots
  hold no trade prints, and this is the proxy).
- **Impact**: a market order of ``units`` walks the visible levels from the touch (buys take
  asks upwards, sells take bids downwards); the fill price is the size-weighted average of the
  levels taken; slippage = ``(avg - mid) / mid`` in bps (sign-adjusted: a cost is positive).
  An order larger than the visible depth is ``complete=False`` (slippage NaN).
- **Liquidity**: ``spread_bps`` and the quote value of the top ``depth_levels`` levels on both
  sides; illiquid when the spread exceeds ``spread_mult`` x its trailing median or the depth
  falls under ``depth_frac`` x its trailing median (window ``window`` snapshots).
- **Move labels** (DeepLOB style): ``l_t = (mean mid over t+1..t+h) / mid_t - 1``; up if
  ``l_t > threshold_bps / 1e4``, down if ``< -threshold``, flat otherwise (last h: -1).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from effnet_trading.errors import DataError, SpecError
from effnet_trading.imaging.lob import as_order_book, read_books  # read_books re-exported

__all__ = [
    "MOVE_CLASSES",
    "walk_depth",
    "mid_price",
    "detect_walls",
    "detect_place_cancel",
    "slippage",
    "impact_curve",
    "ImpactModel",
    "liquidity_flags",
    "move_labels",
    "plot_book",
    "read_books",
    "analyze_books",
    "move_dataset",
    "fit_move_model",
]

MOVE_CLASSES = ("down", "flat", "up")
_EVENT_COLUMNS = ["time", "snapshot", "kind", "side", "price", "size", "since", "life"]


def walk_depth(prices: np.ndarray, sizes: np.ndarray, units: float) -> tuple[np.ndarray, np.ndarray]:
    """Average fill price and units filled taking ``units`` from levels ``(..., L)`` best first
    (sizes 0 for missing levels). Returns arrays of shape ``(...)``; price NaN when nothing fills."""
    sizes = np.asarray(sizes, np.float64)
    before = np.cumsum(sizes, axis=-1) - sizes
    take = np.clip(units - before, 0.0, sizes)
    filled = take.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        avg = np.where(filled > 0, (take * np.nan_to_num(np.asarray(prices, np.float64))).sum(axis=-1) / filled, np.nan)
    return avg, filled


def mid_price(book) -> np.ndarray:
    ob = as_order_book(book)
    return 0.5 * (ob.levels[:, 0, 0] + ob.levels[:, 0, 2])


def slippage(book, units: float, side: str = "buy") -> pd.DataFrame:
    """Per snapshot: ``avg_price, filled, slippage_bps`` (cost vs the mid, NaN if incomplete), ``complete``."""
    if side not in ("buy", "sell") or not units > 0:
        raise SpecError(f"slippage needs side 'buy' or 'sell' and units > 0, got side={side!r}, units={units}.")
    ob = as_order_book(book)
    px, sz = (ob.levels[:, :, 2], ob.levels[:, :, 3]) if side == "buy" else (ob.levels[:, :, 0], ob.levels[:, :, 1])
    avg, filled = walk_depth(px, sz, float(units))
    mid = mid_price(ob)
    complete = filled >= units * (1 - 1e-12)
    sign = 1.0 if side == "buy" else -1.0
    bps = np.where(complete, sign * (avg / mid - 1.0) * 1e4, np.nan)
    index = pd.DatetimeIndex(pd.to_datetime(ob.timestamps, utc=True), name="time")
    return pd.DataFrame({"avg_price": avg, "filled": filled, "slippage_bps": bps, "complete": complete}, index=index)


def impact_curve(book, sizes) -> pd.DataFrame:
    """Expected cost of market orders of each size (base units) over all snapshots: per side the
    median and 90th percentile slippage in bps and the share of snapshots deep enough to fill."""
    sizes = sorted(float(s) for s in sizes)
    if not sizes or any(not np.isfinite(s) or s <= 0 for s in sizes):
        raise SpecError(f"impact sizes {sizes} must be a non-empty list of positive order sizes (base units).")
    rows = []
    for units in sizes:
        row = {"size": units}
        for side in ("buy", "sell"):
            s = slippage(book, units, side)
            ok = s["slippage_bps"].dropna()
            row[f"{side}_bps_median"] = float(ok.median()) if len(ok) else np.nan
            row[f"{side}_bps_p90"] = float(ok.quantile(0.9)) if len(ok) else np.nan
            row[f"{side}_fillable"] = float(s["complete"].mean())
        rows.append(row)
    return pd.DataFrame(rows).set_index("size")


@dataclass
class ImpactModel:
    """Fill prices from a measured impact curve: ``model(side, units, price)`` moves ``price``
    against the trade by the median slippage for ``units`` (linear between the measured sizes, the
    smallest size's cost below them, the last segment's slope beyond them, never falling). The medians
    are over the snapshots deep enough to fill each size (``impact_curve``'s ``*_fillable`` share): a size
    that few snapshots could fill is priced at those deep books' cost, so keep the sizes where
    ``*_fillable`` is high. ``PaperBroker(fill_model=ImpactModel.from_book(book, sizes))``."""

    sizes: np.ndarray
    buy_bps: np.ndarray
    sell_bps: np.ndarray

    @classmethod
    def from_book(cls, book, sizes) -> ImpactModel:
        curve = impact_curve(book, sizes).dropna(subset=["buy_bps_median", "sell_bps_median"])
        if len(curve) < 2:
            raise DataError(
                "ImpactModel needs at least 2 order sizes the recorded book could fill; pass smaller sizes."
            )
        return cls(curve.index.to_numpy(), curve["buy_bps_median"].to_numpy(), curve["sell_bps_median"].to_numpy())

    def bps(self, side: str, units: float) -> float:
        x, y = self.sizes, self.buy_bps if side == "buy" else self.sell_bps
        if units <= x[-1]:
            return float(np.interp(units, x, y))  # below the smallest size: its cost (about half the spread)
        slope = max((y[-1] - y[-2]) / (x[-1] - x[-2]), 0.0)  # a bigger order never costs less
        return float(y[-1] + slope * (units - x[-1]))

    def __call__(self, side: str, units: float, price: float) -> float:
        sign = 1.0 if side == "buy" else -1.0
        return float(price * (1.0 + sign * self.bps(side, abs(units)) / 1e4))


def _side(levels: np.ndarray, t: int, side: str) -> tuple[np.ndarray, np.ndarray]:
    px, sz = (levels[t, :, 0], levels[t, :, 1]) if side == "bid" else (levels[t, :, 2], levels[t, :, 3])
    keep = sz > 0
    return px[keep], sz[keep]


def _touched(side: str, best: float, price: float) -> bool:
    return best <= price if side == "bid" else best >= price


def _in_view(px: np.ndarray, price: float) -> bool:
    return len(px) > 0 and min(px[0], px[-1]) <= price <= max(px[0], px[-1])


def _events(rows: list[dict], stamps: np.ndarray) -> pd.DataFrame:
    out = pd.DataFrame(rows, columns=_EVENT_COLUMNS)
    out["time"] = pd.to_datetime(stamps[out["snapshot"].to_numpy(int)], utc=True) if len(out) else []
    return out


def detect_walls(book, *, wall_k: float = 5.0, min_life: int = 10) -> pd.DataFrame:
    """Wall events (``wall_add``, ``wall_pull``, ``wall_hit``, ``wall_left_view``), causal; see module docstring."""
    ob = as_order_book(book)
    rows: list[dict] = []
    for side in ("bid", "ask"):
        runs: dict[float, list] = {}  # price -> [first snapshot, last size]
        for t in range(len(ob)):
            px, sz = _side(ob.levels, t, side)
            walls = dict(zip(px[sz >= wall_k * np.median(sz)], sz[sz >= wall_k * np.median(sz)])) if len(sz) else {}
            for p, s in walls.items():
                run = runs.setdefault(p, [t, s])
                run[1] = s
                if t - run[0] + 1 == min_life:
                    rows.append(
                        dict(snapshot=t, kind="wall_add", side=side, price=p, size=s, since=run[0], life=min_life)
                    )
            for p in [p for p in runs if p not in walls]:
                start, size = runs.pop(p)
                if t - start < min_life:
                    continue
                kind = (
                    "wall_hit"
                    if len(px) and _touched(side, px[0], p)
                    else "wall_pull"
                    if _in_view(px, p)
                    else "wall_left_view"
                )
                rows.append(dict(snapshot=t, kind=kind, side=side, price=p, size=size, since=start, life=t - start))
    return _events(rows, ob.timestamps).sort_values(["snapshot", "side"], ignore_index=True)


def detect_place_cancel(book, *, spoof_k: float = 4.0, max_updates: int = 5, drop: float = 0.8) -> pd.DataFrame:
    """Place-and-cancel events (kind ``place_cancel``; ``size`` = the size placed, ``life`` = snapshots
    it rested), causal; see module docstring."""
    ob = as_order_book(book)
    rows: list[dict] = []
    for side in ("bid", "ask"):
        prev_px, prev_sz = _side(ob.levels, 0, side)
        pending: list[dict] = []
        for t in range(1, len(ob)):
            px, sz = _side(ob.levels, t, side)
            cur = dict(zip(px, sz))
            best = px[0] if len(px) else np.nan
            keep = []
            for c in pending:
                c["touched"] |= bool(_touched(side, best, c["price"]))
                if c["touched"] or not _in_view(px, c["price"]):
                    continue
                if cur.get(c["price"], 0.0) <= c["before"] + (1 - drop) * c["size"]:
                    rows.append(
                        dict(
                            snapshot=t,
                            kind="place_cancel",
                            side=side,
                            price=c["price"],
                            size=c["size"],
                            since=c["t0"],
                            life=t - c["t0"],
                        )
                    )
                elif t - c["t0"] < max_updates:
                    keep.append(c)
            pending = keep
            med = np.median(sz) if len(sz) else np.inf
            prev = dict(zip(prev_px, prev_sz))
            for p, s in cur.items():
                if p == best or not _in_view(prev_px, p) or any(c["price"] == p for c in pending):
                    continue
                inc = s - prev.get(p, 0.0)
                if inc >= spoof_k * med:
                    pending.append(dict(price=p, size=inc, before=prev.get(p, 0.0), t0=t, touched=False))
            prev_px, prev_sz = px, sz
    return _events(rows, ob.timestamps).sort_values(["snapshot", "side"], ignore_index=True)


def liquidity_flags(
    book,
    *,
    window: int = 300,
    spread_mult: float = 2.0,
    depth_frac: float = 0.3,
    depth_levels: int = 10,
) -> pd.DataFrame:
    """Per snapshot ``spread_bps``, ``depth`` (quote value, both sides, top levels) and ``illiquid`` (bool)."""
    ob = as_order_book(book)
    lv = ob.levels[:, :depth_levels]
    mid = mid_price(ob)
    spread = (lv[:, 0, 2] - lv[:, 0, 0]) / mid * 1e4
    depth = (np.nan_to_num(lv[:, :, 0]) * lv[:, :, 1]).sum(1) + (np.nan_to_num(lv[:, :, 2]) * lv[:, :, 3]).sum(1)
    f = pd.DataFrame(
        {"spread_bps": spread, "depth": depth}, index=pd.DatetimeIndex(pd.to_datetime(ob.timestamps, utc=True))
    )
    base = f.rolling(window, min_periods=max(2, window // 4)).median()
    f["illiquid"] = (f["spread_bps"] > spread_mult * base["spread_bps"]) | (f["depth"] < depth_frac * base["depth"])
    return f


def move_labels(book, horizon: int = 10, threshold_bps: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """``(codes (T,), l (T,))``: index into ``MOVE_CLASSES`` (-1 for the last ``horizon``) and the
    relative move ``l_t`` (module docstring)."""
    if horizon < 1 or threshold_bps < 0:
        raise SpecError(f"move_labels needs horizon >= 1 and threshold_bps >= 0, got {horizon}, {threshold_bps}.")
    mid = mid_price(book)
    csum = np.r_[0.0, np.cumsum(mid)]
    n = len(mid)
    fut = np.full(n, np.nan)
    t = np.arange(n - horizon)
    fut[t] = (csum[t + 1 + horizon] - csum[t + 1]) / horizon
    rel = fut / mid - 1.0
    thr = threshold_bps / 1e4
    codes = np.where(rel > thr, 2, np.where(rel < -thr, 0, 1))
    return np.where(np.isnan(rel), -1, codes).astype(np.int64), rel


def plot_book(book, events: pd.DataFrame, path: str | os.PathLike, *, levels: int = 20, title: str = "") -> None:
    """PNG: the visible depth over time (bids green, asks red, shade = log size), the mid, and the events."""
    from matplotlib.figure import Figure

    ob = as_order_book(book)
    t = np.arange(len(ob))
    fig = Figure(figsize=(10, 4.2), dpi=100)
    ax = fig.add_subplot()
    lv = ob.levels[:, :levels]
    for px, sz, cmap in ((0, 1, "Greens"), (2, 3, "Reds")):
        ok = lv[:, :, sz] > 0
        tt = np.broadcast_to(t[:, None], ok.shape)[ok]
        ax.scatter(tt, lv[:, :, px][ok], c=np.log1p(lv[:, :, sz][ok]), cmap=cmap, s=2, marker="s", lw=0)
    ax.plot(t, mid_price(ob), color="black", lw=0.6, label="mid")
    marks = {
        "wall_add": ("^", "blue"),
        "wall_pull": ("x", "blue"),
        "wall_hit": ("o", "blue"),
        "place_cancel": ("D", "magenta"),
    }
    for kind, (m, c) in marks.items():
        e = events[events["kind"] == kind]
        if len(e):
            ax.scatter(e["snapshot"], e["price"], marker=m, color=c, s=28, label=f"{kind} ({len(e)})", zorder=3)
    ax.legend(loc="upper left", fontsize=7, ncol=5)
    ax.set_xlabel("snapshot")
    ax.set_title(title or "order book: depth, mid and detections", fontsize=9)
    fig.tight_layout()
    fig.savefig(Path(path))


def _plot_impact(curves: dict[str, pd.DataFrame], path: Path) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 3.6), dpi=100)
    ax = fig.add_subplot()
    for name, c in curves.items():
        for side, ls in (("buy", "-"), ("sell", "--")):
            ax.plot(c.index, c[f"{side}_bps_median"], ls, marker="o", ms=3, label=f"{name[:28]} {side}")
    ax.set_xscale("log")
    ax.set_xlabel("market order size (base units)")
    ax.set_ylabel("median cost vs mid (bps)")
    ax.legend(fontsize=6)
    ax.set_title("impact: walking the visible depth", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)


def analyze_books(
    books: dict,
    out_dir: str | os.PathLike,
    *,
    sizes=(0.01, 0.1, 0.5, 1, 2, 5, 10),
    wall_k: float = 5.0,
    min_life: int = 10,
    spoof_k: float = 4.0,
    max_updates: int = 5,
) -> dict:
    """Write ``detections.csv`` (every event, with ``source``), ``impact.csv``, one annotated
    ``heatmap_<source>.png`` per book, ``impact.png`` and return the summary (also the caller's to save)."""
    out = Path(out_dir)
    events, curves, summary = [], {}, {"books": {}}
    for name, book in books.items():
        ev = pd.concat(
            [detect_walls(book, wall_k=wall_k, min_life=min_life),
             detect_place_cancel(book, spoof_k=spoof_k, max_updates=max_updates)],
            ignore_index=True,
        ).sort_values("snapshot", kind="stable", ignore_index=True)  # fmt: skip
        events.append(ev.assign(source=name))
        curves[name] = impact_curve(book, sizes)
        plot_book(book, ev, out / f"heatmap_{Path(name).stem}.png", title=f"{name}: depth, mid, detections")
        span = pd.to_datetime(book.timestamps[[0, -1]], utc=True)
        summary["books"][name] = {
            "snapshots": len(book),
            "levels": int(book.levels.shape[1]),
            "span": [str(span[0]), str(span[1])],
            "events": {k: int(v) for k, v in ev["kind"].value_counts().items()},
            "spread_bps_median": float(np.median((book.levels[:, 0, 2] / book.levels[:, 0, 0] - 1) * 1e4)),
        }
    pd.concat(events, ignore_index=True).to_csv(out / "detections.csv", index=False)
    pd.concat(curves, names=["source"]).to_csv(out / "impact.csv")
    _plot_impact(curves, out / "impact.png")
    summary["settings"] = {
        "sizes": list(map(float, sizes)),
        "wall_k": wall_k,
        "min_life": min_life,
        "spoof_k": spoof_k,
        "max_updates": max_updates,
    }
    return summary


def move_dataset(book, spec, horizon: int = 50, threshold_bps: float = 0.5):
    """``ImageDataset`` of ``render_lob`` heatmaps labelled by ``move_labels`` (classes down/flat/up)."""
    from effnet_trading.imaging.lob import lob_valid_ends, render_lob
    from effnet_trading.model_zoo.dataset import ImageDataset

    ob = as_order_book(book)
    codes, rel = move_labels(ob, horizon, threshold_bps)
    ends = lob_valid_ends(spec, ob)
    ends = ends[codes[ends] >= 0]
    if len(ends) < 100:
        raise DataError(f"only {len(ends)} labelled snapshots (window {spec.window}, horizon {horizon}); need >= 100.")
    images = render_lob(spec, ob, ends, dtype=np.uint8)
    index = pd.DatetimeIndex(pd.to_datetime(ob.timestamps[ends], utc=True))
    label = {"rule": "lob_mid_move", "horizon": int(horizon), "threshold_bps": float(threshold_bps)}
    return ImageDataset(images, codes[ends], ends, index, rel[ends], spec, int(horizon), label, {}, MOVE_CLASSES)


def fit_move_model(
    book, out_dir, *, spec=None, horizon: int = 50, threshold_bps: float = 0.5, model: str = "small_cnn",
    epochs: int = 3, test_size: float = 0.3, seed: int = 0, num_threads: int | None = 1,
) -> dict:  # fmt: skip
    """Train a mid-price move classifier on heatmaps (time split, purged by ``horizon``), export it to
    ``out_dir/model``; returns the out-of-sample report (accuracy, macro-F1 beside the majority rate)."""
    from effnet_trading.imaging import ImageSpec
    from effnet_trading.model_zoo.train import TrainConfig, train_and_export

    spec = spec or ImageSpec("lob_heatmap", window=32, size=(32, 32), bucket_bps=0.002)
    ds = move_dataset(book, spec, horizon, threshold_bps)
    cfg = TrainConfig(
        model=model, spec=spec, horizon=horizon, epochs=epochs, patience=2, test_size=test_size,
        seed=seed, num_threads=num_threads, progress=False,
    )  # fmt: skip
    res = train_and_export(None, cfg, out_dir, dataset=ds)
    t = res.metrics["test"]
    keep = ("n", "accuracy", "macro_f1", "majority_rate", "majority_class", "pred_shares", "collapsed")
    return {k: t[k] for k in keep} | {"split": res.metrics["split"], "label": ds.label}
