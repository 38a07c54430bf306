"""evaluate end to end on CI-sized data: the planted edge shows, a random walk shows none, a
deliberately leaky pipeline is caught by the null and look-ahead checks (and the command fails)."""

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from effnet_trading.errors import SpecError, TrainingError
from effnet_trading.evaluation import evaluate as evaluate_module
from effnet_trading.evaluation.evaluate import EvalConfig, evaluate, lookahead_check
from effnet_trading.imaging import ImageSpec
from effnet_trading.model_zoo.train import TrainConfig

# 16 x 16 GADF of returns: GADF tells a V from a Λ (GASF cannot); 16 px learn the planted edge (conftest)
SPEC = ImageSpec("gadf", window=16, size=(16, 16), returns=True)
TINY = {"small_cnn": {"widths": (8, 16, 32)}}
# one torch thread: on a shared CPU two OpenMP threads can be ~10x slower, never faster for models this small


def _cfg(train=None, **kw) -> EvalConfig:
    tcfg = replace(TrainConfig(spec=SPEC, horizon=6, epochs=2, patience=2, num_threads=1, seed=0), **(train or {}))
    base = dict(
        models=("small_cnn",),
        train=tcfg,
        folds=2,
        max_train_bars=2000,
        baselines=("buy_and_hold", "ma_crossover", "logreg"),
        bootstrap=200,
        lookahead_samples=3,
        model_kwargs=TINY,
    )
    return EvalConfig(**(base | kw))


@pytest.fixture(scope="module")
def planted_run(tmp_path_factory, planted):
    out = tmp_path_factory.mktemp("eval") / "planted"
    return out, evaluate(planted.iloc[:8000], _cfg(), out, progress=False)


@pytest.mark.slow
def test_planted_edge_is_found_and_the_null_passes(planted_run):
    out, res = planted_run
    c = res["strategies"]["small_cnn"]["classification"]
    assert c["accuracy_ci"]["low"] > c["majority_rate"], c["accuracy_ci"]
    assert res["null"]["ran"] and res["null"]["ok"], res["null"]["leaks"]
    nc = res["null"]["strategies"]["small_cnn"]["classification"]
    assert nc["accuracy_ci"]["low"] <= nc["majority_rate"] + 0.01
    assert res["lookahead"]["small_cnn"]["ok"] and res["verdict"]["ok"]
    # scored through the runtime path (render uint8 -> ONNX): equals the torch probabilities on the
    # training dataset's images up to float error, i.e. no train/serve skew
    assert res["strategies"]["small_cnn"]["runtime_vs_torch_max_abs"] < 1e-4
    # same folds, same execution for every strategy
    n = {k: v["perf"]["bars"] for k, v in res["strategies"].items()}
    assert len(set(n.values())) == 1, n


@pytest.mark.slow
def test_outputs_and_resume(planted_run):
    out, res = planted_run
    for name in (
        "report.html",
        "results.json",
        "results.md",
        "config.json",
        "folds/fold_0.json",
        "folds/fold_1.json",
        "folds/null_fold_1.json",
    ):
        assert (out / name).exists(), name
    md = (out / "results.md").read_text()
    assert "| small_cnn |" in md and "majority" in md and "Null check: PASS" in md
    assert "Learning curves" in md and "| small_cnn | 0 |" in md and "| small_cnn | 1 |" in md  # every fold's curve
    assert "Learning curves (solid train" in (out / "report.html").read_text()
    assert '<img src="data:image/png;base64,' in (out / "report.html").read_text()
    # calibration: pooled ECE in the table, class shares in the text, the reliability figure in the page
    assert "| log-loss | ECE |" in md and "Calibration (pooled test windows" in md
    assert "small_cnn: ECE " in md and "predicted/true class shares" in md
    assert "Calibration: reliability diagrams" in (out / "report.html").read_text()
    saved = json.loads((out / "results.json").read_text())
    cls = saved["strategies"]["small_cnn"]["classification"]
    assert 0 <= cls["ece"] <= 1 and sum(cls["reliability"]["count"]) == cls["n"]
    assert saved["strategies"]["small_cnn"]["sharpe_ci"]["low"] <= saved["strategies"]["small_cnn"]["sharpe_ci"]["high"]
    cfg = EvalConfig.from_dict(json.loads((out / "config.json").read_text()))
    assert cfg.to_dict() == _cfg().to_dict()
    stamp = (out / "folds/fold_0.json").stat().st_mtime_ns
    again = evaluate(_planted_8k(), cfg, out, resume=True, progress=False)  # every fold is on disk
    assert (out / "folds/fold_0.json").stat().st_mtime_ns == stamp
    assert again["strategies"]["small_cnn"]["perf"] == res["strategies"]["small_cnn"]["perf"]
    with pytest.raises(TrainingError, match=r"config.json differs in \['train.horizon'\]"):
        evaluate(_planted_8k(), _cfg(train={"horizon": 3}), out, resume=True, progress=False)


