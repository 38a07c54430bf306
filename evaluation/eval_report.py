"""Aggregation and reporting for ``evaluate``: out-of-sample figures over all test windows with
bootstrap intervals, deflated Sharpe ratios, the null verdict, and results.json / .md / report.html."""

from __future__ import annotations

import html
import json
import math
from pathlib import Path

import numpy as np

from effnet_trading.evaluation.stats import deflated_sharpe, sharpe_ci, sharpe_ratio
from effnet_trading.strategies.performance import bars_per_year, performance_summary

__all__ = ["summarise", "write_outputs", "markdown_table", "learning_curves_markdown"]

LITERATURE = (
    "Published claims for chart-image CNNs / EfficientNet B0-B5: 54-57 % direction accuracy and "
    "Sharpe 1.4-1.7 vs 0.73 for buy & hold. Hypotheses to test, not numbers to reproduce."
)


_CLASSES = ("sell", "hold", "buy")


def _concat(entries: list[dict], key: str) -> np.ndarray:
    return np.concatenate([np.asarray(e[key], np.float64) for e in entries]) if entries else np.zeros(0)


def _calendar_of(entries: list[dict], interval) -> float:
    """The folds' observed periods per year (median), so pooled figures use the data's calendar too."""
    seen = [e["perf"]["periods_per_year"] for e in entries if e.get("perf", {}).get("periods_per_year")]
    return float(np.median(seen)) if seen else bars_per_year(interval)


def fold_ruined(perf: dict) -> bool:
    """Whether a fold's equity reached 0 (results written before the ruin rule: a drawdown of -100 % or worse)."""
    return bool(perf.get("ruined", perf["max_drawdown"] <= -1.0))


def _aggregate(records: list[dict], cfg, interval, level: float) -> dict:
    from effnet_trading.model_zoo.calibration import ece_from_bins, reliability_bins
    from effnet_trading.model_zoo.metrics import bootstrap_ci

    names = list(dict.fromkeys(n for r in records for n in r["strategies"]))
    out = {}
    for name in names:
        entries = [r["strategies"][name] for r in records if name in r["strategies"]]
        rets, pos = _concat(entries, "returns"), _concat(entries, "position")
        bpy = _calendar_of(entries, interval)
        perf = performance_summary(rets, kind="returns", periods_per_year=bpy, position=pos)
        perf["trades"] = int(sum(e["perf"].get("trades", 0) for e in entries))
        row = {
            "kind": entries[0]["kind"],
            "perf": perf,
            "ruined_folds": int(sum(fold_ruined(e["perf"]) for e in entries)),
            "sharpe_per_bar": sharpe_ratio(rets),
            "sharpe_ci": sharpe_ci(rets, bpy, n=cfg.bootstrap, block=max(24, cfg.horizon), seed=cfg.seed, level=level),
            "per_fold": [
                {
                    "fold": r["fold"],
                    "sharpe": r["strategies"][name]["perf"]["sharpe"],
                    "total_return": r["strategies"][name]["perf"]["total_return"],
                    **(
                        {
                            "accuracy": r["strategies"][name]["classification"]["accuracy"],
                            "majority_rate": r["strategies"][name]["classification"]["majority_rate"],
                        }
                        if "classification" in r["strategies"][name]
                        else {}
                    ),
                }
                for r in records
                if name in r["strategies"]
            ],
            "_returns": rets,
        }
        for key in ("features", "runtime_vs_torch_max_abs"):
            if key in entries[0]:
                row[key] = max(e[key] for e in entries) if key.startswith("runtime") else entries[0][key]
        if "classification" in entries[0]:
            cls = [e["classification"] for e in entries]
            y = np.concatenate([c["y"] for c in cls]).astype(int)
            pred = np.concatenate([c["pred"] for c in cls]).astype(int)
            n = np.array([c["n"] for c in cls], float)
            counts = np.bincount(y, minlength=3)
            row["classification"] = {
                "n": int(len(y)),
                "majority_rate": float(counts.max() / len(y)),
                "accuracy_ci": bootstrap_ci(
                    y, pred, "accuracy", n=cfg.bootstrap, block=cfg.horizon, seed=cfg.seed, level=level
                ),
                "macro_f1_ci": bootstrap_ci(
                    y, pred, "macro_f1", n=cfg.bootstrap, block=cfg.horizon, seed=cfg.seed, level=level
                ),
                "log_loss": float(np.sum(n * [c["log_loss"] for c in cls]) / n.sum()),
                "confusion": np.sum([c["confusion"] for c in cls], axis=0).tolist(),
                "pred_shares": (np.bincount(pred, minlength=3) / len(pred)).tolist(),
                "collapsed_folds": int(sum(c["collapsed"] for c in cls)),
            }
            if all("conf" in c for c in cls):  # pooled calibration over every test window
                conf = np.concatenate([c["conf"] for c in cls])
                bins = reliability_bins(conf, pred == y)
                row["classification"] |= {
                    "ece": ece_from_bins(bins),
                    "reliability": bins,
                    "true_shares": (counts / len(y)).tolist(),
                }
        out[name] = row
    return out


