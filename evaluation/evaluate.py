"""Honest out-of-sample evaluation: purged walk-forward folds, every model scored through the
runtime path that would trade (ONNX ``Predictor`` -> ``SignalModel`` -> ``Policy`` -> ``simulate``
with fees and slippage), baselines on the same folds, a surrogate null run and a look-ahead check.

``evaluate(ohlcv, EvalConfig(...), out_dir)`` writes ``config.json``, ``folds/fold_k.json``
(resumable), ``results.json``, ``results.md`` and ``report.html``; ``results["verdict"]["ok"]``
is False when the null or look-ahead check finds a leak.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from effnet_trading.errors import SpecError, TrainingError
from effnet_trading.evaluation.baselines import fit_gbm, fit_logistic, lagged_features, ma_crossover_target
from effnet_trading.evaluation.surrogates import make_surrogate
from effnet_trading.imaging import ImageSpec, infer_interval, validate_ohlcv
from effnet_trading.model_zoo.threads import with_torch_threads
from effnet_trading.model_zoo.train import TrainConfig
from effnet_trading.outputs import write_json_atomic
from effnet_trading.strategies.execution import simulate
from effnet_trading.strategies.performance import performance_summary
from effnet_trading.strategies.policy import Policy
from effnet_trading.strategies.signal import SignalModel

__all__ = ["EvalConfig", "evaluate", "lookahead_check", "parse_split", "holdout_split", "BASELINES"]

BASELINES = ("buy_and_hold", "ma_crossover", "logreg", "effnet_features_gbm")
_VALID = 0.15  # share of each training span held out for early stopping


def parse_split(value) -> tuple[float, float, float]:
    """``"70/15/15"`` or three numbers -> train/validation/test fractions summing to 1."""
    parts = value.split("/") if isinstance(value, str) else list(value)
    try:
        nums = [float(x) for x in parts]
    except (TypeError, ValueError):
        nums = []
    if len(nums) != 3 or not all(np.isfinite(nums)) or min(nums) <= 0:
        raise SpecError(
            f"split {value!r} must be three positive train/validation/test shares, e.g. 70/15/15 (or 0.7/0.15/0.15)."
        )
    total = sum(nums)
    return tuple(round(x / total, 10) for x in nums)


def holdout_split(n: int, split, *, horizon: int, embargo: int) -> dict[str, np.ndarray]:
    """One chronological train/validation/test split of ``n`` labelled samples (index arrays).

    Validation and test get their shares of ``n``; between train and validation and between
    validation and test lie the purge (``horizon`` samples: no label window reaches the next part)
    plus the ``embargo``; train gets the rest. A ``TrainingError`` when a part would be too small."""
    fr = parse_split(split)
    n_test, n_valid = int(n * fr[2]), int(n * fr[1])
    gap = int(horizon) + int(embargo)
    t0 = n - n_test
    v0 = t0 - gap - n_valid
    n_train = v0 - gap
    if min(n_test, n_valid) < 10 or n_train < 10:
        raise TrainingError(
            f"{n} labelled samples are too few for a {'/'.join(f'{x:g}' for x in fr)} split with a gap of {gap} "
            f"(horizon {horizon} + embargo {embargo}) between parts: train {max(n_train, 0)}, validation {n_valid}, "
            f"test {n_test} (each needs >= 10); use a longer --start/--end window or a smaller horizon."
        )
    return {
        "train": np.arange(0, n_train, dtype=np.int64),
        "valid": np.arange(v0, v0 + n_valid, dtype=np.int64),
        "test": np.arange(t0, n, dtype=np.int64),
    }


def _default_train() -> TrainConfig:
    return TrainConfig(spec=ImageSpec("candles", window=32, size=(64, 64)), epochs=5, patience=2)


@dataclass
class EvalConfig:
    """Everything an evaluation run depends on; written to ``config.json`` (JSON round-trip).

    train: the ``TrainConfig`` each model is trained with (spec, horizon, labels, epochs, seed,
    threads, ...); per fold, evaluate sets the model, the split and ``max_train_bars``.
    policy: the ``Policy`` every probabilistic strategy trades with.
    """

    models: tuple[str, ...] = ("small_cnn",)
    train: TrainConfig = field(default_factory=_default_train)
    policy: Policy = field(default_factory=lambda: Policy(0.4))
    folds: int = 3
    embargo: int | None = None  # bars between the training span and each test window, beyond the purge; None = horizon
    max_train_bars: int | None = None  # most recent training samples per fold
    fees: float = 0.001
    slippage: float = 0.0005
    baselines: tuple[str, ...] = BASELINES
    ma_fast: int = 24
    ma_slow: int = 96
    gbm_max_train: int = 8000
    null: bool = True
    null_kind: str = "block_bootstrap"
    null_block: int = 1
    null_models: tuple[str, ...] | None = None  # None = all models
    lookahead_samples: int = 12
    bootstrap: int = 1000
    extra_trials: int = 0  # variants tried before this run, for the deflated Sharpe ratio
    model_kwargs: dict = field(default_factory=dict)  # model name -> builder kwargs
    # holdout mode: one chronological train/validation/test split (fractions, e.g. (0.7, 0.15, 0.15)) in place
    # of the walk-forward folds; None = walk-forward
    split: tuple[float, float, float] | None = None
    data: str | None = None  # recorded only
    timeframe: str | None = None  # recorded only (resampling happens before evaluate)
    ablations: tuple[str, ...] = ()  # evaluation.ablation.ABLATIONS run on the same folds after the main run
    ablation_timeframes: tuple[str, ...] = ("5m", "15m", "1h")  # the timeframes ablation's members
    books: str | None = None  # order-book snapshots (folder or file) for the orderbook ablation

    def __post_init__(self) -> None:
        self.models, self.baselines = tuple(self.models), tuple(self.baselines)
        self.ablations, self.ablation_timeframes = tuple(self.ablations), tuple(self.ablation_timeframes)
        if self.null_models is not None:
            self.null_models = tuple(self.null_models)
        if not isinstance(self.train, TrainConfig) or not isinstance(self.policy, Policy):
            raise SpecError(
                f"EvalConfig train must be a TrainConfig and policy a Policy; got {type(self.train).__name__} "
                f"and {type(self.policy).__name__} (EvalConfig.from_dict reads them from dicts)."
            )
        unknown = sorted(set(self.baselines) - set(BASELINES))
        if unknown:
            raise SpecError(f"unknown baseline(s) {unknown}; choose from {list(BASELINES)}.")
        if self.folds < 1:
            raise SpecError(f"folds={self.folds} must be >= 1.")
        if self.split is not None:
            self.split = parse_split(self.split)

    # the training settings evaluate itself reads (labels, splits, statistics): one source, the TrainConfig
    spec = property(lambda self: self.train.spec)
    horizon = property(lambda self: self.train.horizon)
    label_k = property(lambda self: self.train.label_k)
    seed = property(lambda self: self.train.seed)
    num_threads = property(lambda self: self.train.num_threads)

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["train"], d["policy"] = self.train.to_dict(), self.policy.to_dict()
        return json.loads(json.dumps(d))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EvalConfig:
        known = {f.name for f in fields(cls)}
        if set(d) - known:
            raise SpecError(f"unknown EvalConfig keys {sorted(set(d) - known)}; known: {sorted(known)}.")
        d = dict(d)
        if isinstance(d.get("train"), dict):
            d["train"] = TrainConfig.from_dict({k: v for k, v in _default_train().to_dict().items()} | d["train"])
        if isinstance(d.get("policy"), dict):
            d["policy"] = Policy.from_dict(d["policy"])
        return cls(**d)


def _write_json(path: Path, obj: Any) -> None:
    write_json_atomic(path, obj, indent=1)


def _image_view(frame: pd.DataFrame) -> pd.DataFrame:
    """The bars images are rendered from: the data itself. (The leak tests replace this function
    with a view that shows the future, and check that the null and look-ahead checks catch it.)"""
    return frame


def _score(model_dir: Path, frame: pd.DataFrame, lo: int, hi: int) -> pd.DataFrame:
    """Runtime probabilities for bars ``lo..hi`` (DataFrame on their index): ONNX via ``SignalModel``."""
    sm = SignalModel(model_dir)
    view = _image_view(frame)
    margin = sm.history + 2
    part = view.iloc[max(0, lo - margin) : hi + 1]
    return sm.predict_proba(part).iloc[-(hi - lo + 1) :]


def _dataset(frame: pd.DataFrame, cfg: EvalConfig):
    from effnet_trading.imaging.labels import forward_return_labels
    from effnet_trading.model_zoo.dataset import ImageDataset

    view = _image_view(frame)
    ds = ImageDataset.build(view, cfg.spec, cfg.horizon, label_k=cfg.label_k)
    if view is not frame:  # images from the view, labels from the true prices
        labels, fwd = forward_return_labels(frame["close"].to_numpy(np.float64), cfg.horizon, k=cfg.label_k)
        keep = np.flatnonzero(labels[ds.ends] >= 0)
        ds = _subset(ds, keep)
        ds.labels, ds.fwd = labels[ds.ends], fwd[ds.ends]
    if np.any(np.diff(ds.ends) != 1):
        raise TrainingError("evaluate needs the labelled images on consecutive bars (a gap in ends); check the data.")
    return ds


def _subset(ds, idx: np.ndarray):
    from dataclasses import replace

    return replace(
        ds, images=ds.images[idx], labels=ds.labels[idx], ends=ds.ends[idx], index=ds.index[idx], fwd=ds.fwd[idx]
    )


def _trade(
    span: pd.DataFrame, probs: pd.DataFrame | None, target: np.ndarray | None, cfg: EvalConfig, interval
) -> dict:
    """Policy (if probabilities) -> simulate -> per-bar returns/positions and a performance summary."""
    if probs is not None:
        target = cfg.policy.replace(class_names=tuple(probs.columns)).positions(probs).to_numpy()
    sim = simulate(span, target, fees=cfg.fees, slippage=cfg.slippage)
    perf = performance_summary(sim, interval=interval)
    return {"returns": sim.returns.to_numpy().tolist(), "position": sim.position.to_numpy().tolist(), "perf": perf}


def _classify(y: np.ndarray, p: np.ndarray) -> dict:
    from effnet_trading.model_zoo.metrics import classification_report

    rep = classification_report(y, p, warn=False)
    keep = (
        "n",
        "accuracy",
        "macro_f1",
        "log_loss",
        "majority_rate",
        "majority_class",
        "edge",
        "confusion",
        "collapsed",
        "pred_shares",
        "true_shares",
        "ece",
    )
    return {k: rep[k] for k in keep} | {"y": y.tolist(), "pred": p.argmax(1).tolist(), "conf": p.max(1).tolist()}


def _proba3(model, x: np.ndarray) -> np.ndarray:
    """sklearn/lightgbm ``predict_proba`` -> ``(n, 3)`` columns in class order 0, 1, 2."""
    out = np.zeros((len(x), 3))
    out[:, np.asarray(model.classes_, int)] = model.predict_proba(x)
    return out


def _features(net, images: np.ndarray, mean, std) -> np.ndarray:
    """Pooled penultimate features ``(n, F)`` float64 of a torch model, inputs normalised as in training."""
    from effnet_trading.model_zoo.features import extract_features

    return extract_features(net, np.asarray(images), mean=mean, std=std).to_numpy(np.float64)


class _Fold:
    """One walk-forward fold of one data set: train/export/score each model, then the baselines."""

    def __init__(
        self,
        frame,
        ds,
        test: np.ndarray,
        k: int,
        cfg: EvalConfig,
        model_root: Path,
        progress: bool,
        holdout: dict[str, np.ndarray] | None = None,
    ):
        self.frame, self.ds, self.test, self.k, self.cfg = frame, ds, test, k, cfg
        self.model_root, self.progress, self.holdout = model_root, progress, holdout
        self.interval = infer_interval(frame.index)
        emb = cfg.horizon if cfg.embargo is None else int(cfg.embargo)
        self.t0, self.t1 = int(test[0]), int(test[-1]) + 1
        self.stop = self.t0 - emb  # training (+ validation) samples end before this, then the purge inside train_model
        cap = cfg.max_train_bars
        self.start = 0 if cap is None else max(0, self.stop - cfg.horizon - int(cap / (1 - _VALID)) - cfg.horizon)
        if holdout is not None:  # holdout_split placed the parts and their gaps; the models train on its train part
            self.start, self.stop = 0, int(holdout["valid"][-1]) + 1 + cfg.horizon
        if self.stop - self.start <= 2 * cfg.horizon + 10:
            raise TrainingError(
                f"fold {k}: only {self.stop - self.start} samples before the test window; use fewer folds or more data."
            )
        self.lo, self.hi = int(ds.ends[self.t0]), int(ds.ends[self.t1 - 1])
        self.span = frame.iloc[self.lo : self.hi + 1]
        self.y = ds.labels[self.t0 : self.t1]
        self.b0 = None  # (torch model, mean, std) of the fold's trained B0, for the frozen-feature baseline

    def record(self, models: tuple[str, ...], baselines: tuple[str, ...]) -> dict:
        ds = self.ds
        rec = {
            "fold": self.k,
            "test_span": [str(ds.index[self.t0]), str(ds.index[self.t1 - 1])],
            "train_span": [str(ds.index[self.start]), str(ds.index[self.stop - 1 - self.cfg.horizon])],
            "n_train_span": self.stop - self.start,
            "n_test": self.t1 - self.t0,
            **self._holdout_record(),
            "strategies": {},
            "seconds": {},
        }
        for m in models:
            t = time.perf_counter()
            rec["strategies"][m] = self._model(m)
            rec["seconds"][m] = time.perf_counter() - t
        for b in baselines:
            t = time.perf_counter()
            rec["strategies"][b] = getattr(self, f"_{b}")()
            rec["seconds"][b] = time.perf_counter() - t
        return rec

    def training_set(self, name: str, ds=None):
        """(the fold's training + test samples of ``ds`` (default: the run's), the TrainConfig of model ``name``):
        one fold of ``train_model`` on them trains exactly as the main run (the orderbook ablation reuses it)."""
        cfg, ds = self.cfg, self.ds if ds is None else ds
        if self.holdout is None:
            sub = _subset(ds, np.r_[self.start : self.stop, self.t0 : self.t1])
            valid = _VALID
        else:  # train + the horizon after it (purged inside train_model), valid + the horizon after it, test
            tr, va, h = self.holdout["train"], self.holdout["valid"], cfg.horizon
            sub = _subset(ds, np.r_[tr[0] : tr[-1] + 1 + h, va[0] : va[-1] + 1 + h, self.t0 : self.t1])
            valid = len(va)
        tcfg = replace(
            cfg.train,
            model=name,
            folds=1,
            embargo=0,
            test_size=self.t1 - self.t0,
            valid=valid,
            progress=self.progress,
            max_train_samples=cfg.max_train_bars,
            model_kwargs=dict(cfg.model_kwargs.get(name, {})),
        )
        return sub, tcfg

    def _model(self, name: str) -> dict:
        from effnet_trading.model_zoo.train import train_and_export

        cfg = self.cfg
        sub, tcfg = self.training_set(name)
        run_dir = self.model_root / f"fold_{self.k}" / name
        res = train_and_export(self.frame, tcfg, run_dir, dataset=sub)
        shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)  # resume works per fold; checkpoints only cost disk
        if name == "efficientnet_b0":
            self.b0 = (res.model, res.mean, res.std)
        probs = _score(res.model_dir, self.frame, self.lo, self.hi)
        p = probs.to_numpy()
        curve = [{k: r.get(k) for k in ("epoch", "loss", "acc", "val_loss", "val_acc")} for r in res.history]
        return {
            "kind": "model",
            "model_dir": str(res.model_dir),
            "best_epoch": res.metrics.get("best_epoch"),
            "epochs_run": len(res.history),
            "runtime_vs_torch_max_abs": float(np.max(np.abs(p - res.test_proba))),
            "curve": curve,
            "diagnosis": res.metrics["diagnosis"],
            "architecture": res.metrics["architecture"],
            "classification": _classify(self.y, p),
            **_trade(self.span, probs, None, cfg, self.interval),
        }

    def _buy_and_hold(self) -> dict:
        return {"kind": "benchmark", **_trade(self.span, None, np.ones(len(self.span)), self.cfg, self.interval)}

    def _ma_crossover(self) -> dict:
        cfg = self.cfg
        target = ma_crossover_target(
            self.frame["close"].to_numpy(), cfg.ma_fast, cfg.ma_slow, long_only=cfg.policy.long_only
        )
        return {"kind": "rule", **_trade(self.span, None, target[self.lo : self.hi + 1], cfg, self.interval)}

    def _classifier(self, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, fit) -> dict:
        ok = np.isfinite(x_train).all(1)
        model = fit(x_train[ok], y_train[ok], seed=self.cfg.seed)
        p = _proba3(model, np.nan_to_num(x_test))
        probs = pd.DataFrame(p, index=self.span.index, columns=list(self.ds.class_names))
        return {
            "kind": "classifier",
            "classification": _classify(self.y, p),
            **_trade(self.span, probs, None, self.cfg, self.interval),
        }

    def _train_samples(self, cap: int | None) -> np.ndarray:
        idx = np.arange(self.start, self.stop - self.cfg.horizon)  # purged: labels end before the embargo gap
        if self.holdout is not None:  # the baselines fit on the (capped) train part + validation (no early stop)
            tr = self.holdout["train"]
            return np.r_[tr[-cap:] if cap else tr, self.holdout["valid"]]
        return idx[-cap:] if cap else idx

    def _holdout_record(self) -> dict:
        if self.holdout is None:
            return {}
        ds, tr, va = self.ds, self.holdout["train"], self.holdout["valid"]
        cap = self.cfg.max_train_bars
        tr = tr[-cap:] if cap else tr  # the models train on the last max_train_bars of the train part
        return {
            "mode": "holdout",
            "train_span": [str(ds.index[tr[0]]), str(ds.index[tr[-1]])],
            "valid_span": [str(ds.index[va[0]]), str(ds.index[va[-1]])],
            "n_train": len(tr),
            "n_valid": len(va),
            "baselines_fit_on": "the train span + the validation span",
        }

    def _logreg(self) -> dict:
        x = lagged_features(self.frame)
        tr = self._train_samples(self.cfg.max_train_bars)
        return self._classifier(x[self.ds.ends[tr]], self.ds.labels[tr], x[self.lo : self.hi + 1], fit_logistic)

    def _effnet_features_gbm(self) -> dict:
        from effnet_trading.model_zoo.registry import create_model

        cap = min(self.cfg.gbm_max_train, self.cfg.max_train_bars or self.cfg.gbm_max_train)
        tr = self._train_samples(cap)
        source = "efficientnet_b0 trained on this fold"
        if self.b0 is None:
            import torch

            torch.manual_seed(self.cfg.seed)
            net = create_model("efficientnet_b0", num_classes=3, in_chans=self.ds.images.shape[1])
            mean, std = self.ds.channel_stats(tr)
            self.b0, source = (
                (net, mean, std),
                "untrained efficientnet_b0 (random weights; no ImageNet weights offline)",
            )
        net, mean, std = self.b0
        f_tr = _features(net, self.ds.images[tr], mean, std)
        f_te = _features(net, self.ds.images[self.t0 : self.t1], mean, std)
        out = self._classifier(f_tr, self.ds.labels[tr], f_te, fit_gbm)
        return out | {"features": source}


def _splits(ds, cfg: EvalConfig) -> tuple[list, dict[str, np.ndarray] | None]:
    """The run's folds over the samples of ``ds``: (splits, the holdout parts or None for walk-forward)."""
    from effnet_trading.model_zoo.splits import Split, walk_forward_splits

    if cfg.split is None:
        return walk_forward_splits(len(ds), cfg.folds, horizon=cfg.horizon, valid=None), None
    emb = cfg.horizon if cfg.embargo is None else int(cfg.embargo)
    holdout = holdout_split(len(ds), cfg.split, horizon=cfg.horizon, embargo=emb)
    return [Split(train=holdout["train"], valid=holdout["valid"], test=holdout["test"], fold=0)], holdout


