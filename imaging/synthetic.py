"""Seeded synthetic OHLCV with known, planted structure, and a pure random walk (numpy only).

``make_planted``: GARCH(1,1) volatility clustering, a two-state Markov regime (trend vs
mean reversion) and recurring 5-bar chart patterns whose next ``horizon`` bars drift in a
known direction: a V-bottom (three strong down bars, two strong up bars) is followed by a
rise ("buy"), the mirror top by a fall ("sell"). Each pattern's last bar is an *event*;
``events`` lists them with their direction so tests can score a model where the answer is
known. ``make_random_walk``: Gaussian log-returns with constant volatility: no structure,
every model must come out at chance.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from effnet_trading.imaging.labels import CLASS_NAMES, forward_return_labels
from effnet_trading.outputs import atomic_file

__all__ = ["SampleConfig", "make_planted", "make_random_walk", "oracle_report", "write_sample_data"]


@dataclass(frozen=True)
class SampleConfig:
    n_bars: int = 20_000
    seed: int = 7
    freq: str = "5min"
    start: str = "2021-01-01"
    horizon: int = 6  # label horizon the planted drift is built for
    label_k: float = 0.5  # labels: k * rolling vol * sqrt(horizon)
    base_vol: float = 0.004  # per-bar log-return volatility (long-run)
    pattern_sigma: float = 2.5  # size of each pattern bar in sigmas
    drift_sigma: float = 1.0  # extra drift per bar after a pattern, in sigmas
    gap: tuple[int, int] = (3, 12)  # bars of plain noise between patterns


def _garch_vol(rng: np.random.Generator, n: int, base_vol: float) -> np.ndarray:
    omega, alpha, beta = base_vol**2 * 0.05, 0.10, 0.85
    var = np.empty(n)
    var[0] = base_vol**2
    z = rng.standard_normal(n)
    for t in range(1, n):
        var[t] = omega + alpha * var[t - 1] * z[t - 1] ** 2 + beta * var[t - 1]
    return np.sqrt(var)


def _regime_returns(rng: np.random.Generator, sigma: np.ndarray) -> np.ndarray:
    n = len(sigma)
    regime = np.empty(n, dtype=np.int8)
    state, p_stay = 0, 0.995
    for t in range(n):
        if rng.random() > p_stay:
            state = 1 - state
        regime[t] = state
    phi = np.where(regime == 0, 0.15, -0.15)  # 0: trend (momentum), 1: mean reversion
    eps = rng.standard_normal(n) * sigma
    r = np.empty(n)
    r[0] = eps[0]
    for t in range(1, n):
        r[t] = phi[t] * r[t - 1] + eps[t]
    return r


def _ohlcv_from_returns(
    rng: np.random.Generator, r: np.ndarray, sigma: np.ndarray, cfg: SampleConfig, volume_boost=None
) -> pd.DataFrame:
    n = len(r)
    close = 100.0 * np.exp(np.cumsum(r))
    open_ = np.concatenate([[100.0], close[:-1]])
    wick_hi = np.abs(rng.standard_normal(n)) * 0.5 * sigma * close
    wick_lo = np.abs(rng.standard_normal(n)) * 0.5 * sigma * close
    high = np.maximum(open_, close) + wick_hi
    low = np.minimum(open_, close) - wick_lo
    volume = rng.lognormal(mean=6.0, sigma=0.3, size=n) * (1.0 + np.abs(r) / sigma)
    if volume_boost is not None:
        volume = volume * volume_boost
    index = pd.date_range(cfg.start, periods=n, freq=cfg.freq, tz="UTC", name="timestamp")
    frame = pd.DataFrame({"open": open_, "high": high, "low": low, "close": close, "volume": volume}, index=index)
    frame[["open", "high", "low", "close"]] = frame[["open", "high", "low", "close"]].round(4)
    frame["volume"] = frame["volume"].round(2)
    return frame


def make_planted(cfg: SampleConfig = SampleConfig()) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Planted-structure OHLCV and its events ``(timestamp, position, direction in {sell, buy})``."""
    rng = np.random.default_rng(cfg.seed)
    n = cfg.n_bars
    sigma = _garch_vol(rng, n, cfg.base_vol)
    r = _regime_returns(rng, sigma)
    boost = np.ones(n)
    events = []
    t = 120  # leave room for the label volatility warm-up
    shape = np.array([-1.0, -1.0, -1.0, 1.0, 1.0])
    while t + 5 + cfg.horizon < n:
        t += int(rng.integers(cfg.gap[0], cfg.gap[1] + 1))
        if t + 5 + cfg.horizon >= n:
            break
        direction = 1.0 if rng.random() < 0.5 else -1.0
        sl = slice(t, t + 5)
        s = sigma[sl]
        r[sl] = direction * shape * cfg.pattern_sigma * s + 0.2 * s * rng.standard_normal(5)
        boost[sl] = 1.5
        end = t + 4
        d = slice(end + 1, end + 1 + cfg.horizon)
        r[d] = r[d] + direction * cfg.drift_sigma * sigma[d]
        events.append((end, "buy" if direction > 0 else "sell"))
        t = end + 1 + cfg.horizon
    frame = _ohlcv_from_returns(rng, r, sigma, cfg, volume_boost=boost)
    pos = np.array([e[0] for e in events], dtype=np.int64)
    ev = pd.DataFrame({"timestamp": frame.index[pos], "position": pos, "direction": [e[1] for e in events]})
    return frame, ev


