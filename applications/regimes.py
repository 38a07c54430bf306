"""Market regimes: rule labels, an image classifier, and a causal HMM filter over its outputs.

**Regime definitions**: the rule labels (``REGIMES``, ``RegimeRules``, ``regime_features``,
``regime_labels``) live in ``strategies.regime_rules`` (torch-free, shared with ``evaluation``) and are
re-exported here; their definitions are documented there.

**HMM.** ``RegimeHMM`` has one hidden state per regime and observes the classifier's predicted
regime (argmax). Emissions are the classifier's out-of-sample confusion (P(predicted | true)),
start and transition probabilities come from the label counts and are then re-estimated by
Baum-Welch with ``hmmlearn`` (``params="st"``: emissions stay fixed, so every state keeps its
regime's meaning). ``filter`` runs the forward algorithm only: the probabilities at bar t use
observations ``.. t``. hmmlearn's ``predict_proba`` smooths over the whole sequence (it uses
later bars) and is never used for scoring.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from effnet_trading.errors import DataError, ModelCardError, TrainingError
from effnet_trading.imaging import ImageSpec, spec_from_dict, validate_ohlcv
from effnet_trading.strategies.regime_rules import (  # re-exported: the rule labels
    REGIMES,
    TRENDING,
    RegimeRules,
    regime_features,
    regime_labels,
)

__all__ = [
    "REGIMES",
    "TRENDING",
    "RegimeRules",
    "regime_features",
    "regime_labels",
    "RegimeHMM",
    "forward_filter",
    "RegimeModel",
    "RegimeFitConfig",
    "fit_regimes",
    "scan_regimes",
    "plot_regimes",
]

_HMM_FILE, _CLASSIFIER_DIR = "hmm.json", "classifier"


def forward_filter(startprob: np.ndarray, transmat: np.ndarray, loglik: np.ndarray) -> np.ndarray:
    """Normalised forward probabilities ``(T, K)``: row t = P(state_t | observations 0..t).

    loglik: ``(T, K)`` emission log-likelihoods; a row of NaN is a missing observation (the row
    then holds the one-step prediction).
    """
    loglik = np.asarray(loglik, np.float64)
    a = np.asarray(transmat, np.float64)
    out = np.empty_like(loglik)
    prior = np.asarray(startprob, np.float64)
    for t in range(len(loglik)):
        row = loglik[t]
        if np.isnan(row).any():
            post = prior
        else:
            lik = np.exp(row - row.max())
            post = prior * lik
            s = post.sum()
            post = post / s if s > 0 else prior
        out[t] = post
        prior = post @ a
    return out


def _counts_matrix(rows: np.ndarray, cols: np.ndarray, k: int, m: int, smoothing: float) -> np.ndarray:
    c = np.full((k, m), float(smoothing))
    np.add.at(c, (rows, cols), 1.0)
    return c / c.sum(axis=1, keepdims=True)


@dataclass
class RegimeHMM:
    """Hidden regimes observed through a classifier's predicted regime (see module docstring)."""

    startprob: np.ndarray
    transmat: np.ndarray
    emission: np.ndarray  # (K states, K predicted classes): P(predicted | true regime)
    regimes: tuple[str, ...] = REGIMES
    fit_info: dict = field(default_factory=dict)

    @classmethod
    def fit(
        cls,
        observed,
        labels,
        *,
        emission_from: tuple[np.ndarray, np.ndarray] | None = None,
        regimes: tuple[str, ...] = REGIMES,
        n_iter: int = 20,
        smoothing: float = 1.0,
        seed: int = 0,
    ) -> RegimeHMM:
        """Supervised start/transition/emission counts, then Baum-Welch (hmmlearn) on ``observed``.

        observed: predicted regime codes (-1 = none); labels: the rule labels of the same bars.
        emission_from: ``(true, predicted)`` codes to estimate the emissions from (default: the
        pairs of ``labels`` / ``observed``); pass out-of-sample predictions here.
        """
        from effnet_trading.errors import require

        CategoricalHMM = require("hmmlearn.hmm", "apps").CategoricalHMM  # noqa: N806

        obs, lab = np.asarray(observed, np.int64), np.asarray(labels, np.int64)
        k = len(regimes)
        if obs.shape != lab.shape:
            raise DataError(f"observed ({obs.shape}) and labels ({lab.shape}) must have the same length.")
        both = (obs >= 0) & (lab >= 0)
        if both.sum() < 2 * k:
            raise TrainingError(f"only {int(both.sum())} labelled bars with a prediction; the HMM needs more data.")
        valid = lab >= 0
        pairs = valid[:-1] & valid[1:]
        trans = _counts_matrix(lab[:-1][pairs], lab[1:][pairs], k, k, smoothing)
        start = np.bincount(lab[valid], minlength=k) + smoothing
        start = start / start.sum()
        true, pred = emission_from if emission_from is not None else (lab[both], obs[both])
        emit = _counts_matrix(np.asarray(true), np.asarray(pred), k, k, smoothing)
        seq = obs[obs >= 0].reshape(-1, 1)
        hmm = CategoricalHMM(n_components=k, n_features=k, n_iter=int(n_iter), params="st", init_params="")
        hmm.random_state = seed
        hmm.startprob_, hmm.transmat_, hmm.emissionprob_ = start, trans, emit
        if n_iter > 0:
            hmm.fit(seq)
        info = {
            "n_observed": int(len(seq)),
            "n_iter": int(n_iter),
            "em_converged": bool(hmm.monitor_.converged) if n_iter > 0 else None,
            "transmat_from_labels": trans.tolist(),
            "emission_pairs": int(len(np.asarray(true))),
        }
        return cls(hmm.startprob_.copy(), hmm.transmat_.copy(), emit, tuple(regimes), info)

    def loglik(self, observed) -> np.ndarray:
        """``(T, K)`` emission log-likelihoods of predicted codes (NaN rows where the code is -1)."""
        obs = np.asarray(observed, np.int64)
        out = np.full((len(obs), len(self.regimes)), np.nan)
        ok = obs >= 0
        out[ok] = np.log(self.emission[:, obs[ok]].T)
        return out

    def filter(self, observed) -> np.ndarray:
        """Causal ``(T, K)`` regime probabilities (NaN before the first observation)."""
        obs = np.asarray(observed, np.int64)
        p = np.full((len(obs), len(self.regimes)), np.nan)
        seen = np.flatnonzero(obs >= 0)
        if len(seen):  # the filter starts at the first observation (as ``RegimeModel.update`` does)
            p[seen[0] :] = forward_filter(self.startprob, self.transmat, self.loglik(obs[seen[0] :]))
        return p

    def frame(self, observed, index: pd.Index) -> pd.DataFrame:
        """Regime probabilities plus ``p_switch`` (probability the regime changes at the next bar)
        and ``regime`` (the most likely one), all causal."""
        p = self.filter(observed)
        stay = (p * np.diag(self.transmat)).sum(axis=1)
        out = pd.DataFrame(p, index=index, columns=list(self.regimes))
        out["p_switch"] = 1.0 - stay
        names = np.array(self.regimes, dtype=object)
        out["regime"] = np.where(np.isnan(p).any(axis=1), None, names[np.nan_to_num(p).argmax(axis=1)])
        return out

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("startprob", "transmat", "emission"):
            d[k] = np.asarray(d[k]).tolist()
        d["regimes"] = list(self.regimes)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RegimeHMM:
        return cls(
            np.asarray(d["startprob"]),
            np.asarray(d["transmat"]),
            np.asarray(d["emission"]),
            tuple(d["regimes"]),
            dict(d.get("fit_info", {})),
        )


