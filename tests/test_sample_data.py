"""The committed sample data is exactly what the seeded generator writes, and its planted edge is real."""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from effnet_trading.imaging import load_ohlcv
from effnet_trading.imaging.labels import forward_return_labels
from effnet_trading.imaging.synthetic import SampleConfig, make_planted, make_random_walk

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"


def test_committed_files_match_generator():
    cfg = SampleConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in json.loads((SAMPLE / "meta.json").read_text())["config"].items()})
    planted, events = make_planted(cfg)
    committed = load_ohlcv(SAMPLE / "planted_5m.csv")
    np.testing.assert_allclose(committed.to_numpy(), planted.to_numpy(), rtol=0, atol=1e-8)
    assert (committed.index == planted.index).all()
    ev = pd.read_csv(SAMPLE / "planted_events.csv")
    assert ev["position"].tolist() == events["position"].tolist()
    walk = load_ohlcv(SAMPLE / "random_walk_5m.csv")
    np.testing.assert_allclose(walk.to_numpy(), make_random_walk(cfg).to_numpy(), rtol=0, atol=1e-8)


def test_planted_events_predict_labels_and_random_walk_has_no_autocorrelation():
    meta = json.loads((SAMPLE / "meta.json").read_text())
    planted = load_ohlcv(SAMPLE / "planted_5m.csv")
    ev = pd.read_csv(SAMPLE / "planted_events.csv")
    labels, _ = forward_return_labels(planted["close"].to_numpy(), meta["config"]["horizon"], k=meta["config"]["label_k"])
    want = np.where(ev["direction"] == "buy", 2, 0)
    acc = (labels[ev["position"]] == want).mean()
    assert acc == pytest.approx(meta["planted_5m.csv"]["oracle_accuracy_on_events"], abs=1e-4)
    assert acc > 0.85
    walk = load_ohlcv(SAMPLE / "random_walk_5m.csv")
    r = np.diff(np.log(walk["close"].to_numpy()))
    ac1 = np.corrcoef(r[:-1], r[1:])[0, 1]
    assert abs(ac1) < 3 / np.sqrt(len(r))
