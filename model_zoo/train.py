"""Training without fooling ourselves: purged walk-forward splits, early stopping on a
validation fold, out-of-sample reports beside the majority-class rate, resumable checkpoints.

``train_model(ohlcv, cfg, out_dir)`` trains one model per walk-forward fold;
``train_and_export`` also writes the last fold's model folder (ONNX + card).
"""

from __future__ import annotations

import copy
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from effnet_trading.errors import TrainingError
from effnet_trading.imaging.spec import AnySpec, ImageSpec, spec_from_dict
from effnet_trading.model_zoo.calibration import (
    DEFAULT_BINS,
    apply_temperature,
    expected_calibration_error,
    fit_temperature,
)
from effnet_trading.model_zoo.curves import curves_by_fold, diagnose
from effnet_trading.model_zoo.dataset import ImageDataset
from effnet_trading.model_zoo.metrics import classification_report, log_loss, multilabel_report
from effnet_trading.model_zoo.registry import check_model_kwargs, create_model, model_info
from effnet_trading.model_zoo.splits import Split, walk_forward_splits
from effnet_trading.model_zoo.threads import with_torch_threads
from effnet_trading.outputs import atomic_file, write_json_atomic

__all__ = ["TrainConfig", "TrainResult", "train_model", "train_and_export", "resolve_device"]

Callback = Callable[[dict], Any]


@dataclass
class TrainConfig:
    """Everything a training run depends on; written to ``out_dir/config.json`` (JSON round-trip)."""

    model: str = "small_cnn"
    spec: AnySpec = field(default_factory=lambda: ImageSpec("gasf", window=32, size=(32, 32)))
    horizon: int = 6
    label_k: float = 0.5
    threshold: float | None = None
    epochs: int = 10
    batch_size: int = 128
    lr: float = 3e-3
    weight_decay: float = 0.05
    decay_norm_and_bias: bool = False  # AdamW decay on BatchNorm weights and biases too (standard recipes exclude them)
    ema_decay: float | None = None  # exponential moving average of the weights, used for validation/test/export
    label_smoothing: float = 0.0
    class_weights: str | None = "balanced"
    patience: int = 3
    # the epoch kept (restored) and counted by early stopping: "val_loss_T" (lowest validation log-loss after
    # one temperature fitted on it: what the probabilities know, not how over-confident they are; a one-class
    # epoch scores ln K), "val_loss" (the raw log-loss: kept a one-class first epoch in 7 of 48 GASF folds of the
    # learning benchmark, docs/training.md experiment 3) or "val_acc" (highest accuracy; ties: lower loss)
    select_by: str = "val_loss_T"
    folds: int = 1
    embargo: int | None = None  # samples; None = horizon
    test_size: int | float | None = None  # per fold; None = 20 % (one fold) or even split
    valid: int | float = 0.15  # last part of each training span, for early stopping
    min_train: int | None = None
    warmup_epochs: float = 0.5
    seed: int = 0
    device: str = "auto"
    amp: bool = True  # mixed precision, GPU only
    # train and score in the NHWC layout on CPU and CUDA (CPU: 1.1-1.8x faster, benchmarks/bench_training.py
    # --memory-format; not on MPS, unmeasured there); the trained model is handed back in the default layout
    channels_last: bool = True
    max_train_samples: int | None = None  # keep the most recent ones
    num_threads: int | None = None
    progress: bool = True
    model_kwargs: dict = field(default_factory=dict)
    calibrate: str | None = (
        None  # "temperature": fit T on the validation fold; the card stores it, the Predictor applies it
    )

    def __post_init__(self) -> None:
        """Refuse settings that cannot train, one line each (the CLI maps them to messages)."""
        import math
        import re

        for name, low in (("horizon", 1), ("epochs", 1), ("batch_size", 2), ("patience", 1), ("folds", 1)):
            if int(getattr(self, name)) < low:
                raise TrainingError(f"TrainConfig {name}={getattr(self, name)} must be >= {low}.")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise TrainingError(f"TrainConfig lr={self.lr!r} must be > 0 (a learning rate, e.g. 3e-3).")
        if not 0.0 <= float(self.label_smoothing) < 1.0:
            raise TrainingError(f"TrainConfig label_smoothing={self.label_smoothing} must be in [0, 1) (e.g. 0.1).")
        if self.calibrate not in (None, "temperature"):
            raise TrainingError(f"TrainConfig calibrate={self.calibrate!r} is unknown; use 'temperature' or None.")
        if self.calibrate and not self.valid:
            raise TrainingError(
                "calibrate='temperature' fits the temperature on the validation fold, but valid=0 leaves none; "
                "set valid > 0 (e.g. 0.15) or drop calibrate."
            )
        if self.select_by not in SELECT_BY:
            raise TrainingError(f"TrainConfig select_by={self.select_by!r} is unknown; use one of {list(SELECT_BY)}.")
        if self.class_weights not in (None, "balanced"):
            raise TrainingError(f"TrainConfig class_weights={self.class_weights!r} is unknown; use 'balanced' or None.")
        if self.max_train_samples is not None and int(self.max_train_samples) < 1:
            raise TrainingError(f"max_train_samples={self.max_train_samples!r} must be >= 1 (or None for all samples).")
        if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", str(self.device)):
            raise TrainingError(f"device={self.device!r} is not one of 'auto', 'cpu', 'cuda', 'cuda:N', 'mps'.")
        if not isinstance(self.model_kwargs, dict):
            raise TrainingError(
                f"model_kwargs={self.model_kwargs!r} must be a dict of options, e.g. {{'drop_rate': 0.2}}."
            )
        check_model_kwargs(self.model, self.model_kwargs)

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["spec"] = self.spec.to_dict()
        return json.loads(json.dumps(d))  # JSON-native (tuples -> lists) so saved and live configs compare equal

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise TrainingError(f"unknown TrainConfig keys {unknown}; known: {sorted(known)}.")
        d = dict(d)
        if isinstance(d.get("spec"), dict):
            d["spec"] = spec_from_dict(d["spec"])
        return cls(**d)


