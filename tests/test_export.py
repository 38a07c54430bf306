"""ONNX export: faithful to torch on real images, atomic folder with sane permissions, fp16/INT8 variants."""

import hashlib
import os
import stat

import numpy as np
import onnx
import pytest
import torch
from _helpers import ill_conditioned_small_cnn

from effnet_trading.errors import ModelCardError
from effnet_trading.imaging import ImageSpec, render
from effnet_trading.model_zoo import create_model, list_models  # noqa: E402
from effnet_trading.model_zoo.card import load_card
from effnet_trading.model_zoo.export import FP64_NOISE_FACTOR, ExportWrapper, export_onnx, verify_onnx  # noqa: E402
from effnet_trading.model_zoo.runtime import Predictor  # noqa: E402

SPEC = ImageSpec("gasf", window=32, size=(32, 32))


@pytest.fixture(scope="module")
def images(planted):
    return render(SPEC, planted.iloc[:600])  # (569, 1, 32, 32)


@pytest.fixture(scope="module")
def exported(tmp_path_factory, images):
    """(model, folder) for a seeded small_cnn with both variants; calibration on the first 300 images."""
    torch.manual_seed(3)
    model = create_model("small_cnn", in_chans=1).eval()
    out = tmp_path_factory.mktemp("export") / "m"
    labels = np.random.default_rng(0).integers(0, 3, len(images) - 300)
    export_onnx(
        model,
        out,
        spec=SPEC,
        architecture="small_cnn",
        sample_images=images[:64],
        label={"rule": "forward_return", "horizon": 6},
        training={"span": ["2021-01-01", "2021-02-01"]},
        metrics={"val_accuracy": 0.4, "split": "walk-forward fold 3"},
        fp16=True,
        int8=True,
        calib_images=images[:300],
        holdout_images=images[300:],
        holdout_labels=labels,
    )
    return model, out


def test_onnx_matches_torch_on_real_images(exported, images):
    model, out = exported
    with torch.no_grad():  # independent reference: the torch model with the normalisation written out by hand
        x = torch.from_numpy(images[300:])
        ref = torch.softmax(model((x - 0.5) / 0.25), dim=1).numpy()
    got = Predictor(out, "cpu").predict(images[300:])
    np.testing.assert_allclose(got, ref, atol=1e-4)
    assert load_card(out).metrics["export_max_abs_err"] < 1e-4


def test_folder_permissions_and_no_leftovers(exported):
    _, out = exported
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o755
    for f in ("model.onnx", "card.json", "model_fp16.onnx", "model_int8.onnx"):
        assert stat.S_IMODE(os.stat(out / f).st_mode) == 0o644, f
    assert sorted(p.name for p in out.parent.iterdir()) == ["m"]  # temp folders renamed or removed


def test_card_fields(exported):
    _, out = exported
    card = load_card(out)
    assert card.architecture == "small_cnn" and card.spec == SPEC and card.input_shape == (1, 32, 32)
    assert card.class_names == ("sell", "hold", "buy") and card.opset == 17
    assert card.label["horizon"] == 6 and card.training["span"] == ["2021-01-01", "2021-02-01"]
    assert card.metrics["split"] == "walk-forward fold 3"
    assert card.normalization["mean"] == [0.5] and card.normalization["std"] == [0.25]
    assert card.onnx_sha256 == hashlib.sha256((out / "model.onnx").read_bytes()).hexdigest()
    assert card.versions["torch"] == torch.__version__


def test_fp16_variant_is_half_inside_float_outside(exported, images):
    _, out = exported
    m = onnx.load(str(out / "model_fp16.onnx"))
    f16 = onnx.TensorProto.FLOAT16
    assert any(init.data_type == f16 for init in m.graph.initializer)
    assert m.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert m.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    p32 = Predictor(out, "cpu").predict(images[:64])
    p16 = Predictor(out, "cpu", variant="fp16").predict(images[:64])
    err = np.abs(p16 - p32).max()
    assert 0 < err < 1e-2  # not bit-identical (it really is half precision) but close
    assert load_card(out).variants["fp16"]["max_abs_err_vs_fp32"] == pytest.approx(err, abs=1e-6)