def _deflate(agg: dict, extra_trials: int) -> int:
    """Add the deflated Sharpe ratio to every strategy; returns the number of trials counted."""
    tried = [k for k, v in agg.items() if v["kind"] != "benchmark"]
    srs = np.array([agg[k]["sharpe_per_bar"] for k in tried], float)
    srs = srs[np.isfinite(srs)]
    n_trials = len(tried) + int(extra_trials)
    sr_var = float(srs.var(ddof=1)) if len(srs) > 1 else 0.0
    for v in agg.values():
        v["deflated_sharpe"] = deflated_sharpe(v["_returns"], n_trials, sr_var)
    return n_trials


def _null_verdict(agg: dict, level: float) -> tuple[bool, list[str]]:
    leaks = []
    for name, v in agg.items():
        c = v.get("classification")
        if c and c["accuracy_ci"]["low"] > c["majority_rate"]:
            leaks.append(
                f"{name}: null accuracy {c['accuracy_ci']['estimate']:.3f} (CI low {c['accuracy_ci']['low']:.3f}) "
                f"above the majority rate {c['majority_rate']:.3f}"
            )
        if v["sharpe_ci"]["low"] > 0:
            leaks.append(
                f"{name}: null Sharpe {v['sharpe_ci']['estimate']:.2f} with CI low {v['sharpe_ci']['low']:.2f} > 0"
            )
    return not leaks, leaks


def run_mode(cfg) -> str:
    """How the run split its data, in words: "holdout 70/15/15 ..." or "walk-forward, N folds"."""
    if cfg.split is not None:
        shares = "/".join(f"{100 * x:g}" for x in cfg.split)
        return f"holdout {shares} (one chronological train/validation/test split; not walk-forward)"
    return f"walk-forward, {cfg.folds} folds"


def summarise(real: list[dict], null: list[dict] | None, looks: dict, cfg, interval) -> dict:
    """results.json content: aggregated strategies, per-fold table, null and look-ahead verdicts."""
    agg = _aggregate(real, cfg, interval, 0.95)
    n_trials = _deflate(agg, cfg.extra_trials)
    res = {
        "config": cfg.to_dict(),
        "interval": str(interval),
        "bars_per_year": bars_per_year(interval),
        "strategies": agg,
        "n_trials": n_trials,
        "mode": run_mode(cfg),
        "folds": [
            {k: r[k] for k in ("fold", "test_span", "train_span", "valid_span", "n_test", "seconds") if k in r}
            for r in real
        ],
        "literature": LITERATURE,
    }
    reasons = []
    if null is not None:
        checks = 2 * max(1, len({n for r in null for n in r["strategies"]}))
        level = 1 - 0.05 / checks  # Bonferroni over the null checks: a clean pipeline fails with ~5 % chance in all
        nagg = _aggregate(null, cfg, interval, level)
        ok, leaks = _null_verdict(nagg, level)
        res["null"] = {
            "ran": True,
            "kind": cfg.null_kind,
            "block": cfg.null_block,
            "level": level,
            "ok": ok,
            "leaks": leaks,
            "strategies": nagg,
        }
        reasons += leaks
    else:
        res["null"] = {
            "ran": False,
            "ok": None,
            "note": "null check skipped (--no-null): leakage was NOT checked on a surrogate",
        }
    res["lookahead"] = looks
    for name, lk in looks.items():
        if not lk["ok"]:
            reasons.append(
                f"{name}: look-ahead check failed: probabilities at t changed when bars after t were "
                f"perturbed (bars {lk['changed'][:5]}, max change {lk['max_abs_change']:.3g})"
            )
    res["verdict"] = {"ok": not reasons, "reasons": reasons}
    return res