def recorded_model_dir(out: str | os.PathLike, recorded: str) -> Path:
    """A fold record's model folder in ``out``, the evaluation folder it belongs to: the recorded path's part
    from its last ``models`` folder on, under ``out``, when that exists (so also after the folder moved: a
    sweep cell is written into a work folder and renamed when done; and never another run's folder now at
    the recorded path). Otherwise the recorded path as it is."""
    path = Path(recorded)
    if "models" not in path.parts:
        return path
    parts = path.parts
    start = len(parts) - 1 - parts[::-1].index("models")
    own = Path(out).joinpath(*parts[start:])
    return own if own.exists() else path


def _run_set(
    frame, cfg: EvalConfig, out: Path, tag: str, models, baselines, *, resume: bool, progress: bool
) -> list[dict]:
    """All folds of one data set (real or null); each finished fold is saved and skipped on resume."""
    from tqdm.auto import tqdm

    ds = _dataset(frame, cfg)
    splits, holdout = _splits(ds, cfg)
    records = []
    for sp in tqdm(splits, desc=f"{tag} folds", disable=not progress):
        path = out / "folds" / f"{'' if tag == 'real' else tag + '_'}fold_{sp.fold}.json"
        if resume and path.exists():
            rec = json.loads(path.read_text())
            for entry in rec["strategies"].values():
                if "model_dir" in entry:
                    entry["model_dir"] = str(recorded_model_dir(out, entry["model_dir"]))
            records.append(rec)
            continue
        fold = _Fold(frame, ds, sp.test, sp.fold, cfg, out / "models" / tag, progress, holdout)
        rec = fold.record(models, baselines)
        _write_json(path, rec)
        records.append(rec)
    return records