def test_int8_variant_is_qdq_per_channel_and_reported(exported, images):
    _, out = exported
    m = onnx.load(str(out / "model_int8.onnx"))
    ops = [n.op_type for n in m.graph.node]
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops
    inits = {i.name: i for i in m.graph.initializer}
    # per-channel: some weight DequantizeLinear has a vector of scales
    scales = [inits[n.input[1]] for n in m.graph.node if n.op_type == "DequantizeLinear" and n.input[1] in inits]
    assert any(len(s.dims) == 1 and s.dims[0] > 1 for s in scales)
    info = load_card(out).variants["int8"]
    p32 = Predictor(out, "cpu").predict(images[300:])
    p8 = Predictor(out, "cpu", variant="int8").predict(images[300:])
    assert info["agreement_vs_fp32"] == pytest.approx(np.mean(p8.argmax(1) == p32.argmax(1)))
    assert {"accuracy_fp32", "accuracy_variant", "accuracy_change"} <= set(info) and info["n_images"] == len(
        images
    ) - 300
    assert np.abs(p8 - p32).mean() < 0.05


def test_int8_needs_calibration_images(tmp_path):
    with pytest.raises(ModelCardError, match="int8=True needs calib_images"):
        export_onnx(
            create_model("small_cnn", in_chans=1), tmp_path / "x", spec=SPEC, architecture="small_cnn", int8=True
        )
    assert not (tmp_path / "x").exists()


def test_failed_export_leaves_old_folder_and_no_temp(exported, tmp_path, images):
    out = tmp_path / "m"
    model = create_model("small_cnn", in_chans=1).eval()
    export_onnx(model, out, spec=SPEC, architecture="small_cnn")
    before = (out / "card.json").read_text()
    with pytest.raises(ModelCardError, match="ONNX output differs from torch"):
        export_onnx(model, out, spec=SPEC, architecture="small_cnn", atol=-1.0)  # impossible tolerance
    assert (out / "card.json").read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


def test_wrapper_normalises_in_graph():
    model = torch.nn.Identity()
    w = ExportWrapper(model, [0.5], [0.25])
    x = torch.full((1, 1, 2, 2), 0.75)
    # identity "logits" (x - 0.5) / 0.25 = 1 everywhere -> softmax over dim 1 of a single channel = 1
    assert torch.allclose(w(x), torch.ones(1, 1, 2, 2))


def _per_image(a: np.ndarray) -> np.ndarray:
    return np.abs(a).max(axis=1)


def test_float32_rounding_is_not_called_an_unfaithful_export(tmp_path):
    """Where onnxruntime and torch float32 differ by more than 1e-4 through float32 rounding, ONNX is judged per
    image against the exact (float64) result: the export passes, and the card says by how much and on what."""
    model = ill_conditioned_small_cnn()
    card = export_onnx(model, tmp_path / "m", spec=SPEC, architecture="small_cnn")
    assert card.metrics["export_max_abs_err"] > 1e-4  # the plain float32 comparison alone would have refused it
    (check,) = card.metrics["export_float64_check"]
    assert check["checked_on"] == "random images" and check["onnx_vs_float64"] <= check["allowed"]
    x = np.random.default_rng(1).random((16, 1, 32, 32), dtype=np.float32)
    with torch.no_grad():  # on other images too, the graph computes the same function up to that rounding
        norm = (torch.from_numpy(x) - 0.5) / 0.25
        f32 = torch.softmax(model(norm), dim=1).numpy()
        exact = torch.softmax(model.double()(norm.double()), dim=1).numpy()
    got = Predictor(tmp_path / "m", "cpu").predict(x)
    assert np.all(_per_image(got - exact) <= 1e-4 + FP64_NOISE_FACTOR * _per_image(f32 - exact))


def _with_bias(src, dst, change) -> None:
    """Copy the ONNX file ``src`` to ``dst`` with the classifier's (Gemm) bias changed by ``change``."""
    import onnx.numpy_helper as nh

    graph = onnx.load(src)
    gemm = next(n for n in graph.graph.node if n.op_type == "Gemm")
    bias = next(i for i in graph.graph.initializer if i.name == gemm.input[2])
    bias.CopyFrom(nh.from_array(change(nh.to_array(bias)).astype(np.float32), bias.name))
    onnx.save(graph, dst)