def _fmt(x, spec=".3f") -> str:
    return "n/a" if x is None or (isinstance(x, float) and not math.isfinite(x)) else format(x, spec)


def ruin_flag(ruined_folds, folds: int) -> str:
    """The table's mark for a strategy whose equity reached 0 in some folds (its Sharpe is then that of a
    series holding one -100 % bar: read the total return and drawdown)."""
    return (
        f" ⚠ruined in {int(ruined_folds)} of {int(folds)} folds"
        if ruined_folds and ruined_folds == ruined_folds
        else ""
    )


def markdown_table(res: dict) -> str:
    """Main results table plus the per-fold Sharpe table, as markdown."""
    head = (
        "| strategy | accuracy [95% CI] | majority | macro-F1 [95% CI] | log-loss | ECE | Sharpe [95% CI] | Sortino | "
        "max DD | turnover/yr | total return | DSR |"
    )
    rows = [head, "|" + "---|" * 12]
    for name, v in res["strategies"].items():
        p, c, s = v["perf"], v.get("classification"), v["sharpe_ci"]
        acc = (
            f"{_fmt(c['accuracy_ci']['estimate'])} [{_fmt(c['accuracy_ci']['low'])}, {_fmt(c['accuracy_ci']['high'])}]"
            if c
            else "–"
        )
        f1 = (
            f"{_fmt(c['macro_f1_ci']['estimate'])} [{_fmt(c['macro_f1_ci']['low'])}, {_fmt(c['macro_f1_ci']['high'])}]"
            if c
            else "–"
        )
        flag = (" ⚠collapsed" if c and c["collapsed_folds"] else "") + ruin_flag(
            v.get("ruined_folds"), len(res["folds"])
        )
        rows.append(
            f"| {name}{flag} | {acc} | {_fmt(c['majority_rate']) if c else '–'} | {f1} | {_fmt(c['log_loss']) if c else '–'} | "
            f"{_fmt(c['ece']) if c and 'ece' in c else '–'} | "
            f"{_fmt(s['estimate'], '.2f')} [{_fmt(s['low'], '.2f')}, {_fmt(s['high'], '.2f')}] | {_fmt(p['sortino'], '.2f')} | "
            f"{_fmt(p['max_drawdown'], '.1%')} | {_fmt(p.get('turnover_per_year'), '.0f')} | {_fmt(p['total_return'], '.1%')} | "
            f"{_fmt(v['deflated_sharpe']['dsr'], '.2f')} |"
        )
    folds = [f["fold"] for f in res["folds"]]
    rows += [
        "",
        "Per-fold Sharpe (accuracy / majority where a classifier):",
        "",
        "| strategy | "
        + " | ".join(
            f"{'holdout test' if 'valid_span' in res['folds'][i] else f'fold {k}'} ({res['folds'][i]['test_span'][0][:10]}…)"
            for i, k in enumerate(folds)
        )
        + " |",
        "|---|" + "---|" * len(folds),
    ]
    for name, v in res["strategies"].items():
        cells = [
            f"{_fmt(f['sharpe'], '.2f')}"
            + (f" ({_fmt(f['accuracy'])}/{_fmt(f['majority_rate'])})" if "accuracy" in f else "")
            for f in v["per_fold"]
        ]
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    null = res["null"]
    rows += [
        "",
        f"Deflated Sharpe: {res['n_trials']} strategy variants counted as trials (Bailey & López de Prado 2014).",
        "Null check: "
        + (
            "skipped (--no-null)"
            if not null["ran"]
            else f"{'PASS' if null['ok'] else 'FAIL'} on a zero-drift {null['kind']} surrogate (block {null['block']}, "
            f"CI level {null['level']:.4f})" + "".join(f"\n  - {x}" for x in null["leaks"])
        ),
        "Look-ahead check: "
        + ", ".join(f"{k} {'PASS' if v['ok'] else 'FAIL'} ({v['n']} bars)" for k, v in res["lookahead"].items()),
    ]
    return "\n".join(rows)


def _arrow(values, spec=".3f") -> str:
    return " → ".join(_fmt(v, spec) for v in values)


