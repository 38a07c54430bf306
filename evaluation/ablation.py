"""The literature's ablations as ``evaluate`` options (``--ablation timeframes|regime|orderbook``).

Each ablation runs after the main walk-forward run, on **its** test windows (read from the fold
records, so the folds are the same by construction), with the run's fees, slippage and ``Policy``,
and compares two arms bar by bar on the same test bars (paired per fold). The measured difference
is the mean per-bar return of one arm minus the other, in basis points per bar, with a
block-bootstrap interval (``stats.bootstrap_stat``; blocks of one day of bars, at least the label
horizon) per fold and pooled over the folds.

- ``regime``: each evaluated model (re-scored from its exported ONNX model through the runtime) and
  the ``ma_crossover`` rule traded always vs only in trending regimes
  (``RegimeGate(policy, regimes, TREND_ONLY)``; flat unless the bar's regime is ``trend_up`` or
  ``trend_down``). Regimes are the rule labels of ``strategies.regime_rules`` (default ``RegimeRules``;
  causal: bar t's label uses bars <= t, no model). Reported over all test bars and within the
  trending bars.
- ``timeframes``: the first evaluated model at the data's bar size (the main run's model) and one
  model per coarser timeframe of ``EvalConfig.ablation_timeframes`` (trained per fold with the run's
  ``TrainConfig`` on that timeframe's bars whose labels end, plus the embargo, before the test
  window; the last 64 of them are ``train_and_export``'s own held-out test; kept in
  ``models/ablation_timeframes/fold_k/<timeframe>``), each traded alone and
  together as a ``TimeframeEnsemble`` (mean of the members' last closed-bar probabilities). A single
  timeframe trades as a one-member ensemble, so every arm has the same closed-bar alignment.
  Differences: ensemble minus each single timeframe.
- ``orderbook``: the first evaluated model on candles (the main run's model) vs the same model trained
  per fold on candles + one order-book channel (``evaluation.ablation_books``: snapshots of
  ``EvalConfig.books`` at or before each bar's close, ``render_lob`` merged into one channel). The
  coverage of the books (share of the evaluated bars with at least one book message inside the bar) is
  computed before any training; the run is refused with the coverage stated when it is under
  ``BOOK_COVERAGE_NEEDED``, and recorded otherwise. Besides the per-bar return difference (with the
  run's fees, and fee-free), the classification difference the DeepLOB literature reports: accuracy
  and macro-F1 of each arm beside the majority rate, and the paired differences with block-bootstrap
  intervals. The real books cover minutes, so this runs on sub-second bars built from a capture
  (``imaging.capture_bars``, ``effnet-trading lob bars``); the block is then a tenth of the shortest
  test window when one day of bars is longer.
"""

from __future__ import annotations

import math
import shutil
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pandas as pd

from effnet_trading.errors import DataError, SpecError

__all__ = [
    "ABLATIONS",
    "BOOK_COVERAGE_NEEDED",
    "check_ablations",
    "book_coverage",
    "run_ablations",
    "regime_ablation",
    "timeframe_ablation",
    "ablation_markdown",
]

ABLATIONS = ("timeframes", "regime", "orderbook")
BOOK_COVERAGE_NEEDED = 0.95  # share of the evaluated bars (every fold's training and test span) with a snapshot
_OWN_TEST = 64  # samples train_and_export holds out of each coarser-timeframe model's training bars
_BPS = 1e4


def _timeframes(frame: pd.DataFrame, cfg) -> tuple[str, list[tuple[str, pd.Timedelta]]]:
    """(the data's timeframe as named in the config, [(name, step)] of the coarser ones)."""
    from effnet_trading.imaging import infer_interval, parse_timeframe

    base = infer_interval(frame.index)
    steps = [(str(tf), parse_timeframe(tf)) for tf in cfg.ablation_timeframes]
    names = [tf for tf, s in steps if s == base]
    coarse = [(tf, s) for tf, s in steps if s > base]
    bad = [tf for tf, s in steps if s < base or s % base != pd.Timedelta(0)]
    if not names or bad or not coarse:
        raise SpecError(
            f"the timeframes ablation compares the data's bar size ({base}) with coarser ones; ablation_timeframes "
            f"{list(cfg.ablation_timeframes)} must hold it, at least one multiple of it, and nothing finer or not a "
            "multiple (e.g. --ablation-timeframes 5m,15m,1h on 5-minute data, 1h,4h,1d on hourly data)."
        )
    return names[0], coarse