@pytest.mark.parametrize("shift", [0.005, 0.5])
def test_a_wrong_graph_is_refused_also_when_float32_is_noisy(tmp_path, shift):
    """The float64 comparison still catches a real export error, a small one too: a changed bias in the ONNX
    file of the same ill-conditioned model (the bound is per image, so one noisy image does not loosen it for
    the others)."""
    model = ill_conditioned_small_cnn()
    export_onnx(model, tmp_path / "m", spec=SPEC, architecture="small_cnn")
    _with_bias(tmp_path / "m" / "model.onnx", tmp_path / "wrong.onnx", lambda b: b + np.array([shift, 0.0, 0.0]))
    x = np.random.default_rng(0).random((4, 1, 32, 32), dtype=np.float32)
    with pytest.raises(ModelCardError, match="from the float64 result"):
        verify_onnx(ExportWrapper(model, [0.5], [0.25]).eval(), tmp_path / "wrong.onnx", x)


def test_a_graph_that_outputs_nan_is_refused(tmp_path):
    model = create_model("small_cnn", in_chans=1).eval()
    export_onnx(model, tmp_path / "m", spec=SPEC, architecture="small_cnn")
    _with_bias(tmp_path / "m" / "model.onnx", tmp_path / "nan.onnx", lambda b: b * np.nan)
    x = np.random.default_rng(0).random((4, 1, 32, 32), dtype=np.float32)
    with pytest.raises(ModelCardError, match="ONNX output is not finite .* on 4 of 4 images"):
        verify_onnx(ExportWrapper(model, [0.5], [0.25]).eval(), tmp_path / "nan.onnx", x)


def _estimate_bn_stats(model, x) -> None:
    """Untrained nets need real BN statistics, or their eval-mode outputs are constant (training-mode pass)."""
    from effnet_trading.model_zoo._blocks import recalibrate_batchnorm

    recalibrate_batchnorm(model, [x], stochastic=True)


EXPORTABLE = [n for n in list_models() if n in ("small_cnn", "compact", "efficientnet_b0")]


@pytest.mark.slow
@pytest.mark.parametrize("name", EXPORTABLE)
def test_registry_models_export_faithfully(name, tmp_path, images):
    """Every small registry architecture exports and matches torch within 1e-4 (plain SiLU, no custom autograd)."""
    torch.manual_seed(0)
    model = create_model(name, num_classes=3, in_chans=1)
    _estimate_bn_stats(model, (torch.from_numpy(images[:64]) - 0.5) / 0.25)
    card = export_onnx(model, tmp_path / name, spec=SPEC, architecture=name, sample_images=images[:32])
    assert card.metrics["export_max_abs_err"] < 1e-4
    probs = Predictor(tmp_path / name, "cpu").predict(images[100:140])
    assert (
        probs.shape == (40, 3) and probs.std(axis=0).max() > 1e-3
    )  # outputs depend on the image: the check is not vacuous


@pytest.mark.slow
def test_int8_on_trained_model_keeps_accuracy(trained_model_dir, planted, tmp_path):
    """On a model that learned something, INT8 (calibrated on training bars) agrees with fp32 on later, unseen bars."""
    import shutil

    from effnet_trading.imaging import valid_ends
    from effnet_trading.imaging.labels import forward_return_labels
    from effnet_trading.model_zoo.quantize import add_variant

    d = tmp_path / "trained"
    shutil.copytree(trained_model_dir, d)
    spec = load_card(d).spec
    calib = render(spec, planted.iloc[:12_000], valid_ends(spec, planted.iloc[:12_000])[::40])
    later = planted.iloc[12_000:14_000]
    ends = valid_ends(spec, later)[:-10]
    labels, _ = forward_return_labels(later["close"].to_numpy(), 6, k=0.5)
    card = add_variant(d, "int8", calib, holdout=render(spec, later, ends), labels=labels[ends])
    info = card.variants["int8"]
    assert info["checked_on"] == "held-out images" and info["n_images"] == len(ends)
    assert info["agreement_vs_fp32"] >= 0.9
    assert abs(info["accuracy_change"]) <= 0.03
    assert info["accuracy_fp32"] > 0.4  # the fp32 model is better than chance (~1/3) on these bars
    p = Predictor(d, "cpu", variant="int8")
    assert p.predict(render(spec, later, ends[:5])).shape == (5, 3)