@dataclass
class TrainResult:
    """A trained model (eval mode, CPU) and everything needed to judge it."""

    model: nn.Module
    history: list[dict]
    metrics: dict
    dataset_info: dict
    mean: list[float]
    std: list[float]
    config: TrainConfig
    split: Split
    dataset: ImageDataset
    test_proba: np.ndarray  # (n_test, K) of the last fold
    folds: list[dict] = field(default_factory=list)
    model_dir: Path | None = None
    fold_test: list[tuple[np.ndarray, np.ndarray]] = field(
        default_factory=list
    )  # per fold: (test sample idx, proba (n, K))

    def predict(self, dataset: ImageDataset, idx: np.ndarray | None = None) -> np.ndarray:
        """``(n, K)`` probabilities of the trained model on ``dataset``'s images (all, or ``idx``), on CPU:
        softmax, or one sigmoid per label for a multi-label dataset (e.g. a shift-test set)."""
        idx = np.arange(len(dataset)) if idx is None else np.asarray(idx)
        net = _Normalised(self.model, self.mean, self.std)
        return _predict(net, dataset, idx, torch.device("cpu"), self.config.batch_size, False)

    @property
    def test_ends(self) -> np.ndarray:
        """Bar positions of the last fold's test samples."""
        return self.dataset.ends[self.split.test]

    def accuracy_on(self, positions: Sequence[int]) -> dict[str, float | int]:
        """Test accuracy of the last fold on the given bar positions only (e.g. known event bars)."""
        mask = np.isin(self.test_ends, np.asarray(positions, np.int64))
        y = self.dataset.labels[self.split.test][mask]
        hit = self.test_proba[mask].argmax(1) == y
        return {"n": int(mask.sum()), "accuracy": float(hit.mean()) if mask.any() else float("nan")}