def _bar_ms(frame: pd.DataFrame) -> int:
    from effnet_trading.imaging import infer_interval

    ms = infer_interval(frame.index) / pd.Timedelta(milliseconds=1)
    if ms < 1 or ms != int(ms):
        raise SpecError(
            f"the orderbook ablation samples the books once per bar, in whole milliseconds; the bars are "
            f"{infer_interval(frame.index)} apart. Build bars of whole milliseconds (e.g. `lob bars --bar 250ms`)."
        )
    return int(ms)


def book_coverage(frame: pd.DataFrame, books_dir) -> dict:
    """Share of the bars of ``frame`` with at least one order-book message inside ``[t, t + bar)``:
    for a capture (``.gz``) the receive times of its book messages (``imaging.book_message_times``:
    the readers' forward-filled grid has a row in every bar of the capture's span, outages included),
    for a CSV of snapshots their timestamps; every book ``imaging.lob.read_books`` reads from
    ``books_dir`` counts."""
    from effnet_trading.imaging import book_message_times, infer_interval
    from effnet_trading.imaging.lob import read_books

    books, skipped = read_books(books_dir, every_ms=_bar_ms(frame))
    root = Path(books_dir)
    stamps = np.sort(
        np.concatenate(
            [
                (
                    book_message_times(root / name if root.is_dir() else root)
                    if name.endswith(".gz")
                    else np.asarray(b.timestamps)
                )
                .astype("datetime64[ns]")
                .astype(np.int64)
                for name, b in books.items()
            ]
        )
    )
    starts = frame.index.as_unit("ns").asi8
    step = infer_interval(frame.index).value
    covered = np.searchsorted(stamps, starts + step, side="left") > np.searchsorted(stamps, starts, side="left")
    return {
        "books": sorted(books),
        "skipped": skipped,
        "book_span": [str(pd.Timestamp(stamps[0], tz="UTC")), str(pd.Timestamp(stamps[-1], tz="UTC"))],
        "bars": int(len(frame)),
        "covered_bars": int(covered.sum()),
        "coverage": float(covered.mean()),
    }


def check_ablations(frame: pd.DataFrame, cfg) -> dict:
    """Refuse, before any training, an ablation the run cannot do; returns what was checked."""
    unknown = sorted(set(cfg.ablations) - set(ABLATIONS))
    if unknown:
        raise SpecError(f"unknown ablation(s) {unknown}; choose from {list(ABLATIONS)}.")
    checked: dict = {}
    if "timeframes" in cfg.ablations:
        if not cfg.models:
            raise SpecError("the timeframes ablation trains the first of --models per timeframe; give at least one.")
        checked["timeframes"] = _timeframes(frame, cfg)[0]
    if "regime" in cfg.ablations and not cfg.models and "ma_crossover" not in cfg.baselines:
        raise SpecError("the regime ablation gates the evaluated models and ma_crossover; the run has neither.")
    if "orderbook" in cfg.ablations:
        if not cfg.books:
            raise SpecError(
                "the orderbook ablation needs order-book snapshots over the evaluated span: pass --books DIR."
            )
        cov = book_coverage(frame, cfg.books)
        if cov["coverage"] < BOOK_COVERAGE_NEEDED:
            raise DataError(
                f"the order books in {cfg.books} cover {cov['covered_bars']} of the {cov['bars']} evaluated bars "
                f"({cov['coverage']:.2%}; book messages {cov['book_span'][0]} .. {cov['book_span'][1]}, bars "
                f"{frame.index[0]} .. {frame.index[-1]}); every fold trains and tests on candles with a book behind "
                f"them, so the orderbook ablation needs >= {BOOK_COVERAGE_NEEDED:.0%}. Pass books over the same span "
                "(or drop --ablation orderbook)."
            )
        if not cfg.models:
            raise SpecError("the orderbook ablation trains the first of --models with a book channel; give one.")
        checked["orderbook"] = cov
    return checked


