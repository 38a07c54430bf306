"""Monitor: PSI on shifted vs unshifted samples, summaries, alarms, plot."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from effnet_trading.strategies import Monitor, psi


def test_psi_unshifted_small_shifted_large():
    rng = np.random.default_rng(0)
    ref = rng.normal(0, 1, 20_000)
    assert psi(ref, rng.normal(0, 1, 5_000)) < 0.02
    assert 0.1 < psi(ref, rng.normal(0.5, 1, 5_000)) < 0.5
    assert psi(ref, rng.normal(0, 3, 5_000)) > 0.25


def test_psi_closed_form_two_bins():
    # median split: expected 50/50; actual 80/20 -> (0.8-0.5)ln(1.6) + (0.2-0.5)ln(0.4)
    ref = np.r_[np.zeros(50), np.ones(50)]
    actual = np.r_[np.zeros(80), np.ones(20)]
    assert psi(ref, actual, bins=2) == pytest.approx(0.3 * np.log(1.6) - 0.3 * np.log(0.4))


def test_summary_latency_confidence_rates_agreement():
    mon = Monitor(window=100)
    probs = pd.DataFrame(
        [[0.7, 0.2, 0.1], [0.1, 0.1, 0.8], [0.2, 0.5, 0.3], [np.nan] * 3], columns=["sell", "hold", "buy"]
    )
    for i, (_, row) in enumerate(probs.iterrows()):
        mon.record(
            row,
            latency_ms=float(i + 1),
            member_probs={"5m": [0.1, 0.2, 0.7], "1h": [0.6, 0.3, 0.1], "4h": [0.2, 0.1, 0.7]},
        )
    s = mon.summary()
    assert s["records"] == 3  # the NaN (warm-up) row is not counted
    assert s["latency_ms"]["p50"] == pytest.approx(2.5) and s["latency_ms"]["p99"] == pytest.approx(
        np.percentile([1, 2, 3, 4], 99)
    )
    assert s["confidence"]["mean"] == pytest.approx((0.7 + 0.8 + 0.5) / 3)
    assert sum(s["confidence"]["histogram"]) == 3
    assert s["class_rates"] == pytest.approx({"sell": 1 / 3, "hold": 1 / 3, "buy": 1 / 3})
    assert s["agreement"] == pytest.approx(2 / 3)
    assert s["alarms"] == [] and s["drift"] == {}


def test_drift_alarms(random_walk):
    ref = random_walk.iloc[:5000]
    rng = np.random.default_rng(1)
    ref_probs = rng.dirichlet([5, 1, 1], 2000)  # mostly "sell" in the reference
    calm = Monitor(reference_returns=ref, reference_probs=ref_probs, window=2000)
    wild = Monitor(reference_returns=ref, reference_probs=ref_probs, window=2000)
    live = random_walk.iloc[5000:7000]
    close = live["close"].to_numpy()
    wild_close = close[0] * np.exp(np.cumsum(np.r_[0, np.diff(np.log(close))] * 4))  # 4x the volatility
    for i, (_, bar) in enumerate(live.iterrows()):
        calm.record(ref_probs[i], bar=bar)
        wild.record(rng.dirichlet([1, 1, 5]), bar={"close": wild_close[i], "volume": bar["volume"]})
    c, w = calm.summary(), wild.summary()
    assert c["drift"]["returns_psi"] < 0.1 and c["drift"]["output_psi"] < 0.05 and c["alarms"] == []
    assert w["drift"]["returns_psi"] > 0.25 and w["drift"]["output_psi"] > 0.25
    assert any("returns_psi" in a for a in w["alarms"]) and any("output_psi" in a for a in w["alarms"])
    assert w["drift"]["volume_psi"] < 0.1  # volume unchanged


def test_window_bounds_memory_and_plot(tmp_path):
    mon = Monitor(window=10)
    mon.record(np.tile([0.2, 0.3, 0.5], (25, 1)), latency_ms=1.0)
    assert mon.summary()["records"] == 10
    path = mon.plot(tmp_path / "health.png")
    assert (tmp_path / "health.png").stat().st_size > 1000 and path.endswith("health.png")