def make_random_walk(cfg: SampleConfig = SampleConfig()) -> pd.DataFrame:
    """Gaussian random walk with constant volatility: no exploitable structure."""
    rng = np.random.default_rng(cfg.seed + 1000)
    sigma = np.full(cfg.n_bars, cfg.base_vol)
    r = rng.standard_normal(cfg.n_bars) * sigma
    return _ohlcv_from_returns(rng, r, sigma, cfg)


def oracle_report(frame: pd.DataFrame, events: pd.DataFrame | None, cfg: SampleConfig) -> dict:
    """Class balance, majority-class rate and the best accuracy an oracle that knows the events reaches.

    The oracle is causal: from an event's last pattern bar on it knows the planted drift that
    follows. At each offset 0 .. horizon-1 after an event (the bars whose label window still holds
    drift bars) it predicts the class most frequent at that offset (the event's direction while
    enough drift remains, later 'hold'); everywhere else the majority class. Predicting the
    direction at the event bar only understates the bound (``oracle_accuracy_event_bar_only``).
    """
    labels, _ = forward_return_labels(frame["close"].to_numpy(), cfg.horizon, k=cfg.label_k)
    valid = labels >= 0
    counts = np.bincount(labels[valid], minlength=3)
    majority = int(np.argmax(counts))
    report = {
        "n_labelled": int(valid.sum()),
        "class_balance": {CLASS_NAMES[i]: round(float(counts[i] / counts.sum()), 4) for i in range(3)},
        "majority_class": CLASS_NAMES[majority],
        "majority_rate": round(float(counts.max() / counts.sum()), 4),
    }
    if events is not None and len(events):
        pos = events["position"].to_numpy()
        direction = np.where(events["direction"].to_numpy() == "buy", 2, 0)
        ok = labels[pos] >= 0
        ev_acc = float((labels[pos][ok] == direction[ok]).mean())
        at_event = np.full(len(labels), majority)
        at_event[pos] = direction
        pred = np.full(len(labels), majority)
        rules = {}
        for k in range(cfg.horizon):
            p = pos + k
            inside = p < len(labels)
            p, d = p[inside], direction[inside]
            seen = labels[p] >= 0
            # relative to the event's direction: same (0), hold (1) or opposite (2); pick the most frequent
            rel = np.where(labels[p] == 1, 1, np.where(labels[p] == d, 0, 2))[seen]
            best = int(np.argmax(np.bincount(rel, minlength=3)))
            rules[k] = ("direction", "hold", "opposite")[best]
            pred[p] = d if best == 0 else 1 if best == 1 else 2 - d
        report.update(
            n_events=int(len(events)),
            event_share=round(float(len(events) / valid.sum()), 4),
            oracle_accuracy_on_events=round(ev_acc, 4),
            oracle_accuracy_event_bar_only=round(float((at_event[valid] == labels[valid]).mean()), 4),
            oracle_accuracy_overall=round(float((pred[valid] == labels[valid]).mean()), 4),
            oracle_rule_by_offset={str(k): v for k, v in rules.items()},
        )
    return report


def write_sample_data(out_dir: str | Path, cfg: SampleConfig = SampleConfig()) -> dict:
    """Write ``planted_5m.csv``, ``planted_events.csv``, ``random_walk_5m.csv`` and ``meta.json``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    planted, events = make_planted(cfg)
    walk = make_random_walk(cfg)
    meta = {
        "config": asdict(cfg),
        "planted_5m.csv": oracle_report(planted, events, cfg),
        "random_walk_5m.csv": oracle_report(walk, None, cfg),
        "label_rule": f"forward log return over {cfg.horizon} bars vs +/- {cfg.label_k} x rolling 100-bar vol x sqrt(horizon)",
    }
    files = {
        "planted_5m.csv": lambda p: planted.to_csv(p, date_format="%Y-%m-%dT%H:%M:%SZ"),
        "planted_events.csv": lambda p: events.to_csv(p, index=False, date_format="%Y-%m-%dT%H:%M:%SZ"),
        "random_walk_5m.csv": lambda p: walk.to_csv(p, date_format="%Y-%m-%dT%H:%M:%SZ"),
        "meta.json": lambda p: Path(p).write_text(json.dumps(meta, indent=2) + "\n"),
    }
    for name, write in files.items():  # no partial files
        with atomic_file(out / name) as tmp:
            write(tmp)
    return meta
