"""``evaluate --ablation``: the ablations run on the main run's folds with its fees and policy (the
ungated / single-timeframe arms reproduce the main run's returns bar for bar), coarser-timeframe
models train only on bars whose labels end before the test window, and the order-book ablation
is refused, before any training, with the coverage stated when the books do not cover the span."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from effnet_trading.applications._lob_synth import synthetic_book
from effnet_trading.applications.regimes import REGIMES, TRENDING, RegimeRules, regime_labels
from effnet_trading.errors import SpecError
from effnet_trading.evaluation import ablation
from effnet_trading.evaluation.evaluate import EvalConfig, evaluate
from effnet_trading.imaging import ImageSpec
from effnet_trading.model_zoo import train as train_module
from effnet_trading.model_zoo.train import TrainConfig
from effnet_trading.plugins.cli import main
from effnet_trading.strategies import SignalModel, TimeframeEnsemble, simulate

SPEC = ImageSpec("gadf", window=16, size=(16, 16), returns=True)


def _cfg(**kw) -> EvalConfig:
    tcfg = TrainConfig(spec=SPEC, horizon=6, epochs=1, patience=1, num_threads=1, seed=0)
    base = dict(
        models=("small_cnn",),
        train=tcfg,
        folds=2,
        max_train_bars=400,
        baselines=("ma_crossover",),
        bootstrap=100,
        lookahead_samples=2,
        null=False,
        model_kwargs={"small_cnn": {"widths": (8, 16)}},
        ablations=("regime", "timeframes"),
        ablation_timeframes=("5m", "15m"),
    )
    return EvalConfig(**(base | kw))


@pytest.fixture(scope="module")
def run(tmp_path_factory, planted, monkeypatch_module):
    seen = []
    real = train_module.train_and_export

    def spy(bars, cfg, out_dir, **kw):  # the coarser-timeframe trainings: record the bars they saw
        seen.append(bars)
        return real(bars, cfg, out_dir, **kw)

    monkeypatch_module.setattr(train_module, "train_and_export", spy)
    frame = planted.iloc[-3000:]
    out = tmp_path_factory.mktemp("ablation")
    res = evaluate(frame, _cfg(), out, progress=False)
    return frame, out, res, [b for b in seen if b.index.to_series().diff().min() > pd.Timedelta("5min")]


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def test_regime_ablation_pairs_the_main_runs_folds(run):
    frame, out, res, _ = run
    reg = res["ablations"]["regime"]
    folds = [json.loads((out / "folds" / f"fold_{k}.json").read_text()) for k in (0, 1)]
    trending = np.isin(regime_labels(frame, RegimeRules()).to_numpy(), [REGIMES.index(r) for r in TRENDING])
    spans = [slice(*(frame.index.get_loc(pd.Timestamp(t)) + e for t, e in zip(f["test_span"], (0, 1)))) for f in folds]
    for k, fold in enumerate(folds):
        assert reg["folds"][k]["test_span"] == fold["test_span"]
        assert reg["folds"][k]["trending_share"] == pytest.approx(trending[spans[k]].mean())
        for name in ("small_cnn", "ma_crossover"):  # the ungated arm is the main run's strategy, same fees
            assert reg["folds"][k][name]["total_return"] == pytest.approx(
                fold["strategies"][name]["perf"]["total_return"]
            )
            assert reg["folds"][k][f"{name} (trending only)"]["exposure"] <= reg["folds"][k][name]["exposure"]
    for name in ("small_cnn", "ma_crossover"):
        d = reg["differences_bps_per_bar"][f"{name} (trending only) - {name}"]
        assert d["pooled"]["low"] <= d["pooled"]["estimate"] <= d["pooled"]["high"]
        assert d["pooled"]["bars"] == sum(s.stop - s.start for s in spans) and len(d["per_fold"]) == 2
        assert d["pooled_trending"]["bars"] == sum(int(trending[s].sum()) for s in spans)
    md = (out / "results.md").read_text()
    assert "## Ablations" in md and "small_cnn (trending only) - small_cnn" in md
    assert "Ablations" in (out / "report.html").read_text()


def test_timeframe_ablation_single_arm_is_the_main_model_and_coarse_training_is_purged(run):
    frame, out, res, seen = run
    tf = res["ablations"]["timeframes"]
    assert tf["timeframes"] == ["5m", "15m"] and set(tf["differences_bps_per_bar"]) == {
        "ensemble - 5m",
        "ensemble - 15m",
    }
    folds = [json.loads((out / "folds" / f"fold_{k}.json").read_text()) for k in (0, 1)]
    for k, fold in enumerate(folds):
        assert tf["folds"][k]["5m"]["total_return"] == pytest.approx(
            fold["strategies"]["small_cnn"]["perf"]["total_return"]
        )
        assert tf["folds"][k]["ensemble"]["scored"] > 0.9
    assert len(seen) == 2  # one 15m model per fold
    for bars, fold in zip(seen, folds):
        test_start = pd.Timestamp(fold["test_span"][0])
        # the last 15m bar's label (horizon 6) and the embargo (6 bars) end before the test window
        assert bars.index[-1] + pd.Timedelta("15min") * (1 + 6 + 6) <= test_start
        assert bars.index[-1] + pd.Timedelta("15min") * (1 + 6 + 6) > test_start - pd.Timedelta("15min")
    assert json.loads((out / "results.json").read_text())["ablations"]["timeframes"]["model"] == "small_cnn"
    # the ensemble arm against TimeframeEnsemble.predict_proba on the kept models (an independent path)
    cfg = _cfg()
    for k, fold in enumerate(folds):
        members = {
            "5m": SignalModel(fold["strategies"]["small_cnn"]["model_dir"]),
            "15m": SignalModel(out / "models" / "ablation_timeframes" / f"fold_{k}" / "15m" / "model"),
        }
        lo, hi = (frame.index.get_loc(pd.Timestamp(t)) for t in fold["test_span"])
        probs = TimeframeEnsemble(members, base_timeframe="5m").predict_proba(frame.iloc[: hi + 1]).iloc[lo:]
        target = cfg.policy.replace(class_names=("sell", "hold", "buy")).positions(probs.drop(columns="agreement"))
        sim = simulate(frame.iloc[lo : hi + 1], target.to_numpy(), fees=cfg.fees, slippage=cfg.slippage)
        assert tf["folds"][k]["ensemble"]["total_return"] == pytest.approx(sim.final_equity / sim.init_cash - 1)


def test_orderbook_ablation_refused_with_the_coverage_before_training(tmp_path, planted):
    frame = planted.iloc[:400]
    book, _ = synthetic_book(900, levels=5, start=str(frame.index[100].tz_localize(None)), every_ms=1000, seed=1)
    books = tmp_path / "books"
    books.mkdir()
    book.to_frame().to_csv(books / "b.csv")  # 15 minutes of snapshots: 3 of the 400 5m bars
    csv = tmp_path / "bars.csv"
    frame.to_csv(csv, index_label="timestamp")
    out = tmp_path / "o"
    args = ["evaluate", "--data", str(csv), "--out", str(out), "--ablation", "orderbook", "--books", str(books)]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 1, res.output
    assert "cover 3 of the 400 evaluated bars (0.75%" in res.output and ">= 95%" in res.output
    assert not out.exists()  # refused before anything was written (no manifest of an unfinished run either)
    res = CliRunner().invoke(main, args[:-2])
    assert res.exit_code == 1 and "pass --books DIR" in res.output
    res = CliRunner().invoke(main, ["evaluate", "--data", str(csv), "--out", str(out), "--ablation", "regime,nope"])
    assert res.exit_code == 1 and "unknown ablation(s) ['nope']" in res.output


def test_ablation_options_and_timeframe_refusals(planted):
    from effnet_trading.evaluation.options import eval_config_dict

    d = eval_config_dict({"ablations": ("regime", "timeframes,orderbook"), "ablation_timeframes": "5m,1h"})
    cfg = EvalConfig.from_dict(d)
    assert cfg.ablations == ("regime", "timeframes", "orderbook") and cfg.ablation_timeframes == ("5m", "1h")
    with pytest.raises(SpecError, match="must hold it, at least one multiple"):
        ablation.check_ablations(
            planted.iloc[:300], replace(cfg, ablations=("timeframes",), ablation_timeframes=("1h", "4h"))
        )
    with pytest.raises(SpecError, match="must hold it"):
        ablation.check_ablations(
            planted.iloc[:300], replace(cfg, ablations=("timeframes",), ablation_timeframes=("5m",))
        )
    assert ablation.check_ablations(planted.iloc[:300], replace(cfg, ablations=("timeframes", "regime"))) == {
        "timeframes": "5m"
    }


def test_a_failed_ablation_is_recorded_and_the_main_results_are_kept(monkeypatch, tmp_path):
    """An ablation that cannot run (here: it raises a TrainingError) is recorded with its reason and a
    warning; run_ablations returns, so evaluate still writes the main run's results."""
    from types import SimpleNamespace

    from effnet_trading.errors import TrainingError
    from effnet_trading.evaluation import ablation

    def fail(*a, **k):
        raise TrainingError("fold 0: only 0 training samples before the test window")

    monkeypatch.setattr(ablation, "regime_ablation", fail)
    cfg = SimpleNamespace(ablations=("regime",), models=("small_cnn",), baselines=(), books=None)
    with pytest.warns(UserWarning, match="the regime ablation failed: fold 0: only 0 training samples"):
        res = ablation.run_ablations(pd.DataFrame(), cfg, [], tmp_path)
    assert res == {
        "regime": {"error": "the regime ablation failed: fold 0: only 0 training samples before the test window"}
    }
    assert "### regime: not measured" in ablation.ablation_markdown(res)