def lookahead_check(
    model_dir: str | os.PathLike, ohlcv: pd.DataFrame, positions, *, seed: int = 0, tail: int = 64, atol: float = 1e-6
) -> dict:
    """Perturb every bar after t (prices x random factors, volumes x random) for each t in ``positions``
    and check that the runtime probabilities at bars t-2..t are unchanged. {ok, n, max_abs_change, changed}."""
    frame = validate_ohlcv(ohlcv)
    rng = np.random.default_rng(seed)
    worst, changed = 0.0, []
    for t in np.asarray(positions, int):
        end = min(len(frame), t + 1 + tail)
        base = _score(model_dir, frame.iloc[:end], t - 2, t).to_numpy()
        a = frame.iloc[:end].to_numpy().copy()
        f = np.exp(rng.normal(0.0, 0.05, end - t - 1))
        a[t + 1 :, :4] *= f[:, None]
        a[t + 1 :, 4] *= np.exp(rng.normal(0.0, 0.5, end - t - 1))
        pert = pd.DataFrame(a, index=frame.index[:end], columns=frame.columns)
        got = _score(model_dir, pert, t - 2, t).to_numpy()
        diff = float(np.nanmax(np.abs(got - base))) if np.isfinite(base).any() else 0.0
        worst = max(worst, diff)
        if diff > atol or not np.array_equal(np.nanargmax(got, 1), np.nanargmax(base, 1)):
            changed.append(int(t))
    return {"ok": not changed, "n": int(len(positions)), "max_abs_change": worst, "changed": changed[:20]}