def _span(frame: pd.DataFrame, rec: dict) -> tuple[int, int]:
    """Positions ``lo, hi`` (inclusive) of a fold's test window in ``frame``."""
    lo, hi = (int(frame.index.get_loc(pd.Timestamp(t))) for t in rec["test_span"])
    return lo, hi


def _block(frame: pd.DataFrame, cfg) -> int:
    from effnet_trading.imaging import infer_interval

    return max(int(cfg.horizon), int(round(pd.Timedelta("1D") / infer_interval(frame.index))))


def _diff(d: np.ndarray, cfg, block: int, seed: int) -> dict | None:
    """Mean of ``d`` in bps with its block-bootstrap interval (None for under 3 bars)."""
    from effnet_trading.evaluation.stats import bootstrap_stat

    d = np.asarray(d, np.float64)
    if len(d) < 3:
        return None
    ci = bootstrap_stat(d, np.mean, n=cfg.bootstrap, block=min(block, len(d)), seed=seed)
    return {k: ci[k] * _BPS for k in ("estimate", "low", "high")} | {"bars": int(len(d)), "block": ci["block"]}


def _sim(span: pd.DataFrame, target, cfg, interval) -> tuple[np.ndarray, dict]:
    from effnet_trading.strategies.execution import simulate
    from effnet_trading.strategies.performance import performance_summary

    sim = simulate(span, np.asarray(target, np.float64), fees=cfg.fees, slippage=cfg.slippage)
    perf = performance_summary(sim, interval=interval)
    pos = sim.position.to_numpy()
    return sim.returns.to_numpy(), {
        "total_return": perf["total_return"],
        "sharpe": perf["sharpe"],
        "orders": int(len(sim.orders)),
        "exposure": float((pos != 0).mean()),
    }


def _compare(arms: dict[str, list[np.ndarray]], pairs, masks, cfg, block: int) -> dict:
    """Per pair (a, b): per-fold and pooled ``a - b`` (bps/bar, CIs), over all bars and each mask."""
    out = {}
    for j, (a, b) in enumerate(pairs):
        d = [x - y for x, y in zip(arms[a], arms[b])]
        entry = {"per_fold": [_diff(x, cfg, block, cfg.seed + 10 * j + k) for k, x in enumerate(d)]}
        entry["pooled"] = _diff(np.concatenate(d), cfg, block, cfg.seed + 10 * j + 9)
        for name, m in masks.items():
            sub = [x[mm] for x, mm in zip(d, m)]
            entry[f"per_fold_{name}"] = [_diff(x, cfg, block, cfg.seed + 10 * j + k) for k, x in enumerate(sub)]
            entry[f"pooled_{name}"] = _diff(np.concatenate(sub), cfg, block, cfg.seed + 10 * j + 8)
        out[f"{a} - {b}"] = entry
    return out