def _planted_8k():
    from pathlib import Path

    from effnet_trading.imaging import load_ohlcv

    return load_ohlcv(Path(__file__).resolve().parents[1] / "sample_data" / "planted_5m.csv").iloc[:8000]


@pytest.mark.slow
def test_random_walk_shows_no_edge(tmp_path, random_walk):
    res = evaluate(random_walk.iloc[:5000], _cfg(null=False, baselines=("logreg",)), tmp_path, progress=False)
    for name in ("small_cnn", "logreg"):
        v = res["strategies"][name]
        assert v["classification"]["accuracy_ci"]["low"] <= v["classification"]["majority_rate"], name
        assert v["sharpe_ci"]["low"] <= 0.0, name
    assert res["null"]["ran"] is False and "NOT checked" in res["null"]["note"]
    assert "Null check: skipped (--no-null)" in (tmp_path / "results.md").read_text()


def _leaky(frame, leak_bars: int):
    """A deliberately broken view: bar t carries the values of bar t+leak_bars (the future)."""
    from effnet_trading.imaging import validate_ohlcv

    a = frame.to_numpy()
    a = np.vstack([a[leak_bars:], np.repeat(a[-1:], leak_bars, 0)])
    return validate_ohlcv(pd.DataFrame(a, index=frame.index, columns=frame.columns))


@pytest.fixture()
def leaky_images(monkeypatch):
    """Inject the leak: evaluate renders its images from ``_leaky(frame, n)`` (labels stay true)."""

    def leak(n: int) -> None:
        monkeypatch.setattr(evaluate_module, "_image_view", lambda frame: _leaky(frame, n))

    return leak


@pytest.mark.slow
def test_leaky_pipeline_fails_the_command(tmp_path, random_walk, leaky_images):
    from click.testing import CliRunner

    from effnet_trading.plugins.cli import main

    csv = tmp_path / "rw.csv"
    random_walk.iloc[:3000].to_csv(csv, index_label="timestamp")
    out = tmp_path / "run"
    args = [
        "evaluate",
        "--data",
        str(csv),
        "--models",
        "small_cnn",
        "--baselines",
        "",
        "--spec",
        "gadf",
        "--returns",
        "--size",
        "16",
        "--window",
        "16",
        "--horizon",
        "6",
        "--folds",
        "1",
        "--epochs",
        "2",
        "--bootstrap",
        "200",
        "--model-kwargs",
        '{"small_cnn": {"widths": [8, 16, 32]}}',
        "--threads",
        "1",
        "--no-progress",
        "--out",
        str(out),
    ]
    leaky_images(6)
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1, result.output
    assert "the pipeline leaks or looks ahead" in result.output
    res = json.loads((out / "results.json").read_text())
    assert not res["lookahead"]["small_cnn"]["ok"]
    assert not res["null"]["ok"] and any("small_cnn: null accuracy" in x for x in res["null"]["leaks"])