@dataclass
class RegimeFitConfig:
    """What ``fit_regimes`` trains: rules, image spec, classifier and its budget."""

    rules: RegimeRules = RegimeRules()
    spec: Any = field(default_factory=lambda: ImageSpec("candles", window=32, size=(32, 32)))
    model: str = "small_cnn"
    epochs: int = 3
    max_train_samples: int | None = 5000
    test_size: float = 0.25
    n_iter: int = 20
    seed: int = 0
    num_threads: int | None = 1
    progress: bool = False
    class_weights: str | None = "balanced"  # over the regimes present in the training part (absent ones weigh 0)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["rules"], d["spec"] = asdict(self.rules), self.spec.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RegimeFitConfig:
        d = dict(d)
        d["rules"] = RegimeRules(**d.get("rules", {}))
        if isinstance(d.get("spec"), dict):
            d["spec"] = spec_from_dict(d["spec"])
        return cls(**d)


def _regime_dataset(frame: pd.DataFrame, cfg: RegimeFitConfig, labels: np.ndarray):
    from effnet_trading.imaging import warmup
    from effnet_trading.model_zoo.dataset import ImageDataset

    horizon = cfg.rules.window  # neighbouring labels share a window: purge that many bars around the test span
    ends = np.flatnonzero((labels >= 0) & (np.arange(len(frame)) >= warmup(cfg.spec, frame)))
    ends = ends[ends < len(frame) - horizon]
    if len(ends) < 200:
        raise TrainingError(
            f"only {len(ends)} labelled bars after the regime warm-up ({cfg.rules.base} bars baseline); "
            "pass more data or a smaller RegimeRules(base=...)."
        )
    ds = ImageDataset.build(frame, cfg.spec, horizon, ends=ends)
    rule = {"rule": "regime", "classes": list(REGIMES), **asdict(cfg.rules)}
    return replace(ds, labels=labels[ds.ends], class_names=REGIMES, label=rule)