def _flat(d: dict) -> dict:
    """``{"train": {"horizon": 6}}`` -> ``{"train.horizon": 6}`` (one level: the nested config objects)."""
    out = {}
    for k, v in d.items():
        if k in ("train", "policy") and isinstance(v, dict):
            out.update({f"{k}.{kk}": vv for kk, vv in v.items()})
        else:
            out[k] = v
    return out


# settings that do not change fold results: a resume may change them
RESUME_IGNORES = frozenset(
    {"lookahead_samples", "bootstrap", "extra_trials", "train.num_threads", "train.progress"}
    | {"ablations", "ablation_timeframes", "books"}  # run after the folds, not saved with them
)


def _check_config(out: Path, cfg: EvalConfig, resume: bool) -> None:
    path = out / "config.json"
    if resume and path.exists():
        saved, now = _flat(json.loads(path.read_text())), _flat(cfg.to_dict())
        diff = sorted(k for k in saved.keys() | now.keys() if k not in RESUME_IGNORES and saved.get(k) != now.get(k))
        if diff:
            raise TrainingError(
                f"cannot resume in {out}: config.json differs in {diff}; use the same options or a new --out."
            )
    _write_json(path, cfg.to_dict())


@with_torch_threads(lambda ohlcv, cfg, *a, **k: cfg.num_threads)  # restored on return
def evaluate(
    ohlcv, cfg: EvalConfig, out_dir: str | os.PathLike, *, resume: bool = False, progress: bool = True
) -> dict:
    """Run the whole evaluation (see module docstring) and write its outputs; returns results.json's content."""
    from effnet_trading.evaluation.eval_report import summarise, write_outputs

    t_start = time.perf_counter()
    out = Path(out_dir)
    frame = validate_ohlcv(ohlcv)
    if cfg.ablations:  # refuse before anything is written (e.g. order books that do not cover the span)
        from effnet_trading.evaluation.ablation import check_ablations

        check_ablations(frame, cfg)
    out.mkdir(parents=True, exist_ok=True)
    _check_config(out, cfg, resume)
    kw = {"resume": resume, "progress": progress}
    real = _run_set(frame, cfg, out, "real", cfg.models, cfg.baselines, **kw)
    null = None
    if cfg.null:
        surrogate = make_surrogate(frame, cfg.null_kind, block=cfg.null_block, seed=cfg.seed + 1)
        models = cfg.models if cfg.null_models is None else cfg.null_models
        null = _run_set(surrogate, cfg, out, "null", models, tuple(b for b in cfg.baselines if b == "logreg"), **kw)
    looks = {}
    last = real[-1]
    ends = np.linspace(
        pd.Index(frame.index).get_loc(pd.Timestamp(last["test_span"][0])),
        pd.Index(frame.index).get_loc(pd.Timestamp(last["test_span"][1])),
        cfg.lookahead_samples,
    ).astype(int)
    for name, entry in last["strategies"].items():
        if entry.get("kind") == "model":
            looks[name] = lookahead_check(entry["model_dir"], frame, ends, seed=cfg.seed)
    results = summarise(real, null, looks, cfg, infer_interval(frame.index))
    if cfg.ablations:
        from effnet_trading.evaluation.ablation import run_ablations

        results["ablations"] = run_ablations(frame, cfg, real, out)
    results["seconds_total"] = time.perf_counter() - t_start
    results["data"] = {"bars": len(frame), "span": [str(frame.index[0]), str(frame.index[-1])], "path": cfg.data}
    write_outputs(results, real, out)
    return results
