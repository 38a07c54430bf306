"""Training: the planted edge is found, nothing is found in a random walk, resume is exact,
the exported folder reproduces torch, and the dataset matches render + labels."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
import torch
from conftest import TRAINED_SPEC  # noqa: E402

from effnet_trading.errors import TrainingError  # noqa: E402
from effnet_trading.imaging import ImageSpec, StackSpec, render  # noqa: E402
from effnet_trading.imaging.labels import forward_return_labels  # noqa: E402
from effnet_trading.model_zoo import list_models  # noqa: E402
from effnet_trading.model_zoo.dataset import ImageDataset  # noqa: E402
from effnet_trading.model_zoo.metrics import CollapseWarning  # noqa: E402
from effnet_trading.model_zoo.train import TrainConfig, resolve_device, train_and_export, train_model  # noqa: E402

TINY = dict(
    spec=ImageSpec("gadf", window=16, size=(16, 16), returns=True),
    progress=False,
    num_threads=1,
    model_kwargs={"widths": (8, 16, 32)},
    batch_size=64,
)


def _binomial_ceiling(p: float, n: int, z: float = 3.0) -> float:
    """Majority rate + z binomial standard errors: the most a no-skill model should reach on n samples."""
    return p + z * math.sqrt(p * (1 - p) / n)


# -- config and dataset ---------------------------------------------------------------------


def test_cuda_without_a_gpu_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # also where a GPU is present
    assert resolve_device("auto").type == "cpu" and resolve_device("cpu").type == "cpu"
    for asked in ("cuda", "cuda:0"):
        with pytest.raises(TrainingError, match=f"device '{asked}' asks for a GPU.*gpus_per_cell = 0"):
            resolve_device(asked)


def test_config_json_roundtrip():
    spec = StackSpec(
        (ImageSpec("gasf", window=20, size=(24, 24)), ImageSpec("gadf", window=20, size=(24, 24), returns=True))
    )
    cfg = TrainConfig(model="small_cnn", spec=spec, epochs=3, class_weights=None, model_kwargs={"widths": (8, 16)})
    back = TrainConfig.from_dict(json.loads(cfg.to_json()))
    assert back.spec == spec and back.to_dict() == cfg.to_dict() and back.class_weights is None
    with pytest.raises(TrainingError, match=r"unknown TrainConfig keys \['epoch'\]"):
        TrainConfig.from_dict({**cfg.to_dict(), "epoch": 3})


def test_dataset_matches_render_and_labels(planted, tmp_path):
    df = planted.iloc[:900]
    spec = ImageSpec("gasf", window=16, size=(16, 16))
    ds = ImageDataset.build(df, spec, horizon=6, chunk=128)
    labels, _ = forward_return_labels(df["close"].to_numpy(), 6)
    np.testing.assert_array_equal(ds.ends, np.arange(15, 900 - 6))  # only warm-up and the last 6 bars go
    assert ds.dropped == {"warmup": 15, "unlabelled": 6, "kept": len(ds)}
    np.testing.assert_array_equal(ds.labels, labels[ds.ends])
    assert ds.images.dtype == np.uint8
    np.testing.assert_array_equal(ds.images, render(spec, df, ds.ends, dtype=np.uint8))
    assert (ds.index == df.index[ds.ends]).all()
    # memory-mapped cache: same images, rendered once
    cached = ImageDataset.build(df, spec, horizon=6, cache_dir=tmp_path, chunk=100)
    assert isinstance(cached.images, np.memmap)
    np.testing.assert_array_equal(cached.images, ds.images)
    (path,) = tmp_path.glob("images-*.npy")
    mtime = path.stat().st_mtime_ns
    ImageDataset.build(df, spec, horizon=6, cache_dir=tmp_path)
    assert path.stat().st_mtime_ns == mtime
    # channel statistics and the float view
    idx = np.arange(100, 400)
    mean, std = ds.channel_stats(idx, chunk=64)
    x = ds.images[idx].astype(np.float64) / 255
    assert mean == pytest.approx([x.mean()]) and std == pytest.approx([x.std()])
    xb, yb = next(ds.batches(idx, 32))
    assert xb.dtype == torch.float32 and xb.shape == (32, 1, 16, 16) and float(xb.max()) <= 1.0
    assert sum(ds.class_balance().values()) == pytest.approx(1.0)


# -- the edge is found where it exists, and only there ----------------------------------------


@pytest.mark.slow
def test_planted_edge_found(trained_model_dir, planted, planted_events, sample_meta):
    from effnet_trading.model_zoo.card import load_card
    from effnet_trading.model_zoo.runtime import Predictor

    card = load_card(trained_model_dir)
    test, ev = card.metrics["test"], card.metrics["event_accuracy"]
    assert not test["collapsed"]
    assert test["accuracy"] >= test["majority_rate"]
    assert ev["n"] >= 80 and ev["accuracy"] > 0.6  # chance is ~1/3; oracle ~0.92
    # independent check through the ONNX folder: render the test span and score the event bars
    df = planted.iloc[:12_000]
    start, end = (df.index.get_loc(__import__("pandas").Timestamp(t)) for t in card.metrics["split"]["test"])
    events = planted_events["position"].to_numpy()
    events = events[(events >= start) & (events <= end)]
    labels, _ = forward_return_labels(df["close"].to_numpy(), 6)
    with Predictor(trained_model_dir, providers="cpu") as pred:
        proba = pred.predict(render(card.spec, df, events))
    acc = float(np.mean(proba.argmax(1) == labels[events]))
    assert len(events) == ev["n"] and acc == pytest.approx(ev["accuracy"], abs=0.02)
    assert card.training["span"][1] < card.metrics["split"]["test"][0]


def test_compact_trains_and_exports(planted, tmp_path):
    """Plumbing only (64 training images, 1 epoch): compact goes through train_and_export on CPU."""
    assert "compact" in list_models()
    cfg = TrainConfig(model="compact", epochs=1, max_train_samples=64, **{**TINY, "model_kwargs": {}, "batch_size": 32})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CollapseWarning)
        res = train_and_export(planted.iloc[:700], cfg, tmp_path)
    assert res.metrics["split"]["n_train"] == 64 and (res.model_dir / "model.onnx").exists()


@pytest.mark.slow
def test_compact_finds_planted_edge(planted, planted_events):
    """The compact EfficientNet finds the planted edge on CPU (under a minute on 2 cores): event-bar
    accuracy far above chance, overall accuracy at least the majority rate. 8,000 bars x 2 epochs
    (measured: 85 event bars in the test span at 0.91 accuracy, test accuracy 0.56 beside a majority
    rate of 0.36; 4 epochs gave 0.92 for twice the time)."""
    assert "compact" in list_models()
    cfg = TrainConfig(model="compact", spec=TRAINED_SPEC, epochs=2, progress=False, num_threads=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CollapseWarning)
        res = train_model(planted.iloc[:8_000], cfg)
    ev = res.accuracy_on(planted_events["position"])
    assert ev["n"] > 50 and ev["accuracy"] > 0.6, (ev, res.history)
    assert res.metrics["test"]["accuracy"] >= res.metrics["test"]["majority_rate"], res.metrics["test"]


@pytest.mark.slow
def test_nothing_found_in_random_walk(random_walk):
    cfg = TrainConfig(
        model="small_cnn",
        spec=TRAINED_SPEC,
        epochs=5,
        progress=False,
        num_threads=1,
        model_kwargs={"widths": (16, 32, 64)},
    )  # the trained_model_dir pipeline
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CollapseWarning)  # a no-skill model may well collapse
        res = train_model(random_walk.iloc[:12_000], cfg)
    t = res.metrics["test"]
    assert t["n"] > 2000
    assert t["accuracy"] <= _binomial_ceiling(t["majority_rate"], t["n"]), t


# -- resume, export parity, folds, CLI ---------------------------------------------------------


class _Interrupt(Exception):
    pass


@pytest.mark.slow
def test_resume_equals_uninterrupted_and_export_reproduces_torch(planted, tmp_path):
    from effnet_trading.model_zoo.runtime import Predictor

    df = planted.iloc[:2500]
    cfg = TrainConfig(epochs=3, patience=10, seed=3, **TINY)
    full = train_and_export(df, cfg, tmp_path / "full")

    def stop_after_two(row):
        if row["epoch"] == 2:
            raise _Interrupt

    with pytest.raises(_Interrupt):
        train_model(df, cfg, tmp_path / "cut", callbacks=[stop_after_two])
    assert sorted(p.name for p in (tmp_path / "cut/checkpoints/fold_0").iterdir()) == ["epoch_001.pt", "epoch_002.pt"]
    resumed = train_model(df, cfg, tmp_path / "cut", resume=True)
    strip = lambda h: [{k: v for k, v in r.items() if k != "seconds"} for r in h]  # noqa: E731
    assert strip(resumed.history) == strip(full.history)
    for (k, a), b in zip(full.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), k
    np.testing.assert_array_equal(resumed.test_proba, full.test_proba)
    # the exported folder reproduces the torch probabilities on the test images
    with Predictor(full.model_dir, providers="cpu") as pred:
        onnx = pred.predict(full.dataset.float_images(full.split.test))
    assert np.max(np.abs(onnx - full.test_proba)) <= 1e-4
    card = json.loads((full.model_dir / "card.json").read_text())
    assert card["label"]["horizon"] == 6 and card["metrics"]["split"]["test"] == full.metrics["split"]["test"]
    assert card["normalization"]["mean"] == pytest.approx(full.mean)
    for name in ("config.json", "history.json", "metrics.json"):
        assert (tmp_path / "full" / name).exists()
    assert TrainConfig.from_dict(json.loads((tmp_path / "full/config.json").read_text())).to_dict() == cfg.to_dict()


def test_resume_rejects_changed_config(planted, tmp_path):
    cfg = TrainConfig(epochs=1, max_train_samples=300, **TINY)
    train_model(planted.iloc[:1200], cfg, tmp_path)
    with pytest.raises(TrainingError, match=r"config differs in \['lr'\]"):
        train_model(planted.iloc[:1200], TrainConfig.from_dict({**cfg.to_dict(), "lr": 1e-2}), tmp_path, resume=True)
    with pytest.raises(TrainingError, match="resume=True needs the out_dir"):
        train_model(planted.iloc[:1200], cfg, resume=True)


def test_walk_forward_folds_report(planted, tmp_path):
    cfg = TrainConfig(epochs=1, folds=3, **TINY)
    res = train_model(planted.iloc[:2400], cfg, tmp_path)
    assert [f["fold"] for f in res.folds] == [0, 1, 2]
    for f in res.folds:
        sp = f["split"]
        assert sp["train"][1] < sp["valid"][0] <= sp["valid"][1] < sp["test"][0]
        assert np.array(f["test"]["confusion"]).sum() == sp["n_test"]
        assert {"accuracy", "macro_f1", "log_loss", "majority_rate"} <= set(f["test"])
    tests = [f["split"]["test"] for f in res.folds]
    assert all(a[1] < b[0] for a, b in zip(tests, tests[1:]))
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert len(saved["folds"]) == 3 and saved["summary"]["folds"] == 3


@pytest.mark.filterwarnings("ignore::effnet_trading.model_zoo.metrics.CollapseWarning")  # 1 epoch on 1,500 bars
def test_cli_train(planted, tmp_path):
    from click.testing import CliRunner

    from effnet_trading.plugins.cli import main

    csv = tmp_path / "bars.csv"
    planted.iloc[:1500].to_csv(csv)
    out = tmp_path / "run"
    r = CliRunner().invoke(
        main,
        [
            "train",
            "--data",
            str(csv),
            "--model",
            "small_cnn",
            "--kind",
            "gadf",
            "--returns",
            "--window",
            "16",
            "--size",
            "16",
            "--horizon",
            "6",
            "--epochs",
            "1",
            "--folds",
            "1",
            "--out",
            str(out),
            "--no-progress",
        ],
    )
    assert r.exit_code == 0, r.output
    assert "accuracy" in r.output and "majority" in r.output and "log-loss" in r.output
    assert (
        "learning curves" in r.output and "fold 0: 1:" in r.output and "vs majority" in r.output
    )  # curve beside majority
    assert "architecture: small_cnn at 16x16 px" in r.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["diagnosis"]["state"] in ("learned", "under-trained", "converged to base rate")
    assert len(metrics["curves"]["0"]["val_loss"]) == 1
    assert f"model: {out / 'model'}" in r.output and (out / "model/card.json").exists()
    bad = CliRunner().invoke(main, ["train", "--data", str(csv), "--model", "nope", "--out", str(tmp_path / "x")])
    assert bad.exit_code != 0 and "unknown model 'nope'" in bad.output


def test_no_weight_decay_on_norm_weights_and_biases():
    from effnet_trading.model_zoo import create_model
    from effnet_trading.model_zoo.train import _param_groups

    net = create_model("compact", num_classes=3, in_chans=1)
    decay, no_decay = _param_groups(net, 0.05, False)
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0
    assert all(p.ndim > 1 for p in decay["params"]) and all(p.ndim <= 1 for p in no_decay["params"])
    bn = net.features[0][1]
    assert any(p is bn.weight for p in no_decay["params"]) and any(p is bn.bias for p in no_decay["params"])
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(net.parameters()))
    (everything,) = _param_groups(net, 0.05, True)
    assert everything["weight_decay"] == 0.05 and len(everything["params"]) == len(list(net.parameters()))


# a small_cnn run of a few seconds: 400 training samples of 16 px GADF, one fold
TINY_RUN = dict(
    model="small_cnn",
    spec=ImageSpec("gadf", window=16, size=(16, 16), returns=True),
    folds=1,
    seed=0,
    progress=False,
    max_train_samples=400,
    model_kwargs={"widths": (8, 16, 32)},
)


def test_ema_weights_are_the_ones_scored(planted):
    """With ema_decay the validated/exported weights are the average, not the last step's."""
    import torch

    from effnet_trading.model_zoo.train import TrainConfig, train_model

    base = dict(TINY_RUN, epochs=1)
    plain = train_model(planted.iloc[:1500], TrainConfig(**base))
    ema = train_model(planted.iloc[:1500], TrainConfig(**base, ema_decay=0.5))
    frozen = train_model(planted.iloc[:1500], TrainConfig(**base, ema_decay=1.0 - 1e-12))  # EMA never moves: the init
    w = lambda r: r.model.classifier.weight.detach()  # noqa: E731
    assert not torch.allclose(w(plain), w(ema))
    torch.manual_seed(0)  # same seed and fold as the trainer's model init
    from effnet_trading.model_zoo import create_model

    init = create_model("small_cnn", num_classes=3, in_chans=1, widths=(8, 16, 32))
    assert torch.allclose(w(frozen), init.classifier.weight.detach(), atol=1e-6)


