"""Seeded synthetic chart patterns embedded in realistic background paths, labelled with class and span.

``make_patterns(n, cfg)`` draws ``n`` windows of ``cfg.window`` bars. Each holds one pattern (see
``_pattern_shapes`` for the geometry of each class) of random length, height, slope, noise and
volatility, ending a few bars before the window's right edge (where a causal scanner sees a
pattern that has just completed), or no pattern. The background is a GARCH(1,1)-like return path
(``background=None``) or circular blocks of real log-returns (``background=returns``). Augmentations:
noise inside the pattern, a random trend over the window, price scaling, and partial occlusion by
the window's left edge (the pattern starts before the window).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np
import pandas as pd

from effnet_trading.applications._pattern_shapes import SHAPES
from effnet_trading.errors import SpecError
from effnet_trading.imaging import MODEL_INPUT_DTYPE, render
from effnet_trading.imaging.spec import AnySpec

__all__ = ["PATTERN_CLASSES", "PatternConfig", "PatternSet", "make_patterns", "pattern_dataset", "shifted"]

PATTERN_CLASSES: tuple[str, ...] = tuple(SHAPES)


@dataclass(frozen=True)
class PatternConfig:
    """How synthetic pattern windows are drawn (all ranges are ``(low, high)``, drawn uniformly).

    length: pattern length as a share of the window. height: pattern height in background sigmas
    times sqrt(length). noise: background volatility inside the pattern, as a share of outside.
    vol: per-bar log-return volatility of the background. trend: drift per bar over the whole
    window, in background sigmas. occlude: probability that up to ``occlude_max`` of the pattern
    lies before the window's left edge. end_gap: bars between the pattern's end and the window's
    right edge, as a share of the window. distractor: share of ``no_pattern`` windows that hold a lone
    jump of pattern height somewhere (real bars have jumps; without these the model calls any jump a
    flag or pennant).
    """

    window: int = 64
    length: tuple[float, float] = (0.45, 0.9)
    height: tuple[float, float] = (2.5, 5.0)
    noise: tuple[float, float] = (0.15, 0.45)
    vol: tuple[float, float] = (0.004, 0.02)
    trend: tuple[float, float] = (-0.15, 0.15)
    occlude: float = 0.2
    occlude_max: float = 0.25
    end_gap: tuple[float, float] = (0.0, 0.1)
    wick: float = 0.6  # high/low beyond the body, in background sigmas (half-normal)
    distractor: float = 0.5  # share of "no_pattern" windows holding a lone jump (a pole without a pattern)
    seed: int = 0

    def __post_init__(self) -> None:
        if int(self.window) < 16:
            raise SpecError(f"PatternConfig window={self.window} is too short for a pattern; use >= 16 bars.")
        for name in ("length", "height", "noise", "vol", "end_gap"):
            lo, hi = getattr(self, name)
            if not 0 <= lo <= hi:
                raise SpecError(
                    f"PatternConfig {name}={getattr(self, name)} must be (low, high) with 0 <= low <= high."
                )
        if not 0 < self.length[1] <= 1.0:
            raise SpecError(f"PatternConfig length={self.length}: the pattern must fit the window (high <= 1).")

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}


def shifted(cfg: PatternConfig) -> PatternConfig:
    """The shift-test variant of ``cfg``: other seed, noisier, shorter-and-longer patterns, lower heights."""
    return replace(
        cfg,
        seed=cfg.seed + 10_007,
        length=(max(0.35, cfg.length[0] - 0.1), min(1.0, cfg.length[1] + 0.1)),
        noise=(cfg.noise[1], cfg.noise[1] + 0.3),
        height=(max(0.5, cfg.height[0] - 0.5), cfg.height[1] - 0.5),
    )


@dataclass
class PatternSet:
    """``bars (n, window, 5)`` open/high/low/close/volume, ``labels (n,)`` index into ``class_names``,
    ``spans (n, 2)`` first/last bar of the pattern inside the window (-1, -1 for no pattern),
    ``clean (n, window)`` the noise-free pattern path in log-price (0 outside the span)."""

    bars: np.ndarray
    labels: np.ndarray
    spans: np.ndarray
    clean: np.ndarray
    config: PatternConfig
    class_names: tuple[str, ...] = PATTERN_CLASSES

    def __len__(self) -> int:
        return len(self.labels)


def _garch_returns(rng: np.random.Generator, n: int, t: int, vol: np.ndarray) -> np.ndarray:
    """``(n, t)`` returns with GARCH(1,1) volatility clustering around per-row long-run ``vol``."""
    alpha, beta = 0.08, 0.88
    var = np.empty((n, t))
    var[:, 0] = vol**2
    z = rng.standard_normal((n, t))
    for i in range(1, t):  # vectorised over rows: t steps, not n * t
        var[:, i] = vol**2 * (1 - alpha - beta) + alpha * var[:, i - 1] * z[:, i - 1] ** 2 + beta * var[:, i - 1]
    return np.sqrt(var) * z


def _bootstrap_returns(rng: np.random.Generator, n: int, t: int, returns: np.ndarray, block: int = 24) -> np.ndarray:
    """``(n, t)`` circular blocks of real ``returns``, each row rescaled to unit standard deviation."""
    from effnet_trading.model_zoo.metrics import block_indices

    r = np.asarray(returns, np.float64)
    r = r[np.isfinite(r)]
    if len(r) < 4 * block:
        raise SpecError(
            f"background returns: {len(r)} finite values; pass at least {4 * block} (e.g. a year of 1h bars)."
        )
    out = np.empty((n, t))
    for i in range(n):
        start = int(rng.integers(0, len(r)))
        out[i] = r[(start + block_indices(t, block, rng)) % len(r)]
    return (out - out.mean(1, keepdims=True)) / np.maximum(out.std(1, keepdims=True), 1e-12)


def make_patterns(n: int, cfg: PatternConfig | None = None, *, background: np.ndarray | None = None) -> PatternSet:
    """Draw ``n`` labelled windows, classes balanced (round robin, then shuffled); seeded by ``cfg.seed``.

    background: real log-returns to block-bootstrap the background from (rescaled to each window's
    drawn volatility); None = a GARCH-like process.
    """
    cfg = cfg or PatternConfig()
    if n < 1:
        raise SpecError(f"make_patterns n={n} must be >= 1.")
    rng = np.random.default_rng(cfg.seed)
    w, k = int(cfg.window), len(PATTERN_CLASSES)
    pad = int(np.ceil(cfg.occlude_max * cfg.length[1] * w)) + 1  # bars before the window an occluded pattern may use
    t = w + pad + 1
    labels = rng.permutation(np.arange(n) % k)
    vol = rng.uniform(*cfg.vol, n)
    if background is None:
        rets = _garch_returns(rng, n, t, vol)
    else:
        rets = _bootstrap_returns(rng, n, t, background) * vol[:, None]
    rets += rng.uniform(*cfg.trend, n)[:, None] * vol[:, None]
    clean = np.zeros((n, t))
    spans = np.full((n, 2), -1, np.int64)
    for i in range(n):
        name = PATTERN_CLASSES[labels[i]]
        if name == "no_pattern":
            if rng.random() < cfg.distractor:  # a lone jump: a steep move, then nothing that forms a pattern
                at, steep = int(rng.integers(t - w, t - 2)), int(rng.integers(2, 6))
                jump = rng.choice([-1.0, 1.0]) * rng.uniform(*cfg.height) * vol[i] * np.sqrt(w / 2)
                clean[i, at:] = jump * np.clip((np.arange(at, t) - at + 1) / steep, 0.0, 1.0)
            continue
        length = max(8, int(round(rng.uniform(*cfg.length) * w)))
        end = t - 1 - int(round(rng.uniform(*cfg.end_gap) * w))
        cut = int(np.ceil(rng.uniform(0.05, cfg.occlude_max) * length)) if rng.random() < cfg.occlude else 0
        if cut:  # the window's left edge hides the pattern's first ``cut`` bars
            start, end = t - w - cut, min(t - w - cut + length - 1, end)
        else:
            start = max(end - length + 1, t - w)
        length = end - start + 1
        xs, ys = SHAPES[name](rng)
        xs = np.round(xs * (length - 1)) / (length - 1)  # key points on bars: the extremes are sampled exactly
        path = np.interp(np.linspace(0.0, 1.0, length), xs, ys)
        path -= path[0]  # the pattern starts at the background's level (no gap)
        height = rng.uniform(*cfg.height) * vol[i] * np.sqrt(length)
        clean[i, start : end + 1] = path * height
        clean[i, end + 1 :] = path[-1] * height  # the level stays where the pattern ended
        rets[i, start + 1 : end + 1] *= rng.uniform(*cfg.noise)
        spans[i] = (max(start - (t - w), 0), end - (t - w))
    logp = np.cumsum(rets, 1) + clean + np.log(rng.uniform(10.0, 50_000.0, n))[:, None]  # scaling augmentation
    close = np.exp(logp)
    open_ = np.concatenate([close[:, :1], close[:, :-1]], 1)
    wick = np.abs(rng.standard_normal((2, n, t))) * cfg.wick * vol[None, :, None]
    high = np.maximum(open_, close) * np.exp(wick[0])
    low = np.minimum(open_, close) * np.exp(-wick[1])
    volume = np.exp(rng.normal(5.0, 0.5, (n, t)))
    bars = np.stack([open_, high, low, close, volume], -1)[:, -w:]
    return PatternSet(bars, labels.astype(np.int64), spans, clean[:, -w:], cfg)


def pattern_dataset(patterns: PatternSet, spec: AnySpec, *, start: str = "2000-01-01"):
    """The windows rendered with ``spec`` as a ``model_zoo.dataset.ImageDataset`` (one image per window;
    ``index`` is a synthetic hourly clock, ``ends`` the sample numbers) for ``model_zoo.train``."""
    from effnet_trading.model_zoo.dataset import ImageDataset

    n, w = patterns.bars.shape[:2]
    if spec.history > w:
        raise SpecError(
            f"spec needs {spec.history} bars per image but the pattern windows have {w}; "
            f"use window <= {w} (and no moving average) or generate longer windows."
        )
    flat = patterns.bars.reshape(n * w, 5)
    images = render(spec, flat, np.arange(n) * w + w - 1, dtype=MODEL_INPUT_DTYPE)
    label = {
        "rule": "synthetic_chart_patterns",
        "classes": list(patterns.class_names),
        "generator": patterns.config.to_dict(),
    }
    return ImageDataset(
        images=images,
        labels=patterns.labels,
        ends=np.arange(n, dtype=np.int64),
        index=pd.date_range(start, periods=n, freq="h", tz="UTC"),
        fwd=np.zeros(n),
        spec=spec,
        horizon=1,
        label=label,
        dropped={"warmup": 0, "unlabelled": 0, "kept": int(n)},
        class_names=patterns.class_names,
    )