def test_lookahead_check_passes_a_causal_model_and_catches_a_leak(tiny_model_dir, planted, leaky_images):
    frame = planted.iloc[:600]
    ts = [200, 350, 500]
    ok = lookahead_check(tiny_model_dir, frame, ts)
    assert ok["ok"] and ok["max_abs_change"] == 0.0
    leaky_images(3)
    bad = lookahead_check(tiny_model_dir, frame, ts)
    assert not bad["ok"] and bad["max_abs_change"] > 0 and bad["changed"]


def test_leaky_view_shifts_the_future_into_bar_t(planted):
    frame = planted.iloc[:50]
    view = _leaky(frame, 2)
    np.testing.assert_array_equal(view.to_numpy()[:48], frame.to_numpy()[2:])
    assert view.index.equals(frame.index) and evaluate_module._image_view(frame) is frame


def test_config_round_trip_and_errors():
    cfg = _cfg(models=("small_cnn", "compact"))
    assert EvalConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))).to_dict() == cfg.to_dict()
    with pytest.raises(SpecError, match=r"unknown baseline\(s\) \['momentum'\]"):
        _cfg(baselines=("momentum",))
    with pytest.raises(SpecError, match="unknown EvalConfig keys"):
        EvalConfig.from_dict({"modles": ["x"]})


def test_frozen_features_are_normalised_like_training():
    import torch

    from effnet_trading.evaluation.evaluate import _features
    from effnet_trading.model_zoo import create_model

    torch.manual_seed(0)
    net = create_model("small_cnn", num_classes=3, in_chans=1, widths=(4, 8, 8)).eval()
    images = np.random.default_rng(0).integers(0, 256, (5, 1, 16, 16)).astype(np.uint8)
    got = _features(net, images, [0.4], [0.2])
    with torch.no_grad():
        ref = net.forward_features((torch.from_numpy(images / 255.0).float() - 0.4) / 0.2).numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)


class _Captured(Exception):
    pass


def test_config_file_and_flags_build_the_same_config(tmp_path, planted, monkeypatch):
    """--config FILE.toml holds the EvalConfig; options on the command line override it."""
    from click.testing import CliRunner

    from effnet_trading.plugins.cli import main

    def capture(frame, cfg, out_dir, **kw):
        raise _Captured(cfg)

    monkeypatch.setattr(evaluate_module, "evaluate", capture)
    csv = tmp_path / "bars.csv"
    planted.iloc[:300].to_csv(csv, index_label="timestamp")
    flags = [
        "--models",
        "small_cnn",
        "--baselines",
        "logreg",
        "--spec",
        "gadf",
        "--returns",
        "--size",
        "16",
        "--window",
        "16",
        "--horizon",
        "4",
        "--folds",
        "2",
        "--epochs",
        "3",
        "--threshold",
        "0.45",
        "--long-only",
        "--threads",
        "1",
    ]
    toml = tmp_path / "run.toml"
    toml.write_text(
        'models = ["small_cnn"]\nbaselines = ["logreg"]\nfolds = 2\n[train]\nhorizon = 4\nepochs = 3\n'
        'num_threads = 1\n[train.spec]\nkind = "gadf"\nwindow = 16\nsize = [16, 16]\nreturns = true\n'
        "[policy]\nthreshold = 0.45\nlong_only = true\n"
    )

    def config(args):
        res = CliRunner().invoke(main, ["evaluate", "--data", str(csv), "--out", str(tmp_path / "o"), *args])
        assert isinstance(res.exception, _Captured), res.output
        return res.exception.args[0]

    from_flags, from_file = config(flags), config(["--config", str(toml)])
    assert from_flags.to_dict() == from_file.to_dict()
    assert from_file.train.spec == ImageSpec("gadf", window=16, size=(16, 16), returns=True)
    assert from_file.policy.threshold == 0.45 and from_file.policy.long_only and from_file.train.horizon == 4
    over = config(["--config", str(toml), "--epochs", "7", "--threshold", "0.5"])
    assert over.train.epochs == 7 and over.policy.threshold == 0.5 and over.train.horizon == 4
    bad = tmp_path / "bad.toml"
    bad.write_text("folds = [")
    res = CliRunner().invoke(main, ["evaluate", "--data", str(csv), "--out", str(tmp_path / "o"), "--config", str(bad)])
    assert res.exit_code != 0 and "is not valid TOML" in res.output


