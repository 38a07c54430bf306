"""Failover chains: try the best model first, fall back on errors or blown latency budgets (numpy only).

``FailoverPredictor([gpu_b3, cpu_b0, RuleBasedPredictor()])`` has the ``Predictor`` interface
(``predict(images, closes=None) -> (N, K)``). A member that raises, returns non-finite
probabilities or exceeds the latency budget is counted as failing; after ``max_failures`` in a
row it is marked unhealthy and skipped until ``cooldown_s`` has passed, then tried again
(and restored if it answers well). Every switch of the serving member is logged and counted.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from effnet_trading.errors import DataError, EffnetTradingError, SpecError
from effnet_trading.model_zoo.runtime import LatencyRecorder

__all__ = ["RuleBasedPredictor", "FailoverPredictor", "RULE_KINDS"]

log = logging.getLogger("effnet_trading.failover")

RULE_KINDS = ("momentum", "reversal")


class RuleBasedPredictor:
    """Model-free fallback: sell/hold/buy from the sign and size of the ``lookback``-bar return.

    momentum: a return above ``threshold`` (log-return) -> buy, below ``-threshold`` -> sell,
    otherwise hold; reversal: the opposite direction. Confidence grows with the return measured
    in units of its own volatility, ``tanh(|r| / (sigma_1bar * sqrt(lookback)))``.
    """

    spec = None
    input_shape = None
    card = None

    def __init__(
        self,
        kind: str = "momentum",
        lookback: int = 20,
        threshold: float = 0.0,
        class_names: Sequence[str] = ("sell", "hold", "buy"),
    ):
        if kind not in RULE_KINDS:
            raise SpecError(f"unknown rule kind {kind!r}; expected one of {list(RULE_KINDS)}.")
        if int(lookback) < 1:
            raise SpecError(f"lookback must be >= 1 bar, got {lookback}.")
        if threshold < 0:
            raise SpecError(f"threshold is a log-return band and must be >= 0, got {threshold}.")
        if sorted(class_names) != ["buy", "hold", "sell"]:
            raise SpecError(f"RuleBasedPredictor needs the classes sell/hold/buy (any order), got {list(class_names)}.")
        self.kind, self.lookback, self.threshold = kind, int(lookback), float(threshold)
        self.class_names = tuple(class_names)
        self.name = f"rule:{kind}({self.lookback})"
        self.latency = LatencyRecorder()

    def predict(self, images: np.ndarray | None = None, closes: np.ndarray | None = None) -> np.ndarray:
        """``closes`` ``(N, L)`` close prices, last column = decision bar (L > lookback) -> ``(N, 3)`` float32."""
        t0 = time.perf_counter()
        if closes is None:
            raise DataError(
                f"{self.name} needs `closes`: close-price windows (N, L) with L > lookback={self.lookback}, "
                "ending at each image's last bar; pass predict(images, closes=...)."
            )
        c = np.asarray(closes, dtype=np.float64)
        c = c[None, :] if c.ndim == 1 else c
        if c.ndim != 2 or c.shape[1] < self.lookback + 1:
            raise DataError(
                f"{self.name} needs closes of shape (N, L) with L >= {self.lookback + 1}; got {np.shape(closes)}."
            )
        if images is not None and len(images) != len(c):
            raise DataError(f"{self.name}: {len(images)} images but {len(c)} close windows; pass one window per image.")
        if not np.all(np.isfinite(c)) or np.any(c <= 0):
            raise DataError(f"{self.name}: closes must be finite and > 0 (found NaN/inf or non-positive prices).")
        logc = np.log(c[:, -(self.lookback + 1) :])
        ret = logc[:, -1] - logc[:, 0]
        sigma = np.std(np.diff(logc, axis=1), axis=1) * np.sqrt(self.lookback)
        conf = np.tanh(np.abs(ret) / np.maximum(sigma, 1e-12))
        direction = np.where(ret > self.threshold, 1, np.where(ret < -self.threshold, -1, 0))
        if self.kind == "reversal":
            direction = -direction
        idx = {name: i for i, name in enumerate(self.class_names)}
        out = np.empty((len(c), 3), dtype=np.float64)
        p_main = np.where(direction == 0, 0.4 + 0.6 * (1 - conf), 0.4 + 0.6 * conf)  # always the argmax
        main = np.select([direction > 0, direction < 0], [idx["buy"], idx["sell"]], idx["hold"])
        out[:] = ((1 - p_main) / 2)[:, None]
        out[np.arange(len(c)), main] = p_main
        self.latency.add((time.perf_counter() - t0) * 1e3)
        return out.astype(np.float32)

    def __repr__(self) -> str:
        return f"RuleBasedPredictor(kind={self.kind!r}, lookback={self.lookback}, threshold={self.threshold})"


@dataclass
class _Health:
    state: str = "healthy"  # healthy | unhealthy
    failures: int = 0  # consecutive
    total_failures: int = 0
    calls: int = 0
    switches: int = 0  # times the chain switched away from this member
    last_error: str | None = None
    last_latency_ms: float | None = None
    unhealthy_since: float | None = None


def _member_name(member: Any) -> str:
    return str(getattr(member, "name", type(member).__name__))


class FailoverPredictor:
    """Chain of predictors with health state: the first healthy member answers.

    latency_budget_ms: a call slower than this counts as a failure of that member (its answer is
    still returned: the time is already spent; the *next* calls go to the next member).
    cooldown_s: how long an unhealthy member is skipped before it is tried again.
    max_failures: consecutive failures that make a member unhealthy.
    clock: seconds, monotonic (injectable for tests).
    """

    def __init__(
        self,
        members: Sequence[Any],
        latency_budget_ms: float | None = None,
        cooldown_s: float = 30.0,
        max_failures: int = 1,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.members = list(members)
        if not self.members:
            raise SpecError(
                "FailoverPredictor needs at least one member (e.g. [Predictor(dir), RuleBasedPredictor()])."
            )
        if max_failures < 1:
            raise SpecError(f"max_failures must be >= 1, got {max_failures}.")
        first = self.members[0]
        for i, m in enumerate(self.members[1:], start=1):
            if tuple(m.class_names) != tuple(first.class_names):
                raise SpecError(
                    f"member {i} ({_member_name(m)}) has classes {list(m.class_names)} but member 0 ({_member_name(first)}) has "
                    f"{list(first.class_names)}; a chain must answer in one class order."
                )
        shaped = [(i, m) for i, m in enumerate(self.members) if getattr(m, "input_shape", None) is not None]
        for i, m in shaped[1:]:
            if tuple(m.input_shape) != tuple(shaped[0][1].input_shape):
                raise SpecError(
                    f"member {i} ({_member_name(m)}) takes images {list(m.input_shape)} but member {shaped[0][0]} "
                    f"({_member_name(shaped[0][1])}) takes {list(shaped[0][1].input_shape)}; every ONNX member must see the same rendered images."
                )
        self._model = shaped[0][1] if shaped else first
        self.latency_budget_ms = latency_budget_ms
        self.cooldown_s = float(cooldown_s)
        self.max_failures = int(max_failures)
        self.clock = clock
        self.names = [f"{i}:{_member_name(m)}" for i, m in enumerate(self.members)]
        self._health = [_Health() for _ in self.members]
        self.active: int | None = None
        self.switches = 0
        self.latency = LatencyRecorder()

    @property
    def spec(self):
        return getattr(self._model, "spec", None)

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(self.members[0].class_names)

    @property
    def input_shape(self):
        return getattr(self._model, "input_shape", None)

    @property
    def health(self) -> dict[str, dict[str, Any]]:
        """Per member: state, failures (consecutive), total_failures, calls, switches, last_error, last_latency_ms."""
        return {name: asdict(h) for name, h in zip(self.names, self._health)}

    def _order(self, now: float) -> list[int]:
        """Healthy members (and unhealthy ones whose cool-down is over) in chain order; the rest as a last resort."""
        ready, resting = [], []
        for i, h in enumerate(self._health):
            cooled = h.state == "healthy" or (
                h.unhealthy_since is not None and now - h.unhealthy_since >= self.cooldown_s
            )
            (ready if cooled else resting).append(i)
        return ready + resting

    def _fail(self, i: int, reason: str, now: float) -> None:
        h = self._health[i]
        h.failures += 1
        h.total_failures += 1
        h.last_error = reason
        if h.failures >= self.max_failures:
            if h.state != "unhealthy":
                log.warning("member %s marked unhealthy after %d failure(s): %s", self.names[i], h.failures, reason)
            h.state, h.unhealthy_since = "unhealthy", now

    def _ok(self, i: int) -> None:
        h = self._health[i]
        if h.state == "unhealthy":
            log.info("member %s recovered", self.names[i])
        h.state, h.failures, h.unhealthy_since = "healthy", 0, None

    def _serve(self, i: int) -> None:
        if self.active is not None and i != self.active:
            self.switches += 1
            self._health[self.active].switches += 1
            level = logging.WARNING if i > self.active else logging.INFO
            why = self._health[self.active].last_error if i > self.active else "better member recovered"
            log.log(
                level, "failover switch %d: %s -> %s (%s)", self.switches, self.names[self.active], self.names[i], why
            )
        self.active = i

    def predict(self, images: np.ndarray | None, closes: np.ndarray | None = None) -> np.ndarray:
        """Same contract as ``Predictor.predict``; ``closes`` (N, L) is needed if a rule member may answer."""
        shape = self.input_shape
        if (
            images is not None
            and shape is not None
            and (np.ndim(images) != 4 or tuple(np.shape(images)[1:]) != tuple(shape))
        ):
            raise SpecError(
                f"images of shape {np.shape(images)} do not fit this chain, which expects (N, {', '.join(map(str, shape))})."
            )
        errors = []
        t_call = time.perf_counter()
        for i in self._order(self.clock()):
            member, h = self.members[i], self._health[i]
            h.calls += 1
            t0 = self.clock()
            try:
                out = np.asarray(member.predict(images, closes=closes), dtype=np.float32)
                if out.ndim != 2 or out.shape[1] != len(self.class_names) or not np.all(np.isfinite(out)):
                    raise EffnetTradingError(f"bad output: shape {out.shape}, finite={bool(np.all(np.isfinite(out)))}")
            except Exception as exc:  # any member failure means: try the next one
                self._fail(i, f"{type(exc).__name__}: {exc}", self.clock())
                errors.append(f"{self.names[i]}: {type(exc).__name__}: {exc}")
                continue
            now = self.clock()
            h.last_latency_ms = (now - t0) * 1e3
            if self.latency_budget_ms is not None and h.last_latency_ms > self.latency_budget_ms:
                self._fail(i, f"latency {h.last_latency_ms:.1f} ms > budget {self.latency_budget_ms:.1f} ms", now)
            else:
                self._ok(i)
            self._serve(i)
            self.latency.add((time.perf_counter() - t_call) * 1e3)
            return out
        raise EffnetTradingError("every member of the failover chain failed: " + "; ".join(errors))

    def close(self) -> None:
        for m in self.members:
            if hasattr(m, "close"):
                m.close()

    def __repr__(self) -> str:
        return (
            f"FailoverPredictor({self.names}, latency_budget_ms={self.latency_budget_ms}, cooldown_s={self.cooldown_s})"
        )