def learning_curves_markdown(real: list[dict]) -> str:
    """Per model and fold: train/validation loss and accuracy per epoch beside the test accuracy and
    majority rate, and the diagnosis line where the probabilities stayed near-uniform."""
    rows = [
        "Learning curves (per epoch; validation = "
        + (
            "the holdout's validation part"
            if any("valid_span" in r for r in real)
            else "last 15 % of each training span"
        )
        + "; * = epoch kept by early stopping):",
        "",
        "| model | fold | train loss | valid loss | train acc | valid acc | test acc / majority | diagnosis |",
        "|---|---|---|---|---|---|---|---|",
    ]
    notes = []
    for r in real:
        for name, e in r["strategies"].items():
            if e.get("kind") != "model" or "curve" not in e:
                continue
            c, best = e["curve"], e.get("best_epoch")
            val = [f"{_fmt(x['val_loss'])}{'*' if x['epoch'] == best else ''}" for x in c]
            cls, d = e["classification"], e["diagnosis"]
            rows.append(
                f"| {name} | {r['fold']} | {_arrow(x['loss'] for x in c)} | {' → '.join(val)} | "
                f"{_arrow(x['acc'] for x in c)} | {_arrow(x['val_acc'] for x in c)} | "
                f"{_fmt(cls['accuracy'])} / {_fmt(cls['majority_rate'])} | {d['state']} |"
            )
            if d.get("near_uniform"):
                notes.append(f"- {name}, fold {r['fold']}: {d['line']}.")
    if len(rows) == 4:
        return ""
    return "\n".join(rows + ([""] + notes if notes else []))