def test_channels_last_training_matches_the_default_layout(planted, tmp_path):
    """channels_last (the default, on CPU too) really trains in the NHWC layout, trains the same model as the
    NCHW layout up to float rounding, and hands the model back in the default layout (what export and user
    code expect)."""
    base = dict(TINY_RUN, epochs=2, patience=2)
    nhwc = train_model(planted.iloc[:1500], TrainConfig(**base), tmp_path / "nhwc")
    nchw = train_model(planted.iloc[:1500], TrainConfig(**base, channels_last=False), tmp_path / "nchw")

    def trained_layout(run: str) -> str:  # the layout of a conv weight as training held it (epoch-1 checkpoint)
        st = torch.load(tmp_path / run / "checkpoints" / "fold_0" / "epoch_001.pt", weights_only=False)
        w = next(v for v in st["net"].values() if v.dim() == 4 and v.shape[1] > 1)
        return "nchw" if w.is_contiguous() else "nhwc" if w.is_contiguous(memory_format=torch.channels_last) else "?"

    assert (trained_layout("nhwc"), trained_layout("nchw")) == ("nhwc", "nchw")
    for a, b in zip(nhwc.history, nchw.history, strict=True):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-3)
        assert a["val_loss"] == pytest.approx(b["val_loss"], rel=1e-3)
    # Adam amplifies the rounding over the steps: close in value, and the same pattern across samples
    assert np.abs(nhwc.test_proba - nchw.test_proba).max() < 5e-3
    assert (
        np.corrcoef(nhwc.test_proba[:, 2] - nhwc.test_proba[:, 0], nchw.test_proba[:, 2] - nchw.test_proba[:, 0])[0, 1]
        > 0.99
    )
    assert all(p.is_contiguous() for p in nhwc.model.parameters())


