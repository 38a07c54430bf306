"""Failover chain: forced failures switch members, cool-down recovery, counts, and the right member's output."""

import logging

import numpy as np
import pytest

from effnet_trading.errors import DataError, EffnetTradingError, SpecError
from effnet_trading.imaging import ImageSpec, render
from effnet_trading.model_zoo.failover import FailoverPredictor, RuleBasedPredictor
from effnet_trading.model_zoo.runtime import Predictor


class FakeClock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


class BrokenSession:
    """Stands in for an onnxruntime session that fails (e.g. the GPU went away)."""

    def run(self, *a, **k):
        raise RuntimeError("CUDA error: device lost")


class Slow:
    """Wraps a member and makes each call take ``ms`` on the fake clock."""

    def __init__(self, inner, clock, ms):
        self.inner, self.clock, self.ms = inner, clock, ms
        self.class_names, self.input_shape, self.spec, self.name = (
            inner.class_names,
            inner.input_shape,
            inner.spec,
            "slow",
        )

    def predict(self, images, closes=None):
        self.clock.t += self.ms / 1e3
        return self.inner.predict(images, closes)


@pytest.fixture(scope="module")
def data(planted):
    spec = ImageSpec("gasf", window=32, size=(32, 32))
    ends = np.arange(40, 80)
    closes = planted["close"].to_numpy()
    windows = np.stack([closes[e - 31 : e + 1] for e in ends])  # (40, 32) closes ending at each image's bar
    return render(spec, planted, ends), windows


def _rule_reference(windows, lookback, threshold, kind="momentum"):
    """Slow per-row reference: the class the rule must pick."""
    out = []
    for w in windows:
        r = np.log(w[-1] / w[-1 - lookback])
        d = 1 if r > threshold else (-1 if r < -threshold else 0)
        d = -d if kind == "reversal" else d
        out.append({1: 2, -1: 0, 0: 1}[d])
    return np.array(out)


@pytest.mark.parametrize(
    "kind,lookback,threshold", [("momentum", 20, 0.0), ("momentum", 5, 0.004), ("reversal", 10, 0.002)]
)
def test_rule_predictor_against_loop(data, kind, lookback, threshold):
    _, windows = data
    p = RuleBasedPredictor(kind, lookback, threshold).predict(None, closes=windows)
    assert p.shape == (40, 3) and p.dtype == np.float32
    np.testing.assert_allclose(p.sum(1), 1, atol=1e-6)
    np.testing.assert_array_equal(p.argmax(1), _rule_reference(windows, lookback, threshold, kind))
    if threshold > 0:
        assert (p.argmax(1) == 1).any()  # the band produces holds


def test_rule_confidence_grows_with_move():
    flat_noise = 100 * np.exp(np.cumsum(np.tile([0.01, -0.01], 11)))[None, :]  # ends where it began
    trend = 100 * np.exp(np.cumsum(np.full(22, 0.01)))[None, :]
    rule = RuleBasedPredictor(lookback=20, threshold=0.001)
    assert rule.predict(None, flat_noise).argmax() == 1
    p = rule.predict(None, trend)[0]
    assert p.argmax() == 2 and p[2] > 0.9


@pytest.mark.parametrize(
    "closes,message",
    [
        (None, "needs `closes`: close-price windows \\(N, L\\) with L > lookback=20"),
        (np.ones((3, 10)), "closes of shape \\(N, L\\) with L >= 21; got \\(3, 10\\)"),
        (np.full((2, 30), -1.0), "closes must be finite and > 0"),
    ],
)
def test_rule_predictor_errors(closes, message):
    with pytest.raises(DataError, match=message):
        RuleBasedPredictor().predict(None, closes=closes)


def test_rule_predictor_bad_config():
    with pytest.raises(SpecError, match="unknown rule kind 'magic'"):
        RuleBasedPredictor("magic")


def test_members_must_agree(tiny_model_dir):
    p = Predictor(tiny_model_dir, "cpu")

    class Other:
        class_names, input_shape, spec, name = ("sell", "hold", "buy"), (3, 64, 64), None, "other"

    with pytest.raises(
        SpecError, match=r"member 1 \(other\) takes images \[3, 64, 64\] but member 0 .* takes \[1, 32, 32\]"
    ):
        FailoverPredictor([p, Other()])
    with pytest.raises(SpecError, match=r"has classes \['down', 'flat', 'up'\] but member 0"):
        FailoverPredictor(
            [
                p,
                RuleBasedPredictor(class_names=("sell", "hold", "buy")),
                type("X", (), {"class_names": ("down", "flat", "up")})(),
            ]
        )
    with pytest.raises(SpecError, match="at least one member"):
        FailoverPredictor([])