@pytest.mark.slow
def test_report_gallery_explains_test_span_decisions(planted_run, planted, tmp_path):
    """--explain-top: the first model's most confident buy/sell bars of the last fold's test span, with maps."""
    import shutil

    from effnet_trading.evaluation.explain_gallery import add_evaluate_gallery

    out, _ = planted_run
    copy = tmp_path / "run"  # leave the shared run's report.html as the other tests read it
    shutil.copytree(out, copy)
    last = json.loads(sorted((copy / "folds").glob("fold_*.json"))[-1].read_text())
    doc = add_evaluate_gallery(copy, planted.iloc[:8000], 1)
    lo, hi = (pd.Timestamp(t) for t in last["test_span"])
    assert 1 <= len(doc["explanations"]) <= 2 and doc["method"] == "occlusion"  # evaluate drops checkpoints
    assert all(lo <= pd.Timestamp(r["timestamp"]) <= hi for r in doc["explanations"])
    assert "What the model looked at" in (copy / "report.html").read_text()


def test_ruined_folds_are_counted_and_flagged_also_in_results_written_before_the_rule():
    from effnet_trading.evaluation.eval_report import fold_ruined, ruin_flag

    assert fold_ruined({"ruined": True, "max_drawdown": -1.0})
    assert not fold_ruined({"ruined": False, "max_drawdown": -0.3})
    assert fold_ruined({"max_drawdown": -1.4})  # an old fold whose equity went below zero
    assert not fold_ruined({"max_drawdown": -0.99})
    assert ruin_flag(2, 5.0) == " ⚠ruined in 2 of 5 folds"
    assert ruin_flag(0, 5) == "" and ruin_flag(float("nan"), 5) == ""


@pytest.mark.slow
def test_resume_after_the_folder_moved(planted_run, tmp_path):
    """Fold records name their model folders by absolute path; a resume in a folder moved since (a sweep
    cell is written in a work folder, then renamed) finds them under the new folder."""
    import shutil

    out, res = planted_run
    moved = tmp_path / "moved"
    shutil.copytree(out, moved)
    for path in (moved / "folds").glob("*.json"):  # as if written in a folder that no longer exists
        path.write_text(path.read_text().replace(str(out), str(tmp_path / "gone")))
    again = evaluate(_planted_8k(), _cfg(), moved, resume=True, progress=False)
    assert again["lookahead"]["small_cnn"]["ok"]
    assert again["strategies"]["small_cnn"]["perf"] == res["strategies"]["small_cnn"]["perf"]


def test_recorded_model_dir_prefers_the_evaluations_own_copy(tmp_path, monkeypatch):
    """A renamed evaluation folder resumes with its own models, never another run's that now sits at the
    recorded (relative) path; an --out named models works too."""
    from effnet_trading.evaluation.evaluate import recorded_model_dir

    monkeypatch.chdir(tmp_path)
    rec = "runs/e1/models/real/fold_0/small_cnn/model"
    Path(rec).mkdir(parents=True)
    Path("runs/e1").rename("runs/e1_old")
    Path(rec).mkdir(parents=True)  # a new run into the old folder name
    assert recorded_model_dir("runs/e1_old", rec) == Path("runs/e1_old/models/real/fold_0/small_cnn/model")
    assert recorded_model_dir("runs/e1", rec) == Path(rec)
    Path("models/models/real/fold_0/m/model").mkdir(parents=True)
    assert recorded_model_dir("models", "/gone/models/models/real/fold_0/m/model") == Path(
        "models/models/real/fold_0/m/model"
    )
    assert recorded_model_dir("runs/e1_old", "/elsewhere/model") == Path("/elsewhere/model")  # not ours: as recorded