def regime_ablation(frame: pd.DataFrame, cfg, real: list[dict]) -> dict:
    """Ungated vs ``RegimeGate(TREND_ONLY)`` for each evaluated model and ``ma_crossover`` (module docstring)."""
    from effnet_trading.evaluation.baselines import ma_crossover_target
    from effnet_trading.evaluation.evaluate import _score
    from effnet_trading.imaging import infer_interval
    from effnet_trading.strategies.regime_gate import TREND_ONLY, RegimeGate
    from effnet_trading.strategies.regime_rules import REGIMES, TRENDING, RegimeRules, regime_labels

    interval = infer_interval(frame.index)
    codes = regime_labels(frame, RegimeRules()).to_numpy()
    onehot = np.full((len(codes), len(REGIMES)), np.nan)
    onehot[codes >= 0] = np.eye(len(REGIMES))[codes[codes >= 0]]
    gate = RegimeGate(cfg.policy, pd.DataFrame(onehot, index=frame.index, columns=list(REGIMES)), TREND_ONLY)
    trending = np.isin(codes, [REGIMES.index(r) for r in TRENDING])
    signals = [m for m in cfg.models] + (["ma_crossover"] if "ma_crossover" in cfg.baselines else [])
    ma = ma_crossover_target(frame["close"].to_numpy(), cfg.ma_fast, cfg.ma_slow, long_only=cfg.policy.long_only)
    arms: dict[str, list[np.ndarray]] = {}
    folds, masks = [], []
    for rec in real:
        lo, hi = _span(frame, rec)
        span = frame.iloc[lo : hi + 1]
        row = {
            "fold": rec["fold"],
            "test_span": rec["test_span"],
            "trending_share": float(trending[lo : hi + 1].mean()),
        }
        masks.append(trending[lo : hi + 1])
        for s in signals:
            if s == "ma_crossover":
                base = ma[lo : hi + 1]
            else:
                probs = _score(Path(rec["strategies"][s]["model_dir"]), frame, lo, hi)
                base = cfg.policy.replace(class_names=tuple(probs.columns)).positions(probs).to_numpy()
            for arm, target in ((s, base), (f"{s} (trending only)", base * gate.weight_at(span.index))):
                r, row[arm] = _sim(span, target, cfg, interval)
                arms.setdefault(arm, []).append(r)
        folds.append(row)
    pairs = [(f"{s} (trending only)", s) for s in signals]
    labelled = codes[codes >= 0]
    return {
        "what": "each signal traded always vs only in trending regimes (RegimeGate TREND_ONLY, rule labels)",
        "regime_rules": asdict(RegimeRules()),
        "label_shares": {r: float(np.mean(labelled == i)) for i, r in enumerate(REGIMES)},
        "folds": folds,
        "differences_bps_per_bar": _compare(arms, pairs, {"trending": masks}, cfg, _block(frame, cfg)),
    }


def _train_coarse(frame: pd.DataFrame, cfg, model: str, tf: str, step: pd.Timedelta, test_start, root: Path) -> Path:
    """A model on ``tf`` bars whose labels end, plus the embargo, before ``test_start``; its model dir."""
    from effnet_trading.imaging import resample_ohlcv
    from effnet_trading.model_zoo.train import train_and_export

    bars = resample_ohlcv(frame[frame.index < test_start], step)
    emb = cfg.horizon if cfg.embargo is None else int(cfg.embargo)
    keep = (bars.index + step * (1 + cfg.horizon + emb) <= test_start) & bars["closed"].to_numpy()
    bars = bars.loc[keep, ["open", "high", "low", "close", "volume"]]
    tcfg = replace(
        cfg.train,
        model=model,
        folds=1,
        embargo=0,
        test_size=_OWN_TEST,
        valid=0.15,
        progress=False,
        max_train_samples=cfg.max_train_bars,
        model_kwargs=dict(cfg.model_kwargs.get(model, {})),
    )
    res = train_and_export(bars, tcfg, root / tf)
    shutil.rmtree(root / tf / "checkpoints", ignore_errors=True)  # as the main run: checkpoints only cost disk
    return res.model_dir