@pytest.mark.parametrize("select_by", ["val_loss", "val_acc", "val_loss_T"])
def test_kept_epoch_follows_select_by(planted, select_by):
    """The restored epoch is the best one of the recorded curve under ``select_by``; its test figures are that
    epoch's (the weights really are restored)."""
    cfg = TrainConfig(**TINY_RUN, epochs=3, patience=3, select_by=select_by)
    res = train_model(planted.iloc[:1500], cfg)
    h = res.history
    assert all("val_loss_T" in r for r in h) == (select_by == "val_loss_T")
    if select_by == "val_acc":
        want = max(range(3), key=lambda i: (h[i]["val_acc"], -h[i]["val_loss"])) + 1
    else:
        want = min(range(3), key=lambda i: h[i][select_by]) + 1
    assert res.metrics["best_epoch"] == want
    assert res.metrics["valid"]["accuracy"] == pytest.approx(h[want - 1]["val_acc"])


def test_selection_score_rules_disagree_where_they_should():
    """A one-class first epoch (raw loss lowest, about ln 3) against a later, over-confident but better-ranked
    epoch: val_loss keeps the first, val_loss_T and val_acc the later one (the rule of docs/training.md, exp. 3)."""
    from effnet_trading.model_zoo.train import _selection_score

    hist = [
        {"loss": 1.10, "val_loss": 1.0986, "val_acc": 0.34, "val_loss_T": 1.0986},
        {"loss": 0.90, "val_loss": 1.2500, "val_acc": 0.41, "val_loss_T": 1.0700},
        {"loss": 0.80, "val_loss": 1.3100, "val_acc": 0.42, "val_loss_T": 1.0800},
    ]
    best = {r: min(range(3), key=lambda i: _selection_score(hist[i], r)) for r in ("val_loss", "val_loss_T", "val_acc")}
    assert best == {"val_loss": 0, "val_loss_T": 1, "val_acc": 2}
    assert _selection_score({"loss": 0.5}, "val_loss_T") == 0.5  # no validation part: the training loss


