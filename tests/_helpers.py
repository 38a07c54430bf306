"""Set-ups that several test files share (plain functions and classes; fixtures live in conftest.py)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

OHLCV = ("open", "high", "low", "close", "volume")


def random_walk_ohlcv(seed: int, n: int = 80, start: str = "2024-01-01"):
    """``n`` hourly UTC bars of a seeded log-normal walk (2 % a bar), high/low 1 % around the close."""
    import pandas as pd

    idx = pd.date_range(start, periods=n, freq="h", tz="UTC")
    c = 100 * np.exp(np.cumsum(np.random.default_rng(seed).normal(0, 0.02, n)))
    return pd.DataFrame({"open": c, "high": c * 1.01, "low": c * 0.99, "close": c, "volume": 1.0}, index=idx)


def wild_ohlcv(seed: int, n: int = 400):
    """``n`` hourly UTC bars drifting up at 8 % a bar, with gaps at the opens and wicks: a 1x short gets
    ruined on some seeds (the ruin tests' data)."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0.004, 0.08, n)))
    open_ = np.concatenate([[100.0], close[:-1] * np.exp(rng.normal(0, 0.02, n - 1))])
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0, 0.03, n)))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0, 0.03, n)))
    idx = pd.date_range("2024-01-01", periods=n, freq="h", tz="UTC")
    return pd.DataFrame({"open": open_, "high": high, "low": low, "close": close, "volume": 1.0}, index=idx)


class MomentumRule:
    """A predictor-like rule model (momentum over the window's last 8 closes) that counts the
    images it scores: the sell/hold/buy probabilities are a softmax of (-z, 0.5, z)."""

    def __init__(self, spec=None):
        from effnet_trading.imaging import ImageSpec

        self.spec = spec if spec is not None else ImageSpec("gasf", window=16, size=(16, 16))
        self.class_names, self.input_shape = ("sell", "hold", "buy"), (self.spec.channels, *self.spec.size)
        self.images = 0

    def predict(self, images, closes=None):
        self.images += len(images)
        z = np.log(closes[:, -1] / closes[:, -8]) / 0.004
        logits = np.column_stack([-z, np.full(len(z), 0.5), z])
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)


def edit_card(model_dir: Path, edit: Callable[[dict], object], copy_to: Path | None = None) -> Path:
    """Rewrite ``card.json`` of ``model_dir`` (or of a copy of it at ``copy_to``) through ``edit(card)``,
    which changes the dict in place; the folder that was edited is returned."""
    folder = Path(model_dir)
    if copy_to is not None:
        shutil.copytree(folder, copy_to)
        folder = Path(copy_to)
    card = json.loads((folder / "card.json").read_text())
    edit(card)
    (folder / "card.json").write_text(json.dumps(card))
    return folder


def live_args(
    fake,
    model_dir,
    out,
    *,
    max_bars: int | None = None,
    stale_after: float | None = None,
    mode: str = "--paper",
    extra: Sequence[str] = (),
) -> list[str]:
    """``effnet-trading live`` arguments for BTCUSDT 5m bars from ``fake`` (the loopback fake Bybit, or
    anything with ``rest_url`` and ``ws_url``); options left None are not passed."""
    args = ["live", "--symbol", "BTCUSDT", "--interval", "5", "--model", str(model_dir), mode, "--out", str(out)]
    if max_bars is not None:
        args += ["--max-bars", str(max_bars)]
    args += ["--rest-url", fake.rest_url, "--ws-url", fake.ws_url]
    if stale_after is not None:
        args += ["--stale-after", str(stale_after)]
    return args + list(extra)


def zoo_export_args(out, *, kind: str, window: int, size: int, model: str = "small_cnn", extra=()) -> list[str]:
    """``effnet-trading zoo export`` arguments for an (untrained unless ``--weights``) ``model``."""
    return [
        "zoo",
        "export",
        "--model",
        model,
        "--kind",
        kind,
        "--window",
        str(window),
        "--size",
        str(size),
        *extra,
        "--out",
        str(out),
    ]


def ill_conditioned_small_cnn(in_chans: int = 1):
    """A correct small_cnn whose torch and onnxruntime probabilities differ by more than 1e-4 on uniform noise
    through float32 rounding alone: two nearly equal logits in the thousands (a trained B0 on noise images gave
    logits of ~400)."""
    import torch

    from effnet_trading.model_zoo import create_model

    torch.manual_seed(0)
    model = create_model("small_cnn", num_classes=3, in_chans=in_chans).eval()
    head = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():
        base = torch.randn(head.in_features) * 1e4
        head.weight[0], head.weight[1], head.weight[2] = base, base + 0.01 * torch.randn(head.in_features), -base
        head.bias.zero_()
    return model