def resolve_device(device: str = "auto") -> torch.device:
    """ "auto" -> cuda when available, else cpu; "cuda" where torch sees no GPU is a ``TrainingError``."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        why = "this torch is a CPU build" if torch.version.cuda is None else "torch sees no CUDA device here"
        raise TrainingError(
            f"device {device!r} asks for a GPU, but {why}. Use device='auto' or 'cpu' "
            "(a sweep: gpus_per_cell = 0), or run where a CUDA GPU and a CUDA build of torch are present."
        )
    return dev


def _class_weights(labels: np.ndarray, mode: str | None, k: int) -> torch.Tensor | None:
    """Cross-entropy class weights; for multi-label targets ``(N, K)``, BCE ``pos_weight`` (negatives / positives, capped at 100)."""
    if mode is None:
        return None
    if mode != "balanced":
        raise TrainingError(f"class_weights={mode!r} is unknown; use 'balanced' or None.")
    if labels.ndim == 2:
        pos = labels.sum(0).astype(np.float64)
        return torch.tensor(np.clip((len(labels) - pos) / np.maximum(pos, 1.0), 1.0, 100.0), dtype=torch.float32)
    counts = np.bincount(labels, minlength=k).astype(np.float64)
    present = counts > 0
    if not present.any():
        raise TrainingError("the training part has no labelled samples; use more data.")
    if not present.all():  # e.g. a regime that never occurs in a fold: balance the classes that do
        import warnings

        warnings.warn(
            f"class(es) {np.flatnonzero(~present).tolist()} have no training samples (counts {counts.astype(int).tolist()}); "
            "they get weight 0 and the others are balanced among themselves. The model cannot learn an absent class.",
            RuntimeWarning,
            stacklevel=3,
        )
    w = np.zeros(k)
    w[present] = len(labels) / (present.sum() * counts[present])
    return torch.tensor(w, dtype=torch.float32)


def _lr_lambda(total_steps: int, warmup_steps: int) -> Callable[[int], float]:
    def f(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        t = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, t)))

    return f


def _param_groups(net: nn.Module, weight_decay: float, decay_all: bool) -> list[dict]:
    """AdamW groups: weight decay on conv/linear weights only, unless ``decay_all`` (norm weights and
    biases are scale/offset parameters; decaying them fights BatchNorm, as in timm/torchvision recipes)."""
    if decay_all:
        return [{"params": [p for p in net.parameters() if p.requires_grad], "weight_decay": weight_decay}]
    decay, no_decay = [], []
    for p in net.parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


class _Normalised(nn.Module):
    """``model((x - mean) / std)`` as the exported graph does it."""

    def __init__(self, model: nn.Module, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model((x - self.mean) / self.std)


def _predict(
    net: nn.Module, ds: ImageDataset, idx: np.ndarray, dev: torch.device, bs: int, amp: bool, nhwc: bool = False
) -> np.ndarray:
    """Probabilities ``(len(idx), K)`` float64: softmax, or one sigmoid per label for multi-label datasets.
    nhwc: feed the batches in the channels-last layout (that of a net converted to it)."""
    net.eval()
    out = []
    act = torch.sigmoid if ds.multilabel else (lambda z: torch.softmax(z, 1))
    fmt = torch.channels_last if nhwc else torch.contiguous_format
    with torch.no_grad(), torch.autocast(dev.type, enabled=amp):
        for x, _ in ds.batches(idx, bs * 2):
            out.append(act(net(x.to(dev).contiguous(memory_format=fmt)).float()).cpu().numpy())
    return np.concatenate(out).astype(np.float64) if out else np.zeros((0, len(ds.class_names)))


def _span(ds: ImageDataset, idx: np.ndarray | None) -> list[str] | None:
    return None if idx is None or not len(idx) else [str(ds.index[idx[0]]), str(ds.index[idx[-1]])]


class _Fold:
    """One fold's training loop, with per-epoch checkpoints that make resume exact."""

    def __init__(
        self, ds: ImageDataset, split: Split, cfg: TrainConfig, ckpt_dir: Path | None, callbacks: list[Callback]
    ):
        self.ds, self.split, self.cfg, self.ckpt_dir, self.callbacks = ds, split, cfg, ckpt_dir, callbacks
        self.dev = resolve_device(cfg.device)
        self.amp = bool(cfg.amp and self.dev.type == "cuda")
        train = split.train
        if cfg.max_train_samples and len(train) > cfg.max_train_samples:
            train = train[-int(cfg.max_train_samples) :]
        self.train = train
        self.mean, self.std = ds.channel_stats(train)
        torch.manual_seed(cfg.seed + 1000 * split.fold)
        kw = {"input_size": tuple(ds.images.shape[2:])} | dict(
            cfg.model_kwargs
        )  # size-aware models adapt their strides
        base = create_model(cfg.model, num_classes=len(ds.class_names), in_chans=ds.images.shape[1], **kw)
        self.architecture = f"{cfg.model} at {ds.images.shape[2]}x{ds.images.shape[3]} px: {model_info(cfg.model).input_note(kw['input_size'])}"
        self.net = _Normalised(base, self.mean, self.std).to(self.dev)
        # NHWC where it was measured faster (CPU, CUDA); MPS keeps the default layout
        self.nhwc = bool(cfg.channels_last and self.dev.type in ("cpu", "cuda"))
        if self.nhwc:
            self.net = self.net.to(memory_format=torch.channels_last)
        self.ema = copy.deepcopy(self.net).eval() if cfg.ema_decay else None
        if self.ema is not None:
            for p in self.ema.parameters():
                p.requires_grad_(False)
        w = _class_weights(ds.labels[train], cfg.class_weights, len(ds.class_names))
        if ds.multilabel:  # one sigmoid per label (labels may overlap): binary cross-entropy
            self.loss_fn = nn.BCEWithLogitsLoss(pos_weight=None if w is None else w.to(self.dev))
        else:
            self.loss_fn = nn.CrossEntropyLoss(
                weight=None if w is None else w.to(self.dev), label_smoothing=cfg.label_smoothing
            )
        self.opt = torch.optim.AdamW(_param_groups(self.net, cfg.weight_decay, cfg.decay_norm_and_bias), lr=cfg.lr)
        steps = max(1, -(-len(train) // cfg.batch_size))
        self.sched = torch.optim.lr_scheduler.LambdaLR(
            self.opt, _lr_lambda(steps * cfg.epochs, max(1, int(cfg.warmup_epochs * steps)))
        )
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.history: list[dict] = []
        self.best = (float("inf"), None, -1)  # (selection score, state_dict, epoch); lower is better
        self.bad_epochs, self.epoch, self.done = 0, 0, False

    # -- checkpoints -------------------------------------------------------------------
    def _state(self) -> dict:
        return {
            "net": self.net.state_dict(),
            "opt": self.opt.state_dict(),
            "sched": self.sched.state_dict(),
            "scaler": self.scaler.state_dict(),
            "history": self.history,
            "best": self.best,
            "ema": None if self.ema is None else self.ema.state_dict(),
            "bad_epochs": self.bad_epochs,
            "epoch": self.epoch,
            "done": self.done,
            "torch_rng": torch.get_rng_state(),
            "config": self.cfg.to_dict(),
        }

    def save(self) -> None:
        if self.ckpt_dir is None:
            return
        self.ckpt_dir.mkdir(parents=True, exist_ok=True)
        path = self.ckpt_dir / f"epoch_{self.epoch:03d}.pt"
        with atomic_file(path) as tmp:
            torch.save(self._state(), tmp)
        for old in sorted(self.ckpt_dir.glob("epoch_*.pt"))[:-2]:  # keep the last two
            old.unlink()

    def load_last(self) -> bool:
        """Restore the newest checkpoint of this fold; False when there is none."""
        paths = sorted(self.ckpt_dir.glob("epoch_*.pt")) if self.ckpt_dir and self.ckpt_dir.exists() else []
        if not paths:
            return False
        st = torch.load(paths[-1], map_location=self.dev, weights_only=False)
        saved = {k: v for k, v in st["config"].items() if k not in ("progress", "epochs", "num_threads")}
        now = {k: v for k, v in self.cfg.to_dict().items() if k in saved}
        if saved != now:
            diff = sorted(k for k in saved if saved[k] != now.get(k))
            raise TrainingError(
                f"cannot resume from {paths[-1]}: its config differs in {diff}; use a new out_dir or the same config."
            )
        self.net.load_state_dict(st["net"])
        self.opt.load_state_dict(st["opt"])
        self.sched.load_state_dict(st["sched"])
        self.scaler.load_state_dict(st["scaler"])
        if self.ema is not None and st.get("ema") is not None:
            self.ema.load_state_dict(st["ema"])
        self.history, self.best, self.bad_epochs = st["history"], st["best"], st["bad_epochs"]
        self.epoch, self.done = st["epoch"], st["done"]
        torch.set_rng_state(st["torch_rng"])
        return True

    # -- loop ----------------------------------------------------------------------------
    @property
    def scored(self) -> nn.Module:
        """The weights that are validated, tested and exported: the EMA copy when ``ema_decay`` is set."""
        return self.ema if self.ema is not None else self.net

    def _update_ema(self) -> None:
        with torch.no_grad():
            ema_p = [p for p in self.ema.parameters()]
            net_p = [p.detach() for p in self.net.parameters()]
            torch._foreach_lerp_(ema_p, net_p, 1.0 - float(self.cfg.ema_decay))
            for b_ema, b in zip(self.ema.buffers(), self.net.buffers()):
                b_ema.copy_(b)

    def _epoch(self) -> dict:
        from tqdm.auto import tqdm

        cfg, t0 = self.cfg, time.perf_counter()
        self.net.train()
        seed = (
            cfg.seed + 1000 * self.split.fold + self.epoch
        )  # the order depends only on (seed, fold, epoch): resume is exact
        tot_loss, tot_ok, tot_n = 0.0, 0, 0
        n_batches = -(-len(self.train) // cfg.batch_size)
        bar = tqdm(
            self.ds.batches(self.train, cfg.batch_size, shuffle=True, seed=seed),
            total=n_batches,
            desc=f"fold {self.split.fold} epoch {self.epoch + 1}/{cfg.epochs}",
            disable=not cfg.progress,
            leave=False,
        )
        for x, y in bar:
            if len(y) < 2:  # batch norm cannot train on one sample
                continue
            x, y = x.to(self.dev), y.to(self.dev)
            if self.nhwc:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(self.dev.type, enabled=self.amp):
                logits = self.net(x)
                loss = self.loss_fn(logits.float(), y)
            self.opt.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.opt)
            self.scaler.update()
            self.sched.step()
            if self.ema is not None:
                self._update_ema()
            tot_loss += float(loss.detach()) * len(y)
            if self.ds.multilabel:  # share of labels right at 0.5, per sample
                tot_ok += float(((logits > 0) == (y > 0.5)).float().mean(1).sum())
            else:
                tot_ok += int((logits.argmax(1) == y).sum())
            tot_n += len(y)
            bar.set_postfix(loss=f"{tot_loss / tot_n:.4f}", acc=f"{tot_ok / tot_n:.3f}")
        bar.close()
        row = {
            "fold": self.split.fold,
            "epoch": self.epoch + 1,
            "loss": tot_loss / max(tot_n, 1),
            "acc": tot_ok / max(tot_n, 1),
            "lr": self.opt.param_groups[0]["lr"],
        }
        if self.split.valid is not None:
            proba = _predict(self.scored, self.ds, self.split.valid, self.dev, cfg.batch_size, self.amp, self.nhwc)
            yv = self.ds.labels[self.split.valid]
            if self.ds.multilabel:
                q = np.clip(proba, 1e-15, 1 - 1e-12)
                row["val_loss"] = float(-np.mean(np.where(yv > 0.5, np.log(q), np.log1p(-q))))
                row["val_acc"] = float(np.mean((proba >= 0.5) == (yv > 0.5)))
            else:
                row["val_loss"] = float(-np.mean(np.log(np.clip(proba[np.arange(len(yv)), yv], 1e-15, 1))))
                row["val_acc"] = float(np.mean(proba.argmax(1) == yv))
                if cfg.select_by == "val_loss_T":
                    row["val_loss_T"] = log_loss(yv, apply_temperature(proba, fit_temperature(yv, proba)))
        row["seconds"] = time.perf_counter() - t0
        return row

    def fit(self) -> None:
        cfg = self.cfg
        while not self.done and self.epoch < cfg.epochs:
            row = self._epoch()
            self.history.append(row)
            self.epoch += 1
            if cfg.progress:
                from tqdm.auto import tqdm

                tqdm.write(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
            score = _selection_score(row, cfg.select_by)
            if score < self.best[0]:
                state = {k: v.detach().cpu().clone() for k, v in self.scored.state_dict().items()}
                self.best, self.bad_epochs = (score, state, self.epoch), 0
            else:
                self.bad_epochs += 1
            self.done = self.bad_epochs >= cfg.patience or self.epoch >= cfg.epochs
            self.save()
            if any([bool(cb(dict(row))) for cb in self.callbacks]) and not self.done:
                self.done = True
                self.save()
        if self.best[1] is not None:
            self.net.load_state_dict(self.best[1])  # the best scored weights (EMA ones when ema_decay is set)
        self.net.eval()
        self.ema = None  # from here on self.net holds the weights that are scored

    def _calibrate(self, valid_proba: np.ndarray) -> dict:
        """Fit the temperature on the validation fold; rescale ``test_proba``; ECE before/after on both folds."""
        ds, sp = self.ds, self.split
        yv, yt = ds.labels[sp.valid], ds.labels[sp.test]
        t = fit_temperature(yv, valid_proba)
        raw_test = self.test_proba
        self.test_proba = apply_temperature(raw_test, t)
        return {
            "method": "temperature",
            "temperature": t,
            "ece_before": expected_calibration_error(yt, raw_test),
            "ece_after": expected_calibration_error(yt, self.test_proba),
            "fitted_on": f"validation fold {_span(ds, sp.valid)} ({len(sp.valid)} samples), fold {sp.fold}",
            "measured_on": f"test fold {_span(ds, sp.test)} ({len(sp.test)} samples): out-of-sample for T",
            "valid_ece_before": expected_calibration_error(yv, valid_proba),
            "valid_ece_after": expected_calibration_error(yv, apply_temperature(valid_proba, t)),
            "n_bins": DEFAULT_BINS,
        }

    def report(self) -> dict:
        ds, sp, cfg = self.ds, self.split, self.cfg
        out = {
            "fold": sp.fold,
            "best_epoch": self.best[2],
            "epochs_run": self.epoch,
            "split": {
                "train": _span(ds, self.train),
                "valid": _span(ds, sp.valid),
                "test": _span(ds, sp.test),
                "n_train": int(len(self.train)),
                "n_valid": 0 if sp.valid is None else int(len(sp.valid)),
                "n_test": int(len(sp.test)),
                "horizon_bars": ds.horizon,
                "purge": "train/valid label windows end before the next part",
            },
        }
        report = multilabel_report if ds.multilabel else classification_report
        self.test_proba = _predict(self.net, ds, sp.test, self.dev, cfg.batch_size, self.amp, self.nhwc)
        if sp.valid is not None:
            valid_proba = _predict(self.net, ds, sp.valid, self.dev, cfg.batch_size, self.amp, self.nhwc)
            if cfg.calibrate:
                out["calibration"] = self._calibrate(valid_proba)
                valid_proba = apply_temperature(valid_proba, out["calibration"]["temperature"])
            out["valid"] = report(ds.labels[sp.valid], valid_proba, ds.class_names)
        elif cfg.calibrate:
            raise TrainingError(
                f"fold {sp.fold} has no validation samples to fit the temperature on; use more data or a larger valid."
            )
        out["test"] = report(ds.labels[sp.test], self.test_proba, ds.class_names)
        if ds.multilabel:
            out["diagnosis"] = _multilabel_diagnosis(out["test"])
        else:
            prior = list(ds.class_balance(self.train).values())
            out["diagnosis"] = diagnose(self.history, self.test_proba, prior)
        out["architecture"] = self.architecture
        return out


SELECT_BY = ("val_loss", "val_acc", "val_loss_T")


def _selection_score(row: dict, select_by: str) -> float:
    """Lower is better: the epoch's score under ``select_by``; the training loss when there is no validation
    part; validation accuracy breaks its ties by validation loss (a multi-label model has no ``val_loss_T``)."""
    if "val_loss" not in row:
        return row["loss"]
    if select_by == "val_acc":
        return -row["val_acc"] + 1e-6 * min(row["val_loss"], 100.0)
    return row.get(select_by, row["val_loss"])


def _write_json(path: Path, obj: Any) -> None:
    write_json_atomic(path, obj)


def _multilabel_diagnosis(test: dict) -> dict:
    """One readable line for a multi-label model: its test log-loss beside the base-rate predictor's."""
    better = [k for k, v in test["per_label"].items() if v["log_loss"] < v["base_log_loss"]]
    state = "learned" if test["edge"] > 0 else "converged to base rate"
    line = (
        f"mean binary log-loss {test['log_loss']:.4f} vs {test['base_log_loss']:.4f} for the base rates; "
        f"{len(better)} of {len(test['per_label'])} labels beat their base rate"
    )
    return {"state": state, "labels_beating_base_rate": better, "line": line}


_SUMMARY_KEYS = ("accuracy", "macro_f1", "log_loss", "majority_rate", "edge", "mean_auc", "base_log_loss")


def _summary(folds: list[dict]) -> dict:
    keys = [k for k in _SUMMARY_KEYS if k in folds[0]["test"]]
    return {k: float(np.mean([f["test"][k] for f in folds])) for k in keys} | {"folds": len(folds)}


@with_torch_threads(lambda ohlcv, cfg, *a, **k: cfg.num_threads)  # restored on return
def train_model(
    ohlcv,
    cfg: TrainConfig,
    out_dir: str | os.PathLike | None = None,
    *,
    callbacks: Sequence[Callback] | None = None,
    resume: bool = False,
    dataset: ImageDataset | None = None,
) -> TrainResult:
    """Train ``cfg.model`` on images of ``ohlcv`` over walk-forward folds; returns the last fold's model.

    out_dir: writes config.json, history.json, metrics.json and per-epoch ``checkpoints/``.
    callbacks: called with each epoch's history row (a dict); a truthy return stops that fold.
    resume: continue from the newest checkpoints in ``out_dir`` (same result as an uninterrupted run).
    dataset: a prebuilt ImageDataset for this spec/horizon (skips rendering).
    """
    if resume and out_dir is None:
        raise TrainingError("resume=True needs the out_dir of the interrupted run (its checkpoints/ folder).")
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        _write_json(out / "config.json", cfg.to_dict())
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    ds = dataset or ImageDataset.build(ohlcv, cfg.spec, cfg.horizon, label_k=cfg.label_k, threshold=cfg.threshold)
    if ds.spec != cfg.spec or ds.horizon != cfg.horizon:
        raise TrainingError(
            f"dataset was built for spec={ds.spec}, horizon={ds.horizon} but the config says "
            f"spec={cfg.spec}, horizon={cfg.horizon}; rebuild it with ImageDataset.build(ohlcv, cfg.spec, cfg.horizon)."
        )
    if cfg.calibrate and ds.multilabel:  # before any fold trains
        raise TrainingError(
            "calibrate='temperature' scales softmax classifiers; this model is multi-label (one sigmoid per "
            "label): train it without --calibrate."
        )
    step = int(np.min(np.diff(ds.ends))) if len(ds) > 1 else 1
    h = -(-cfg.horizon // step)  # horizon in samples
    splits = walk_forward_splits(
        len(ds),
        cfg.folds,
        horizon=h,
        embargo=h if cfg.embargo is None else -(-cfg.embargo // step),
        min_train=cfg.min_train,
        test_size=cfg.test_size,
        valid=cfg.valid,
    )
    history, fold_reports, fold_test, fold = [], [], [], None
    for sp in splits:
        ckpt = out / "checkpoints" / f"fold_{sp.fold}" if out is not None else None
        if ckpt is not None and not resume and ckpt.exists():
            for old in ckpt.glob("epoch_*.pt"):
                old.unlink()
        fold = _Fold(ds, sp, cfg, ckpt, list(callbacks or []))
        if resume:
            fold.load_last()
        fold.fit()
        history += fold.history
        fold_reports.append(fold.report())
        fold_test.append((sp.test, fold.test_proba))
        if out is not None:
            _write_json(out / "history.json", history)
    last = fold_reports[-1]
    metrics = {
        "valid": last.get("valid"),
        "test": last["test"],
        "split": last["split"],
        "best_epoch": last["best_epoch"],
        "folds": [{k: v for k, v in f.items() if k != "valid"} for f in fold_reports],
        "summary": _summary(fold_reports),
        "diagnosis": last["diagnosis"],
        "architecture": last["architecture"],
        "curves": curves_by_fold(history),
    }
    if "calibration" in last:
        metrics["calibration"] = last["calibration"]
    info = ds.info()
    if out is not None:
        _write_json(out / "metrics.json", metrics)
        _write_json(out / "dataset.json", info)
    model = fold.net.model.cpu().eval().to(memory_format=torch.contiguous_format)  # the default layout, for export
    return TrainResult(
        model,
        history,
        metrics,
        info,
        fold.mean,
        fold.std,
        cfg,
        splits[-1],
        ds,
        fold.test_proba,
        fold_reports,
        fold_test=fold_test,
    )


def _lean(report: dict | None) -> dict | None:
    """A classification report for the card: the reliability bins stay in the run's metrics.json."""
    return None if report is None else {k: v for k, v in report.items() if k != "reliability"}


def train_and_export(
    ohlcv,
    cfg: TrainConfig,
    out_dir: str | os.PathLike,
    *,
    callbacks: Sequence[Callback] | None = None,
    resume: bool = False,
    extra_metrics: Callable[[TrainResult], dict] | None = None,
    dataset: ImageDataset | None = None,
) -> TrainResult:
    """``train_model`` then export the last fold's model to ``out_dir/model`` (ONNX + card); sets ``result.model_dir``.

    extra_metrics: computes more card metrics from the result (e.g. accuracy on known event bars).
    """
    from effnet_trading.model_zoo.export import export_onnx

    res = train_model(ohlcv, cfg, out_dir, callbacks=callbacks, resume=resume, dataset=dataset)
    ds, sp = res.dataset, res.split
    metrics = {
        "valid": _lean(res.metrics["valid"]),
        "test": _lean(res.metrics["test"]),
        "split": res.metrics["split"],
        "summary": res.metrics["summary"],
        "folds": [
            {
                "fold": f["fold"],
                "split": f["split"],
                **{k: f["test"][k] for k in (*_SUMMARY_KEYS, "confusion") if k in f["test"]},
            }
            for f in res.folds
        ],
    }
    if extra_metrics is not None:
        extra = extra_metrics(res)  # once: it may be costly (e.g. a shift-test set)
        res.metrics.update(extra)
        metrics.update(extra)
    training = {
        "span": res.metrics["split"]["train"],
        "n_train": res.metrics["split"]["n_train"],
        "architecture": res.metrics["architecture"],
        "diagnosis": res.metrics["diagnosis"]["line"],
        "dataset": {k: v for k, v in res.dataset_info.items() if k != "spec"},
        "config": cfg.to_dict(),
        "epochs_run": len([r for r in res.history if r["fold"] == sp.fold]),
        "best_epoch": res.metrics["best_epoch"],
    }
    sample = ds.float_images(sp.train[-64:])
    res.model_dir = Path(out_dir) / "model"
    export_onnx(
        res.model,
        res.model_dir,
        spec=cfg.spec,
        architecture=cfg.model,
        class_names=ds.class_names,
        mean=res.mean,
        std=res.std,
        label=ds.label,
        training=training,
        metrics=metrics,
        sample_images=sample,
        calibration=res.metrics.get("calibration"),
        output="sigmoid" if ds.multilabel else "softmax",
    )
    _write_json(Path(out_dir) / "metrics.json", res.metrics)
    return res
