"""Chart-pattern skeletons: each class is a small table of key points ``(x, y)`` with ``x`` in [0, 1]
(position in the pattern's span) and ``y`` in pattern heights (0 = start level, about 1 = the
pattern's full height). The generator interpolates them linearly onto the pattern's bars, so the
local extremes of a noise-free pattern are exactly these key points.

Geometry of each class (what the tests check on noise-free samples):

- ``head_and_shoulders``: three peaks, the middle one (head, 1.0) higher than both shoulders
  (0.55-0.75, within 0.15 of each other); the two troughs between them (the neckline, 0.15-0.35)
  and a last leg that closes below the neckline. ``inverse_head_and_shoulders``: mirrored (x -> -y).
- ``double_top``: two peaks within 5 % of the height of each other, a trough between them at
  0.3-0.55 and a last leg below the trough. ``double_bottom``: mirrored.
- ``ascending_triangle``: equal highs (a flat top) and rising lows; ``descending_triangle``:
  equal lows and falling highs; ``symmetric_triangle``: falling highs and rising lows. 5-7 touches.
- ``bull_flag``: a steep pole (0 -> 1 in the first 20-35 % of the span), then a channel whose highs
  and lows both fall (parallel lines) and whose width is under a third of the pole.
  ``bull_pennant``: the same pole, then converging highs (falling) and lows (rising).
  ``bear_flag`` / ``bear_pennant``: mirrored.
- ``cup_and_handle``: two rims within 5 % of the depth, a rounded (parabolic, not V) bottom: at
  least 30 % of the cup's bars lie in its lowest fifth (a V has 20 %), then a shallow handle dip
  (15-35 % of the cup depth) and a recovery to the rim.
- ``no_pattern``: no key points (the background path alone).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Shape = Callable[[np.random.Generator], tuple[np.ndarray, np.ndarray]]


def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def head_and_shoulders(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Left shoulder, head, right shoulder over a neckline; the last leg breaks the neckline."""
    j = lambda: _u(rng, -0.03, 0.03)  # noqa: E731 - tiny jitter of the key-point positions
    sh1 = _u(rng, 0.55, 0.75)
    sh2 = float(np.clip(sh1 + _u(rng, -0.12, 0.12), 0.55, 0.75))
    n1, n2 = _u(rng, 0.15, 0.35), _u(rng, 0.15, 0.35)
    xs = np.array([0.0, 0.17 + j(), 0.33 + j(), 0.5 + j(), 0.67 + j(), 0.83 + j(), 1.0])
    ys = np.array([0.0, sh1, n1, 1.0, n2, sh2, min(n1, n2) - _u(rng, 0.1, 0.25)])
    return xs, ys


def double_top(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Two equal peaks (within 5 %) and the trough between them; ends below the trough."""
    v = _u(rng, 0.3, 0.55)
    xs = np.array([0.0, 0.25 + _u(rng, -0.04, 0.04), 0.5, 0.75 + _u(rng, -0.04, 0.04), 1.0])
    ys = np.array([0.0, 1.0, v, 1.0 + _u(rng, -0.05, 0.05), v - _u(rng, 0.1, 0.25)])
    return xs, ys


def _zigzag(rng: np.random.Generator, upper: tuple[float, float], lower: tuple[float, float], start: float = 0.0):
    """Alternating touches of two lines ``y = a + (b - a) x`` from x = start to 1, lower line first."""
    n = int(rng.integers(5, 8))
    xs = np.linspace(start, 1.0, n) + np.r_[0.0, rng.uniform(-0.02, 0.02, n - 2), 0.0]
    line = lambda ab, x: ab[0] + (ab[1] - ab[0]) * (x - start) / (1.0 - start)  # noqa: E731
    ys = np.array([line(lower if i % 2 == 0 else upper, x) for i, x in enumerate(xs)])
    return xs, ys


def ascending_triangle(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Flat top at 1, lows rising from 0 towards it."""
    return _zigzag(rng, (1.0, 1.0), (0.0, _u(rng, 0.6, 0.8)))


def descending_triangle(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Flat bottom at 0, highs falling from 1 towards it (starts at a high)."""
    xs, ys = _zigzag(rng, (0.0, 0.0), (1.0, _u(rng, 0.2, 0.4)))
    return xs, ys


def symmetric_triangle(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Highs falling and lows rising towards a common apex."""
    mid = _u(rng, 0.4, 0.6)
    return _zigzag(rng, (1.0, mid + _u(rng, 0.08, 0.15)), (0.0, mid - _u(rng, 0.08, 0.15)))


def _pole(rng: np.random.Generator) -> float:
    return _u(rng, 0.2, 0.35)


def bull_flag(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Steep pole up, then a small channel drifting down (parallel lines)."""
    p, drop, width = _pole(rng), _u(rng, 0.1, 0.25), _u(rng, 0.12, 0.25)
    xs, ys = _zigzag(rng, (1.0, 1.0 - drop), (1.0 - width, 1.0 - width - drop), start=p)
    ys[0] = 1.0  # the pole's top is the channel's first high
    return np.r_[0.0, xs], np.r_[0.0, ys]


def bull_pennant(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Steep pole up, then a small converging triangle."""
    p, width = _pole(rng), _u(rng, 0.2, 0.3)
    mid = 1.0 - width / 2
    xs, ys = _zigzag(rng, (1.0, mid + 0.03), (1.0 - width, mid - 0.03), start=p)
    ys[0] = 1.0
    return np.r_[0.0, xs], np.r_[0.0, ys]


def cup_and_handle(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Rim, parabolic rounded bottom, rim again, a shallow handle dip and recovery."""
    c = _u(rng, 0.7, 0.8)
    u = np.linspace(0.0, 1.0, 15)
    cup_x, cup_y = u * c, 1.0 - (1.0 - (2 * u - 1) ** 2)  # parabola: 1 at both rims, 0 at the bottom
    cup_y[-1] = 1.0 + _u(rng, -0.05, 0.0)
    h = _u(rng, 0.15, 0.35)
    xs = np.r_[cup_x, c + (1 - c) * 0.45, 1.0]
    ys = np.r_[cup_y, 1.0 - h, 1.0 - _u(rng, 0.0, 0.05)]
    return xs, ys


def _mirror(shape: Shape) -> Shape:
    def mirrored(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        xs, ys = shape(rng)
        return xs, -ys

    mirrored.__doc__ = f"``{shape.__name__}`` upside down."
    return mirrored


def no_pattern(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """No key points: the background alone."""
    return np.zeros(0), np.zeros(0)


# class name -> skeleton; the order is the model's class order
SHAPES: dict[str, Shape] = {
    "head_and_shoulders": head_and_shoulders,
    "inverse_head_and_shoulders": _mirror(head_and_shoulders),
    "double_top": double_top,
    "double_bottom": _mirror(double_top),
    "ascending_triangle": ascending_triangle,
    "descending_triangle": descending_triangle,
    "symmetric_triangle": symmetric_triangle,
    "bull_flag": bull_flag,
    "bear_flag": _mirror(bull_flag),
    "bull_pennant": bull_pennant,
    "bear_pennant": _mirror(bull_pennant),
    "cup_and_handle": cup_and_handle,
    "no_pattern": no_pattern,
}