def fit_regimes(ohlcv, cfg: RegimeFitConfig, out_dir: str | os.PathLike) -> dict:
    """Train the regime classifier (exported to ``out_dir/classifier/model``) and fit the HMM on its
    out-of-sample predictions (``out_dir/hmm.json``). Returns the summary written beside them."""
    from effnet_trading.model_zoo.train import TrainConfig, train_and_export

    frame = validate_ohlcv(ohlcv)
    labels = regime_labels(frame, cfg.rules).to_numpy()
    ds = _regime_dataset(frame, cfg, labels)
    # a regime absent from the training part (low_liquidity never occurs on BTC/USDT 1h) gets weight 0 and the
    # present ones are balanced among themselves: unweighted, the classifier collapses to the ~84 % "ranging"
    tcfg = TrainConfig(
        model=cfg.model,
        spec=cfg.spec,
        horizon=cfg.rules.window,
        epochs=cfg.epochs,
        patience=2,
        test_size=cfg.test_size,
        max_train_samples=cfg.max_train_samples,
        seed=cfg.seed,
        num_threads=cfg.num_threads,
        progress=cfg.progress,
        class_weights=cfg.class_weights,
    )
    out = Path(out_dir)
    res = train_and_export(frame, tcfg, out / _CLASSIFIER_DIR, dataset=ds)
    test_idx, proba = res.fold_test[-1]
    true, pred = ds.labels[test_idx], proba.argmax(axis=1)
    observed = np.full(len(frame), -1)
    observed[ds.ends[test_idx]] = pred
    hmm = RegimeHMM.fit(observed, labels, emission_from=(true, pred), n_iter=cfg.n_iter, seed=cfg.seed)
    (out / _HMM_FILE).write_text(json.dumps({"hmm": hmm.to_dict(), "config": cfg.to_dict()}, indent=1))
    test = res.metrics["test"]
    train_idx = np.setdiff1d(np.arange(len(ds)), test_idx)
    return {
        "classifier_test": {k: test[k] for k in ("n", "accuracy", "macro_f1", "majority_rate", "majority_class")}
        | {
            "recall": {r: test["per_class"][r]["recall"] for r in REGIMES},
            "test_shares": {r: float(np.mean(true == i)) for i, r in enumerate(REGIMES)},
            "pred_shares": test["pred_shares"],
            "train_part_shares": {r: float(np.mean(ds.labels[train_idx] == i)) for i, r in enumerate(REGIMES)},
        },
        "label_shares": {r: float(np.mean(labels[labels >= 0] == i)) for i, r in enumerate(REGIMES)},
        "transition_matrix": hmm.transmat.tolist(),
        "regimes": list(REGIMES),
        "hmm": hmm.fit_info,
    }


class RegimeModel:
    """Classifier + HMM from a ``fit_regimes`` folder, as a ``Scorer`` of causal regime probabilities
    (columns ``REGIMES``); ``frame(ohlcv)`` adds ``p_switch`` and ``regime``."""

    def __init__(self, model_dir: str | os.PathLike, *, chunk: int = 2048):
        from effnet_trading.strategies import SignalModel

        root = Path(model_dir)
        path = root / _HMM_FILE
        if not path.is_file():
            raise ModelCardError(f"{root} holds no {_HMM_FILE}; create the folder with `effnet-trading regimes fit`.")
        saved = json.loads(path.read_text())
        self.hmm = RegimeHMM.from_dict(saved["hmm"])
        self.config = RegimeFitConfig.from_dict(saved["config"])
        self.classifier = SignalModel(root / _CLASSIFIER_DIR / "model", chunk=chunk)
        if tuple(self.classifier.class_names) != self.hmm.regimes:
            raise ModelCardError(
                f"classifier classes {list(self.classifier.class_names)} differ from the HMM's {list(self.hmm.regimes)}; "
                "refit the folder with `effnet-trading regimes fit`."
            )
        self.class_names = self.hmm.regimes
        self.reset()

    @property
    def warmup(self) -> int:
        return self.classifier.warmup

    def _observed(self, probs: pd.DataFrame) -> np.ndarray:
        p = probs.to_numpy(np.float64)
        return np.where(np.isnan(p).any(axis=1), -1, np.nan_to_num(p).argmax(axis=1))

    def frame(self, ohlcv) -> pd.DataFrame:
        """Causal regime probabilities, ``p_switch`` and ``regime`` per bar."""
        probs = self.classifier.predict_proba(ohlcv)
        return self.hmm.frame(self._observed(probs), probs.index)

    def predict_proba(self, ohlcv) -> pd.DataFrame:
        return self.frame(ohlcv)[list(self.class_names)]

    def update(self, bar) -> pd.Series | None:
        """One closed bar: one forward step of the filter (same numbers as ``predict_proba``)."""
        row = self.classifier.update(bar)
        if row is None:
            if self._post is not None:
                self._post = self._post @ self.hmm.transmat  # no observation: predict only
            return None if self._post is None else pd.Series(self._post, index=list(self.class_names))
        code = int(np.argmax(row.to_numpy(np.float64)))
        prior = self.hmm.startprob if self._post is None else self._post @ self.hmm.transmat
        post = prior * self.hmm.emission[:, code]
        self._post = post / post.sum()
        return pd.Series(self._post, index=list(self.class_names), name=row.name)

    def reset(self) -> None:
        self.classifier.reset()
        self._post: np.ndarray | None = None

    def __repr__(self) -> str:
        return f"RegimeModel(classes={list(self.class_names)}, spec={self.classifier.spec.kind})"


