"""Predictor: same numbers as a plain onnxruntime session, micro-batching, uint8, latency, torch-free."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from effnet_trading.errors import ModelCardError
from effnet_trading.imaging import ImageSpec, render
from effnet_trading.model_zoo.runtime import LatencyRecorder, Predictor, default_threads, resolve_providers

ROOT = Path(__file__).resolve().parents[1]
HAS_CUDA = "CUDAExecutionProvider" in ort.get_available_providers()


@pytest.fixture(scope="module")
def images(planted):
    return render(ImageSpec("gasf", window=32, size=(32, 32)), planted.iloc[:131])  # (100, 1, 32, 32)


def _reference(model_dir, images):
    """Independent reference: a bare onnxruntime session, one image at a time."""
    sess = ort.InferenceSession(str(model_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    return np.concatenate([sess.run(None, {"images": images[i : i + 1]})[0] for i in range(len(images))])


@pytest.mark.parametrize("batch_size", [1, 7, 64, 256])
def test_predict_matches_plain_session_for_any_micro_batch(tiny_model_dir, images, batch_size):
    p = Predictor(tiny_model_dir, "cpu", batch_size=batch_size)
    got = p.predict(images)
    assert got.shape == (100, 3) and got.dtype == np.float32
    np.testing.assert_allclose(got, _reference(tiny_model_dir, images), atol=1e-6)
    assert len(p.latency) == -(-100 // batch_size)  # one latency sample per micro-batch


def test_tail_is_padded_to_the_fixed_shape(tiny_model_dir, images):
    p = Predictor(tiny_model_dir, "cpu", batch_size=64)
    seen = []
    real_run = p.session.run
    p.session.run = lambda out, feed: seen.append(feed["images"].shape) or real_run(out, feed)
    p.predict(images)  # 100 = 64 + 36 -> the 36 are padded to 64
    p.predict(images[:5])  # a short live call is not padded up
    assert seen == [(64, 1, 32, 32), (64, 1, 32, 32), (5, 1, 32, 32)]


def test_uint8_input(tiny_model_dir, images):
    p = Predictor(tiny_model_dir, "cpu")
    u8 = np.round(images[:10] * 255).astype(np.uint8)
    np.testing.assert_allclose(p.predict(u8), p.predict(u8.astype(np.float32) / 255), atol=1e-6)


def test_wrong_shape_names_the_fix(tiny_model_dir, images):
    p = Predictor(tiny_model_dir, "cpu")
    with pytest.raises(
        ModelCardError, match=r"do not fit model .* expects \(N, 1, 32, 32\); render them with the model's own spec"
    ):
        p.predict(images[:, :, :16, :16])


def test_resolve_providers():
    assert resolve_providers("cpu") == ["CPUExecutionProvider"]
    auto = resolve_providers("auto")
    order = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    assert auto[-1] == "CPUExecutionProvider" and auto == [p for p in order if p in auto]
    with pytest.raises(ModelCardError, match=r"not available .*effnet-trading\[gpu\]"):
        resolve_providers(["NoSuchExecutionProvider"])


def test_session_settings(tiny_model_dir):
    p = Predictor(tiny_model_dir, "cpu", intra_op_threads=1)
    opts = p.session.get_session_options()
    assert opts.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert opts.intra_op_num_threads == 1 and opts.inter_op_num_threads == 1
    assert 1 <= default_threads() <= 4
    assert p.use_io_binding is False  # CPU session: plain run


def test_warmup_close_and_context(tiny_model_dir, images):
    with Predictor(tiny_model_dir, "cpu") as p:
        p.warmup()
        assert len(p.latency) == 0  # warm-up is not recorded
        p.predict(images[:3])
    with pytest.raises(ModelCardError, match="is closed; create a new Predictor"):
        p.predict(images[:3])


def test_latency_recorder_against_numpy():
    rec = LatencyRecorder(maxlen=100)
    values = np.random.default_rng(0).lognormal(0, 1, 250)
    for v in values:
        rec.add(v)
    kept = values[-100:]
    assert len(rec) == 100 and rec.total_calls == 250
    assert rec.percentiles() == pytest.approx({f"p{q}": np.percentile(kept, q) for q in (50, 95, 99)})
    counts, edges = rec.histogram()
    assert counts.sum() == 100 and len(edges) == len(counts) + 1
    c2, _ = rec.histogram([0, 1, 2, 1000])
    assert list(c2) == [int((kept < 1).sum()), int(((kept >= 1) & (kept < 2)).sum()), int((kept >= 2).sum())]
    rec.reset()
    assert np.isnan(rec.percentiles()["p50"])


def test_inference_path_needs_no_torch(tiny_model_dir):
    code = f"""
import sys
sys.modules['torch'] = None
import numpy as np
from effnet_trading.model_zoo.runtime import Predictor
from effnet_trading.model_zoo.failover import FailoverPredictor, RuleBasedPredictor
from effnet_trading.model_zoo.bench import bench_model_dir
from effnet_trading.model_zoo.quantize import compare_models
p = Predictor(r'{tiny_model_dir}', 'cpu', batch_size=8)
p.warmup()
x = np.random.default_rng(0).random((20, 1, 32, 32), dtype=np.float32)
chain = FailoverPredictor([p, RuleBasedPredictor()])
assert chain.predict(x).shape == (20, 3)
print('ok', p.latency.percentiles()['p50'] > 0)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 0 and out.stdout.strip() == "ok True", out.stderr[-2000:]


def test_io_binding_path_on_cpu_buffers(tiny_model_dir, images):
    """The fixed-shape IO-binding path (used with CUDA) run with CPU buffers: same numbers, every call padded."""
    p = Predictor(tiny_model_dir, "cpu", batch_size=32)
    p.use_io_binding, p._bind_device = True, "cpu"
    p.warmup()
    np.testing.assert_allclose(p.predict(images), _reference(tiny_model_dir, images), atol=1e-6)
    np.testing.assert_allclose(p.predict(images[:3]), _reference(tiny_model_dir, images[:3]), atol=1e-6)
    assert len(p.latency) == 4 + 1


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason="CUDAExecutionProvider not available (CPU-only onnxruntime build / no GPU)")
def test_cuda_io_binding_matches_cpu(tiny_model_dir, images):
    gpu = Predictor(tiny_model_dir, "auto", batch_size=32)
    assert gpu.use_io_binding
    np.testing.assert_allclose(gpu.predict(images), Predictor(tiny_model_dir, "cpu").predict(images), atol=1e-4)
