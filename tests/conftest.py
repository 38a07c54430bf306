"""Shared fixtures: the bundled sample data and small exported models (no network, no downloads)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest

from effnet_trading.imaging import ImageSpec, load_ohlcv

SAMPLE_DIR = Path(__file__).resolve().parents[1] / "sample_data"
TINY_SPEC = ImageSpec("gasf", window=32, size=(32, 32))


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    return SAMPLE_DIR


@pytest.fixture(scope="session")
def sample_meta() -> dict:
    return json.loads((SAMPLE_DIR / "meta.json").read_text())


@pytest.fixture(scope="session")
def planted() -> pd.DataFrame:
    """Planted-structure 5m OHLCV (20,000 bars)."""
    return load_ohlcv(SAMPLE_DIR / "planted_5m.csv")


@pytest.fixture(scope="session")
def planted_events() -> pd.DataFrame:
    return pd.read_csv(SAMPLE_DIR / "planted_events.csv", parse_dates=["timestamp"])


@pytest.fixture(scope="session")
def random_walk() -> pd.DataFrame:
    """Random-walk 5m OHLCV (20,000 bars): no structure."""
    return load_ohlcv(SAMPLE_DIR / "random_walk_5m.csv")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, planted) -> Path:
    """An *untrained* small_cnn on 32x32 GASF, exported to ONNX with a card. For plumbing and
    parity tests (its outputs are deterministic, not meaningful)."""
    import torch

    from effnet_trading.imaging import render
    from effnet_trading.model_zoo import create_model
    from effnet_trading.model_zoo.export import export_onnx

    torch.manual_seed(0)
    model = create_model("small_cnn", num_classes=3, in_chans=TINY_SPEC.channels).eval()
    out = tmp_path_factory.mktemp("models") / "tiny_gasf"
    export_onnx(
        model,
        out,
        spec=TINY_SPEC,
        architecture="small_cnn",
        label={"rule": "forward_return", "horizon": 6, "k": 0.5},
        sample_images=render(TINY_SPEC, planted.iloc[:64]),
    )
    return out


@pytest.fixture(scope="session")
def decisive_model_dir(planted, tmp_path_factory):
    """An untrained small_cnn whose last layer is set to random directions over its standardised
    features: outputs vary strongly between bars, so the strategy trades (the tiny model always says hold)."""
    import torch

    from effnet_trading.imaging import render
    from effnet_trading.model_zoo import create_model
    from effnet_trading.model_zoo.export import export_onnx

    spec = TINY_SPEC
    torch.manual_seed(0)
    model = create_model("small_cnn", num_classes=3, in_chans=1).eval()
    head = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]
    images = torch.tensor(render(spec, planted.iloc[:1000]))
    feats = {}
    hook = head.register_forward_hook(lambda mod, inp, out: feats.setdefault("x", inp[0]))
    with torch.no_grad():
        model((images - 0.5) / 0.25)  # export_onnx's default normalisation
        hook.remove()
        x = feats["x"]
        w = torch.randn(3, x.shape[1]) / (x.std(0) + 1e-6) * 3 / x.shape[1] ** 0.5
        head.weight.copy_(w)
        head.bias.copy_(-w @ x.mean(0))
    out = tmp_path_factory.mktemp("models") / "decisive"
    export_onnx(model, out, spec=spec, architecture="small_cnn", sample_images=render(spec, planted.iloc[:64]))
    return out


# Learns the planted edge fast on 2 CPU cores. GADF (not GASF): GASF is unchanged when the
# series is mirrored (x -> -x), so it cannot tell a V (buy) from a Λ (sell) pattern.
TRAINED_SPEC = ImageSpec("gadf", window=16, size=(16, 16), returns=True)


def built_once(tmp_path_factory, name: str, build) -> Path:
    """A folder that ``build(folder)`` fills once per test run. Under pytest-xdist session fixtures run
    once per worker: the first worker builds the folder in the run's shared temp dir (under a file
    lock) and the others wait for it and reuse it, instead of repeating a minute of training."""
    if "PYTEST_XDIST_WORKER" not in os.environ:
        folder = tmp_path_factory.mktemp(name)
        build(folder)
        return folder
    from filelock import FileLock

    folder = tmp_path_factory.getbasetemp().parent / f"shared-{name}"
    with FileLock(f"{folder}.lock"):
        if not (folder / ".complete").exists():
            shutil.rmtree(folder, ignore_errors=True)  # a worker that died half-way
            folder.mkdir()
            build(folder)
            (folder / ".complete").touch()
    return folder


@pytest.fixture(scope="session")
def trained_model_dir(tmp_path_factory, planted, planted_events) -> Path:
    """small_cnn (widths 16/32/64) trained on the first 12,000 planted bars, GADF 16x16 of
    returns, exported with ``train_and_export``. Its card ``metrics`` hold the purged test
    report (``test``), the split, and ``event_accuracy`` (accuracy on the planted event bars
    of its test span, ``{"n", "accuracy"}``). The test span is ``card.metrics["split"]["test"]``."""
    from effnet_trading.model_zoo.train import TrainConfig, train_and_export

    cfg = TrainConfig(
        model="small_cnn",
        spec=TRAINED_SPEC,
        horizon=6,
        epochs=5,
        patience=3,
        seed=0,
        progress=False,
        num_threads=1,
        model_kwargs={"widths": (16, 32, 64)},
    )

    def build(folder: Path) -> None:
        res = train_and_export(
            planted.iloc[:12_000],
            cfg,
            folder / "planted_small_cnn",
            extra_metrics=lambda r: {"event_accuracy": r.accuracy_on(planted_events["position"])},
        )
        assert res.model_dir == folder / "planted_small_cnn" / "model"

    return built_once(tmp_path_factory, "trained", build) / "planted_small_cnn" / "model"


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """The whole session runs with one torch thread (restored afterwards): tiny convs gain nothing
    from threads, and on a busy 2-core box two OpenMP threads made them ~100x slower."""
    from effnet_trading.model_zoo.threads import torch_threads

    with torch_threads(1):
        yield


@pytest.fixture
def fake_bybit():
    """Factory: ``fake_bybit(ohlcv, start_index=..., faults=Faults(...))`` starts a loopback fake Bybit
    (REST + WebSocket on 127.0.0.1, ephemeral ports) that is stopped when the test ends."""
    from effnet_trading.plugins.bybit.fake_exchange import FakeBybit

    started = []

    def make(ohlcv, **kw):
        fake = FakeBybit(ohlcv, **kw)
        fake.start()
        started.append(fake)
        return fake

    yield make
    for fake in started:
        fake.stop()