def test_unknown_select_by_refused():
    with pytest.raises(TrainingError, match="select_by='val_f1' is unknown"):
        TrainConfig(select_by="val_f1")


class _Captured(Exception):
    pass


def test_train_config_file_and_flags_build_the_same_config(tmp_path, planted, monkeypatch):
    """`train --config FILE.toml` holds the TrainConfig; options on the command line override it."""
    from click.testing import CliRunner

    from effnet_trading.model_zoo import train as train_module
    from effnet_trading.plugins.cli import main

    def capture(frame, cfg, out_dir, **kw):
        raise _Captured(cfg)

    monkeypatch.setattr(train_module, "train_and_export", capture)
    csv = tmp_path / "bars.csv"
    planted.iloc[:300].to_csv(csv, index_label="timestamp")
    toml = tmp_path / "train.toml"
    toml.write_text('model = "compact"\nepochs = 3\nhorizon = 4\n[spec]\nkind = "gadf"\nwindow = 16\nsize = [16, 16]\n')

    def config(args):
        res = CliRunner().invoke(main, ["train", "--data", str(csv), "--out", str(tmp_path / "o"), *args])
        assert isinstance(res.exception, _Captured), res.output
        return res.exception.args[0]

    flags = [
        "--model",
        "compact",
        "--epochs",
        "3",
        "--horizon",
        "4",
        "--kind",
        "gadf",
        "--window",
        "16",
        "--size",
        "16",
    ]
    assert config(["--config", str(toml)]).to_dict() == config(flags).to_dict()
    over = config(["--config", str(toml), "--epochs", "5"])
    assert over.epochs == 5 and over.horizon == 4 and over.spec == ImageSpec("gadf", window=16, size=(16, 16))


def test_balanced_weights_skip_a_class_absent_from_the_training_part():
    """A class with no training samples (a regime that never occurs in a fold) gets weight 0 with a
    warning; the present classes are balanced among themselves: n / (present classes x count)."""
    from effnet_trading.model_zoo.train import _class_weights

    labels = np.array([0] * 6 + [2] * 2)
    with pytest.warns(RuntimeWarning, match=r"class\(es\) \[1, 3\] have no training samples"):
        w = _class_weights(labels, "balanced", 4)
    np.testing.assert_allclose(w.numpy(), [8 / (2 * 6), 0.0, 8 / (2 * 2), 0.0])
    np.testing.assert_allclose(_class_weights(np.array([0, 1, 1, 2]), "balanced", 3).numpy(), [4 / 3, 2 / 3, 4 / 3])