def timeframe_ablation(frame: pd.DataFrame, cfg, real: list[dict], model_root: Path) -> dict:
    """Single timeframes vs their ``TimeframeEnsemble`` on the run's test windows (module docstring)."""
    from effnet_trading.imaging import infer_interval
    from effnet_trading.strategies.ensemble import TimeframeEnsemble, combine_probabilities
    from effnet_trading.strategies.signal import SignalModel

    base_tf, coarse = _timeframes(frame, cfg)
    model = cfg.models[0]
    interval = infer_interval(frame.index)
    names = [base_tf] + [tf for tf, _ in coarse]
    arms: dict[str, list[np.ndarray]] = {}
    folds = []
    for rec in real:
        lo, hi = _span(frame, rec)
        members = {base_tf: SignalModel(rec["strategies"][model]["model_dir"])}
        for tf, step in coarse:
            members[tf] = SignalModel(
                _train_coarse(frame, cfg, model, tf, step, frame.index[lo], model_root / f"fold_{rec['fold']}")
            )
        row = {"fold": rec["fold"], "test_span": rec["test_span"]}
        ens = TimeframeEnsemble(members, base_timeframe=base_tf)
        # each member's probabilities once (last closed bar of its timeframe), then every arm from them:
        # a single timeframe is exactly a one-member ensemble, the ensemble is predict_proba's combination
        part = ens.member_proba(frame.iloc[max(0, lo - ens.warmup - 2) : hi + 1])
        probs = {tf: p.iloc[-(hi - lo + 1) :] for tf, p in part.items()}
        stacked = np.stack([probs[tf].to_numpy() for tf in ens.timeframes])
        both = combine_probabilities(stacked, ens.weights, ens.method)[0]
        probs["ensemble"] = pd.DataFrame(both, index=probs[base_tf].index, columns=list(ens.class_names))
        policy = cfg.policy.replace(class_names=ens.class_names)
        for arm in [*names, "ensemble"]:
            r, row[arm] = _sim(frame.iloc[lo : hi + 1], policy.positions(probs[arm]).to_numpy(), cfg, interval)
            row[arm]["scored"] = float(probs[arm].notna().all(axis=1).mean())
            arms.setdefault(arm, []).append(r)
        folds.append(row)
    return {
        "what": f"{model} per timeframe {names} traded alone vs their TimeframeEnsemble (mean of probabilities)",
        "model": model,
        "timeframes": names,
        "folds": folds,
        "differences_bps_per_bar": _compare(arms, [("ensemble", tf) for tf in names], {}, cfg, _block(frame, cfg)),
    }


def run_ablations(frame: pd.DataFrame, cfg, real: list[dict], out: Path) -> dict:
    """Every ablation in ``cfg.ablations`` on the main run's folds ``real``; results.json's ``ablations``.

    An ablation that fails (e.g. too few coarser-timeframe bars before the first test window) is recorded
    as ``{"error": ...}`` with a warning; the main run's results are written all the same.
    """
    import warnings

    from effnet_trading.errors import EffnetTradingError
    from effnet_trading.evaluation.ablation_books import orderbook_ablation

    checked = check_ablations(frame, cfg)
    runs = {
        "regime": lambda: regime_ablation(frame, cfg, real),
        # the coarser models stay beside the main run's: models/ablation_timeframes
        "timeframes": lambda: timeframe_ablation(frame, cfg, real, Path(out) / "models" / "ablation_timeframes"),
        "orderbook": lambda: orderbook_ablation(
            frame, cfg, real, Path(out) / "models" / "ablation_orderbook", checked["orderbook"]
        ),
    }
    res: dict = {}
    for name in ("regime", "timeframes", "orderbook"):
        if name not in cfg.ablations:
            continue
        try:
            res[name] = runs[name]()
        except EffnetTradingError as exc:
            msg = f"the {name} ablation failed: {exc}"
            warnings.warn(msg, stacklevel=2)
            res[name] = {"error": msg}
    return res


def _ci(d: dict | None) -> str:
    if d is None:
        return "n/a"
    f = lambda x: "n/a" if not math.isfinite(x) else f"{x:+.2f}"  # noqa: E731
    return f"{f(d['estimate'])} [{f(d['low'])}, {f(d['high'])}]"


def _pct(x) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x:+.1%}"