def _curve_figure(real: list[dict]) -> list[tuple[str, str]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from effnet_trading.evaluation.report import fig_to_data_uri

    models = list(
        dict.fromkeys(n for r in real for n, e in r["strategies"].items() if e.get("kind") == "model" and "curve" in e)
    )
    if not models:
        return []
    fig, axes = plt.subplots(2, len(models), figsize=(3.2 * len(models), 5), squeeze=False)
    for j, name in enumerate(models):
        for r in real:
            e = r["strategies"].get(name)
            if not e or "curve" not in e:
                continue
            ep = [x["epoch"] for x in e["curve"]]
            for i, (tr, va) in enumerate((("loss", "val_loss"), ("acc", "val_acc"))):
                (line,) = axes[i][j].plot(ep, [x[tr] for x in e["curve"]], lw=1, label=f"fold {r['fold']} train")
                axes[i][j].plot(
                    ep,
                    [np.nan if x[va] is None else x[va] for x in e["curve"]],
                    lw=1,
                    ls="--",
                    color=line.get_color(),
                    label=f"fold {r['fold']} valid",
                )
            axes[1][j].axhline(e["classification"]["majority_rate"], color=line.get_color(), lw=0.6, ls=":")
        axes[0][j].set(title=name, ylabel="loss")
        axes[1][j].set(xlabel="epoch", ylabel="accuracy (dotted: test majority rate)")
        axes[0][j].legend(fontsize=6)
    fig.tight_layout()
    return [("Learning curves (solid train, dashed validation)", fig_to_data_uri(fig))]


def _calibration_reports(res: dict) -> dict[str, dict]:
    """Pooled classification entries with class shares keyed by name (the calibration figure's input)."""
    out = {}
    for name, v in res["strategies"].items():
        c = v.get("classification", {})
        if "reliability" in c:
            shares = {k: dict(zip(_CLASSES, c[k])) for k in ("true_shares", "pred_shares")}
            out[name] = c | shares
    return out


def _figures(res: dict, real: list[dict]) -> list[tuple[str, str]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from effnet_trading.evaluation.calibration_plot import calibration_data_uri
    from effnet_trading.evaluation.report import fig_to_data_uri

    figs = []
    fig, ax = plt.subplots(figsize=(10, 4.5))
    for name, v in res["strategies"].items():
        ax.plot(
            np.cumprod(1 + v["_returns"]),
            label=name,
            lw=2.2 if name == "buy_and_hold" else 1.1,
            color="black" if name == "buy_and_hold" else None,
        )
    ax.set(
        title="Out-of-sample equity over all test windows (fees + slippage)",
        xlabel="test bar",
        ylabel="equity (x initial)",
    )
    ax.legend(fontsize=7, ncol=3)
    figs.append(("Equity curves", fig_to_data_uri(fig)))
    fig, ax = plt.subplots(figsize=(10, 3.5))
    names, k = list(res["strategies"]), len(res["folds"])
    for i, f in enumerate(range(k)):
        vals = [
            res["strategies"][n]["per_fold"][f]["sharpe"] if f < len(res["strategies"][n]["per_fold"]) else np.nan
            for n in names
        ]
        ax.bar(np.arange(len(names)) + i / (k + 1), np.nan_to_num(vals), width=1 / (k + 1), label=f"fold {f}")
    ax.set_xticks(np.arange(len(names)) + 0.5 - 1 / (k + 1), names, rotation=30, fontsize=7)
    ax.set(title="Sharpe per fold", ylabel="Sharpe")
    ax.axhline(0, color="grey", lw=0.8)
    ax.legend(fontsize=7)
    fig.tight_layout()
    figs.append(("Per-fold Sharpe", fig_to_data_uri(fig)))
    cls = [(n, v["classification"]["confusion"]) for n, v in res["strategies"].items() if "classification" in v]
    if cls:
        fig, axes = plt.subplots(1, len(cls), figsize=(2.6 * len(cls), 2.8), squeeze=False)
        for ax, (name, cm) in zip(axes[0], cls):
            ax.imshow(np.asarray(cm), cmap="Blues")
            for (i, j), c in np.ndenumerate(np.asarray(cm)):
                ax.text(j, i, str(c), ha="center", va="center", fontsize=7)
            ax.set(
                title=name,
                xticks=range(3),
                yticks=range(3),
                xticklabels=["sell", "hold", "buy"],
                yticklabels=["sell", "hold", "buy"],
            )
            ax.title.set_fontsize(8)
        fig.tight_layout()
        figs.append(("Confusion matrices (rows true, columns predicted)", fig_to_data_uri(fig)))
    cal = _calibration_reports(res)
    if cal:
        figs.append(
            (
                "Calibration: reliability diagrams (pooled test windows) and predicted vs true class shares",
                calibration_data_uri(cal),
            )
        )
    return figs


def _markdown_to_html(md: str) -> str:
    out, table = [], []
    for line in md.splitlines() + [""]:
        if line.startswith("|"):
            if not set(line) <= set("|-"):
                table.append([html.escape(c.strip()) for c in line.strip("|").split("|")])
            continue
        if table:
            head, *body = table
            out.append(
                "<table><tr>"
                + "".join(f"<th>{c}</th>" for c in head)
                + "</tr>"
                + "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in body)
                + "</table>"
            )
            table = []
        if line.strip():
            out.append(f"<p>{html.escape(line)}</p>")
    return "\n".join(out)


def _strip(obj):
    if isinstance(obj, dict):
        return {k: _strip(v) for k, v in obj.items() if not k.startswith("_")}
    if isinstance(obj, list):
        return [_strip(v) for v in obj]
    return obj


def write_outputs(res: dict, real: list[dict], out: Path) -> None:
    """results.json, results.md and report.html in ``out``."""
    from effnet_trading.evaluation.calibration_plot import calibration_lines
    from effnet_trading.evaluation.report import html_page

    md = markdown_table(res)
    cal = calibration_lines(_calibration_reports(res))
    if cal:
        md += "\n\nCalibration (pooled test windows; ECE over 15 equal-width confidence bins):\n\n" + "\n".join(
            f"- {line}" for line in cal
        )
    curves = learning_curves_markdown(real)
    if curves:
        md += "\n\n" + curves
    abl = ""
    if res.get("ablations"):
        from effnet_trading.evaluation.ablation import ablation_markdown

        abl = ablation_markdown(res["ablations"])
    verdict = "OK" if res["verdict"]["ok"] else "PIPELINE LEAKS: " + "; ".join(res["verdict"]["reasons"])
    mode = f"Mode: {res['mode']}\n\n" if "mode" in res else ""
    (out / "results.md").write_text(
        f"# Evaluation results\n\n{mode}Verdict: {verdict}\n\n{md}\n\n{res['literature']}\n"
        + (f"\n{abl}" if abl else "")
    )
    (out / "results.json").write_text(json.dumps(_strip(res), indent=1, default=str))
    sections = [
        (
            "Verdict",
            f"<p><b>{html.escape(verdict)}</b></p><p>{html.escape(mode)}</p><p>{html.escape(res['literature'])}</p>",
        ),
        ("Results", _markdown_to_html(md)),
    ] + ([("Ablations", _markdown_to_html(abl.replace("#", "")))] if abl else [])
    sections += [
        (title, f'<img src="{uri}" style="max-width:100%">') for title, uri in _figures(res, real) + _curve_figure(real)
    ]
    (out / "report.html").write_text(html_page("effnet-trading evaluate", sections))
