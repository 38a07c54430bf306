"""``regimes fit`` and ``regimes scan`` on the real sample slice, tiny settings; scan is causal."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from effnet_trading.plugins.cli import main
from effnet_trading.strategies import Policy, RegimeGate

FIT_FLAGS = "--window 12 --base 100 --image-window 16 --size 16 --epochs 1 --max-train-samples 300".split()


def _run(*args):
    return CliRunner().invoke(main, ["regimes", *map(str, args)], catch_exceptions=False)


@pytest.fixture(scope="module")
def fitted(tmp_path_factory, sample_dir):
    root = tmp_path_factory.mktemp("regimes")
    frame = pd.read_csv(sample_dir / "btcusdt_1h.csv").iloc[:1100]
    csv = root / "btc.csv"
    frame.to_csv(csv, index=False)
    res = _run("fit", "--data", csv, "--out", root / "model", *FIT_FLAGS)
    assert res.exit_code == 0, res.output
    return root, csv, frame


def test_fit_writes_classifier_hmm_and_summary(fitted):
    root, _, _ = fitted
    summary = json.loads((root / "model" / "summary.json").read_text())
    t = np.array(summary["transition_matrix"])
    assert t.shape == (5, 5) and np.allclose(t.sum(1), 1)
    assert (root / "model" / "classifier" / "model" / "model.onnx").is_file()
    test = summary["classifier_test"]
    assert 0 < test["majority_rate"] <= 1
    # per-regime recall beside the base rates of the test and training parts
    assert set(test["recall"]) == set(test["test_shares"]) == set(test["train_part_shares"]) == set(summary["regimes"])
    assert max(test["test_shares"].values()) == pytest.approx(test["majority_rate"])
    assert sum(test["train_part_shares"].values()) == pytest.approx(1.0)


def test_scan_is_causal_and_gates_a_policy(fitted):
    root, csv, frame = fitted
    res = _run("scan", "--data", csv, "--model", root / "model", "--out", root / "full")
    assert res.exit_code == 0, res.output
    assert "agreement with the rule labels" in res.output
    cut = root / "cut.csv"
    frame.iloc[:800].to_csv(cut, index=False)
    assert _run("scan", "--data", cut, "--model", root / "model", "--out", root / "cut").exit_code == 0
    full = pd.read_csv(root / "full" / "regimes.csv", index_col="timestamp")
    part = pd.read_csv(root / "cut" / "regimes.csv", index_col="timestamp")
    assert list(full.columns[:5]) == ["trend_up", "trend_down", "ranging", "high_vol", "low_liquidity"]
    assert full.iloc[:800].equals(part) and full["ranging"].notna().sum() > 700
    summary = json.loads((root / "full" / "summary.json").read_text())
    assert len(summary["transition_matrix"]) == 5 and (root / "full" / "regimes.png").stat().st_size > 5000
    # the scan's file drives a RegimeGate
    reg = full.iloc[:, :5].set_axis(pd.DatetimeIndex(pd.to_datetime(full.index, utc=True)))
    probs = pd.DataFrame({"sell": 0.0, "hold": 0.0, "buy": 1.0}, index=reg.index)
    gated = RegimeGate(Policy(0.5), reg, {"ranging": 1.0}).positions(probs)
    want = (reg.fillna(0).idxmax(axis=1) == "ranging") & reg.notna().all(axis=1)
    assert (gated == want.astype(float)).all() and gated.sum() > 100


def test_scan_refuses_a_folder_without_hmm(tmp_path, fitted):
    _, csv, _ = fitted
    res = CliRunner().invoke(
        main, ["regimes", "scan", "--data", str(csv), "--model", str(tmp_path), "--out", str(tmp_path / "o")]
    )
    assert res.exit_code == 1 and "regimes fit" in res.output


def test_regime_model_update_matches_batch(fitted):
    from effnet_trading.applications.regimes import RegimeModel
    from effnet_trading.imaging import load_ohlcv

    root, csv, _ = fitted
    model = RegimeModel(root / "model")
    bars = load_ohlcv(csv).iloc[:150]
    batch = model.predict_proba(bars)
    rows = [model.update(bars.iloc[i : i + 1]) for i in range(len(bars))]
    live = pd.DataFrame([r.to_numpy() if r is not None else [np.nan] * 5 for r in rows], index=bars.index)
    assert batch.notna().all(axis=1).sum() > 100
    assert np.allclose(live.to_numpy(), batch.to_numpy(), atol=1e-6, equal_nan=True)