def _when(span) -> str:
    """A test span as dates, or as times of its one day (sub-second bars from an order-book capture)."""
    a, b = (pd.Timestamp(t) for t in span)
    if a.date() != b.date():
        return f"{a:%Y-%m-%d} → {b:%Y-%m-%d}"
    return f"{a:%Y-%m-%d %H:%M:%S.%f}"[:23] + f" → {b:%H:%M:%S.%f}"[:15]


def ablation_markdown(ablations: dict) -> str:
    """The ablation section of results.md: per-fold arms and the paired differences with intervals."""
    lines = ["## Ablations (same folds, fees and policy as above; paired per fold)", ""]
    for name, a in ablations.items():
        if "error" in a:
            lines += [f"### {name}: not measured", "", a["error"], ""]
            continue
        lines += [f"### {name}: {a['what']}", ""]
        if "coverage" in a:
            c = a["coverage"]
            lines += [
                f"Book coverage: {c['covered_bars']} of {c['bars']} bars ({c['coverage']:.1%}) have a snapshot inside "
                f"the bar; book channel: {a['channel']['window']} snapshots, {a['channel']['levels']} levels per side, "
                f"{a['channel']['bucket_bps']:.3f} bps per row; bootstrap block {a['block']} bars.",
                "",
            ]
        arms = [k for k in a["folds"][0] if isinstance(a["folds"][0][k], dict) and "total_return" in a["folds"][0][k]]
        lines += ["| fold (test span) | " + " | ".join(arms) + " |", "|---|" + "---|" * len(arms)]
        for f in a["folds"]:
            cells = [
                f"{_pct(f[k]['total_return'])} (Sharpe {f[k]['sharpe']:.2f}, exp. {f[k]['exposure']:.0%})" for k in arms
            ]
            lines.append(f"| {f['fold']} ({_when(f['test_span'])}) | " + " | ".join(cells) + " |")
        masks = sorted(
            {k[len("pooled_") :] for d in a["differences_bps_per_bar"].values() for k in d if k.startswith("pooled_")}
        )
        head = ["difference, bps/bar [95 % CI]", "pooled", *[f"pooled, {m} bars" for m in masks]]
        head += [f"fold {f['fold']}" for f in a["folds"]]
        lines += ["", "| " + " | ".join(head) + " |", "|---|" + "---|" * (len(head) - 1)]
        for pair, d in a["differences_bps_per_bar"].items():
            cells = [_ci(d["pooled"]), *[_ci(d[f"pooled_{m}"]) for m in masks], *[_ci(x) for x in d["per_fold"]]]
            lines.append(f"| {pair} | " + " | ".join(cells) + " |")
        lines.append("")
        if "classification" in a:
            lines += _classification_markdown(a["classification"], [f["fold"] for f in a["folds"]])
    return "\n".join(lines)


def _classification_markdown(cls: dict, folds: list) -> list[str]:
    """Accuracy / macro-F1 of both arms beside the majority rate, and the paired differences (percentage points)."""
    pp = lambda d: f"{100 * d['estimate']:+.1f} [{100 * d['low']:+.1f}, {100 * d['high']:+.1f}]"  # noqa: E731
    lines = [
        "| test bars | n | majority rate | accuracy candles | accuracy + book | macro-F1 candles | macro-F1 + book "
        "| accuracy + book - candles, pp [95 % CI] | macro-F1 difference, pp [95 % CI] |",
        "|---|" + "---|" * 8,
    ]
    for name, c in [("pooled", cls["pooled"]), *[(f"fold {k}", c) for k, c in zip(folds, cls["per_fold"])]]:
        a, b = c["candles"], c["candles + book"]
        lines.append(
            f"| {name} | {c['n']} | {c['majority_rate']:.1%} | {a['accuracy']:.1%} | {b['accuracy']:.1%} | "
            f"{a['macro_f1']:.3f} | {b['macro_f1']:.3f} | {pp(c['accuracy_difference'])} | "
            f"{pp(c['macro_f1_difference'])} |"
        )
    return lines + [""]