def test_raising_member_fails_over_and_recovers(tiny_model_dir, data, caplog):
    images, windows = data
    clock = FakeClock()
    onnx = Predictor(tiny_model_dir, "cpu")
    rule = RuleBasedPredictor()
    chain = FailoverPredictor([onnx, rule], cooldown_s=30.0, clock=clock)
    assert chain.spec == onnx.spec and chain.input_shape == (1, 32, 32) and chain.class_names == onnx.class_names
    want_onnx, want_rule = onnx.predict(images), rule.predict(images, windows)

    np.testing.assert_array_equal(chain.predict(images, windows), want_onnx)
    good_session = onnx.session
    onnx.session = BrokenSession()
    with caplog.at_level(logging.WARNING, logger="effnet_trading.failover"):
        np.testing.assert_array_equal(chain.predict(images, windows), want_rule)  # same call answered by the rule
    h = chain.health[chain.names[0]]
    assert h["state"] == "unhealthy" and h["failures"] == 1 and "device lost" in h["last_error"] and h["switches"] == 1
    assert chain.switches == 1 and any("failover switch 1" in r.getMessage() for r in caplog.records)

    onnx.session = good_session  # fixed, but still cooling down: the rule keeps answering
    clock.t += 10
    np.testing.assert_array_equal(chain.predict(images, windows), want_rule)
    assert chain.health[chain.names[0]]["calls"] == 2  # not tried again yet
    clock.t += 25  # cool-down over: the better member is tried again and restored
    np.testing.assert_array_equal(chain.predict(images, windows), want_onnx)
    h = chain.health[chain.names[0]]
    assert h["state"] == "healthy" and h["failures"] == 0 and h["total_failures"] == 1
    assert chain.switches == 2 and chain.health[chain.names[1]]["switches"] == 1


def test_failed_probe_stays_unhealthy(tiny_model_dir, data):
    images, windows = data
    clock = FakeClock()
    onnx = Predictor(tiny_model_dir, "cpu")
    onnx.session = BrokenSession()
    chain = FailoverPredictor([onnx, RuleBasedPredictor()], cooldown_s=5, clock=clock)
    chain.predict(images, windows)
    clock.t += 6
    chain.predict(images, windows)  # probe fails again -> rule answers, cool-down restarts
    h = chain.health[chain.names[0]]
    assert h["state"] == "unhealthy" and h["failures"] == 2 and h["calls"] == 2
    assert chain.active == 1 and chain.switches == 0  # rule served both calls: no switch


def test_latency_budget(tiny_model_dir, data):
    images, windows = data
    clock = FakeClock()
    onnx = Predictor(tiny_model_dir, "cpu")
    slow = Slow(onnx, clock, ms=50)
    rule = RuleBasedPredictor()
    chain = FailoverPredictor([slow, rule], latency_budget_ms=10, cooldown_s=30, clock=clock)
    # the slow answer is returned (the time is already spent) but the member is marked unhealthy ...
    np.testing.assert_array_equal(chain.predict(images, windows), onnx.predict(images))
    h = chain.health[chain.names[0]]
    assert (
        h["state"] == "unhealthy"
        and h["last_latency_ms"] == pytest.approx(50)
        and "> budget 10.0 ms" in h["last_error"]
    )
    # ... so the next call goes to the next member
    np.testing.assert_array_equal(chain.predict(images, windows), rule.predict(images, windows))
    slow.ms = 2  # fast again: recovers after the cool-down
    clock.t += 31
    np.testing.assert_array_equal(chain.predict(images, windows), onnx.predict(images))
    assert chain.health[chain.names[0]]["state"] == "healthy" and chain.switches == 2


def test_max_failures_and_total_failure(tiny_model_dir, data):
    images, windows = data
    clock = FakeClock()
    onnx = Predictor(tiny_model_dir, "cpu")
    onnx.session = BrokenSession()
    chain = FailoverPredictor([onnx, RuleBasedPredictor()], max_failures=2, clock=clock)
    chain.predict(images, windows)
    assert chain.health[chain.names[0]]["state"] == "healthy"  # one failure of two allowed
    chain.predict(images, windows)
    assert chain.health[chain.names[0]]["state"] == "unhealthy"
    with pytest.raises(
        EffnetTradingError,
        match="every member of the failover chain failed: 1:rule:momentum\\(20\\): DataError: .*needs `closes`.*; 0:tiny_gasf: .*device lost",
    ):
        chain.predict(images)  # no closes: the rule cannot answer either (the unhealthy member is tried last)


def test_non_finite_output_counts_as_failure(tiny_model_dir, data):
    images, windows = data

    class NaNMember:
        class_names, input_shape, spec, name = ("sell", "hold", "buy"), (1, 32, 32), None, "nan"

        def predict(self, images, closes=None):
            return np.full((len(images), 3), np.nan, np.float32)

    chain = FailoverPredictor([NaNMember(), Predictor(tiny_model_dir, "cpu")], clock=FakeClock())
    assert np.all(np.isfinite(chain.predict(images, windows)))
    assert "bad output" in chain.health["0:nan"]["last_error"]
    with pytest.raises(SpecError, match="do not fit this chain"):
        chain.predict(images[:, :, :8, :8])