_COLOURS = {
    "trend_up": "#2ca02c",
    "trend_down": "#d62728",
    "ranging": "#7f7f7f",
    "high_vol": "#ff7f0e",
    "low_liquidity": "#1f77b4",
}


def plot_regimes(close: pd.Series, regime: pd.Series, path: str | os.PathLike, *, title: str = "") -> None:
    """PNG of the close, shaded by ``regime`` (a name per bar; None = unshaded)."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    fig = Figure(figsize=(10, 3.6), dpi=100)
    ax = fig.add_subplot()
    ax.plot(close.index, close.to_numpy(), color="black", lw=0.7)
    names = regime.to_numpy(dtype=object)
    change = np.flatnonzero(np.r_[True, names[1:] != names[:-1]])
    bounds = np.r_[change, len(names)]
    x = close.index
    for a, b in zip(bounds[:-1], bounds[1:]):
        name = names[a]
        if name in _COLOURS:
            ax.axvspan(x[a], x[min(b, len(x) - 1)], color=_COLOURS[name], alpha=0.25, lw=0)
    ax.legend(
        handles=[Patch(color=c, alpha=0.4, label=n) for n, c in _COLOURS.items()],
        loc="upper left",
        fontsize=7,
        ncol=5,
    )
    ax.set_title(title or "close, shaded by the causally filtered regime", fontsize=9)
    ax.margins(x=0)
    fig.tight_layout()
    fig.savefig(path)


def scan_regimes(ohlcv, model: RegimeModel | str | os.PathLike, out_dir: str | os.PathLike) -> dict:
    """Write ``regimes.csv`` (timestamp, one causal probability per regime, p_switch, regime),
    ``regimes.png`` and ``summary.json`` (transition matrix, regime shares, agreement with the
    rule labels beside the majority rate) into ``out_dir``; returns the summary."""
    frame = validate_ohlcv(ohlcv)
    model = model if isinstance(model, RegimeModel) else RegimeModel(model)
    reg = model.frame(frame)
    out = Path(out_dir)
    reg.rename_axis("timestamp").to_csv(out / "regimes.csv", float_format="%.6g")
    plot_regimes(frame["close"], reg["regime"], out / "regimes.png")
    rules = regime_labels(frame, model.config.rules).to_numpy()
    scored = reg["regime"].notna().to_numpy() & (rules >= 0)
    truth = np.array(REGIMES, dtype=object)[rules[scored]]
    shares = pd.Series(truth).value_counts(normalize=True)
    summary = {
        "bars": len(frame),
        "span": [str(frame.index[0]), str(frame.index[-1])],
        "scored_bars": int(reg["regime"].notna().sum()),
        "regimes": list(REGIMES),
        "transition_matrix": model.hmm.transmat.tolist(),
        "regime_shares": {r: float((reg["regime"] == r).mean()) for r in REGIMES},
        "agreement_with_rule_labels": {
            "n": int(scored.sum()),
            "accuracy": float(np.mean(reg["regime"].to_numpy()[scored] == truth)) if scored.any() else None,
            "majority_rate": float(shares.iloc[0]) if len(shares) else None,
            "majority_regime": str(shares.index[0]) if len(shares) else None,
            "note": "in-sample for bars the classifier was trained on; out-of-sample only on new data",
        },
        "filter": "forward algorithm only: the row for bar t uses bars up to t",
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary
