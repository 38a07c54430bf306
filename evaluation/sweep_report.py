"""The sweep's table: one row per cell and strategy from each cell's ``evaluate`` outputs, a deflated
Sharpe ratio over every distinct strategy the sweep tried, the spread across seeds, and
``results.parquet``, ``results.md``, ``report.html`` (per-cell links) and ``sweep.json``."""

from __future__ import annotations

import hashlib
import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd

from effnet_trading.errors import require
from effnet_trading.evaluation.eval_report import fold_ruined, ruin_flag
from effnet_trading.evaluation.stats import deflated_sharpe, sharpe_ratio
from effnet_trading.imaging.labels import CLASS_NAMES
from effnet_trading.model_zoo.metrics import _prf

__all__ = ["sweep_table", "write_sweep"]


def _fold_strategies(cell_dir: Path, name: str) -> list[dict]:
    """A strategy's record in each of the cell's fold files, in fold order."""
    files = sorted((cell_dir / "folds").glob("fold_*.json"), key=lambda p: int(p.stem.split("_")[1]))
    return [json.loads(p.read_text())["strategies"].get(name, {}) for p in files]


def _returns(folds: list[dict]) -> np.ndarray:
    """A strategy's out-of-sample per-bar returns over the cell's test windows, in fold order."""
    parts = [f.get("returns", []) for f in folds]
    return np.concatenate([np.asarray(p, np.float64) for p in parts]) if parts else np.zeros(0)


def _rows(cell, cell_dir: Path) -> list[dict]:
    res = json.loads((cell_dir / "results.json").read_text())
    ok = res["verdict"]["ok"]
    rows = []
    for name, v in res["strategies"].items():
        p, s = v["perf"], v["sharpe_ci"]
        folds = _fold_strategies(cell_dir, name)
        ruined = v.get("ruined_folds")  # cells written before the ruin rule: counted from their fold files
        ruined = sum(fold_ruined(f["perf"]) for f in folds if "perf" in f) if ruined is None else ruined
        row = {
            "strategy": name,
            "kind": v["kind"],
            "sharpe": s["estimate"],
            "sharpe_low": s["low"],
            "sharpe_high": s["high"],
            "dsr_cell": v["deflated_sharpe"]["dsr"],
            "turnover_per_year": p.get("turnover_per_year"),
            "total_return": p["total_return"],
            "max_drawdown": p["max_drawdown"],
            "trades": p.get("trades"),
            "bars": p.get("bars"),
            "ruined_folds": int(ruined),
            "folds": len(res["folds"]),
            "null_ok": res["null"].get("ok"),
            "lookahead_ok": all(x["ok"] for x in res["lookahead"].values()) if res["lookahead"] else None,
            "verdict_ok": ok,
            "_returns": _returns(folds),
        }
        c = v.get("classification")
        if c:
            precision, recall, f1 = _prf(np.asarray(c["confusion"]))
            row |= {
                "accuracy": c["accuracy_ci"]["estimate"],
                "accuracy_low": c["accuracy_ci"]["low"],
                "accuracy_high": c["accuracy_ci"]["high"],
                "majority_rate": c["majority_rate"],
                "macro_f1": c["macro_f1_ci"]["estimate"],
                "log_loss": c["log_loss"],
                "ece": c.get("ece", np.nan),  # calibration (cells written before issue #13 have none)
                "collapsed_folds": c["collapsed_folds"],
            }
            for i, cls in enumerate(CLASS_NAMES):
                row |= {f"precision_{cls}": precision[i], f"recall_{cls}": recall[i], f"f1_{cls}": f1[i]}
        rows.append(row)
    return rows


def _sweep_dsr(table: pd.DataFrame) -> int:
    """Deflated Sharpe over all distinct strategies the sweep tried (identical return series, e.g. a
    baseline repeated in cells that differ only in the model, count once); benchmarks are not trials."""
    tried = table[(table["status"] == "ok") & (table["kind"] != "benchmark")]
    uniq = {hashlib.sha1(r.tobytes()).hexdigest(): r for r in tried["_returns"]}
    srs = np.array([sharpe_ratio(r) for r in uniq.values()], float)
    srs = srs[np.isfinite(srs)]
    sr_var = float(srs.var(ddof=1)) if len(srs) > 1 else 0.0
    n = max(1, len(uniq))
    table["dsr_sweep"] = [
        deflated_sharpe(r, n, sr_var)["dsr"] if isinstance(r, np.ndarray) else np.nan for r in table["_returns"]
    ]
    return n


def sweep_table(cells, outcome: dict, cells_dir: Path) -> tuple[pd.DataFrame, int]:
    """One row per cell and strategy (axis values as columns), and the number of trials the DSR counts."""
    rows = []
    for cell in cells:
        o = outcome.get(cell.id, {"status": "failed", "error": "not run"})
        base = {"cell": cell.id, **{k: str(v) for k, v in cell.axes.items()}, "status": o["status"]}
        base |= {"error": o.get("error"), "report": f"cells/{cell.id}/report.html"}
        if o["status"] == "ok":
            res = json.loads((cells_dir / cell.id / "results.json").read_text())
            base["seconds"] = res.get("seconds_total")
            rows += [base | r for r in _rows(cell, cells_dir / cell.id)]
        else:
            rows.append(base | {"seconds": o.get("seconds"), "report": None, "kind": None, "_returns": None})
    table = pd.DataFrame(rows)
    n = _sweep_dsr(table)
    return table, n


def _f(x, spec=".3f") -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    return format(x, spec)


def _ci(r, key: str, spec=".3f") -> str:
    return (
        "–"
        if pd.isna(r.get(key))
        else f"{_f(r[key], spec)} [{_f(r[key + '_low'], spec)}, {_f(r[key + '_high'], spec)}]"
    )


def _opt(r, key: str, spec=".3f") -> str:
    return "–" if key not in r or pd.isna(r[key]) else _f(r[key], spec)


def _seed_spread(table: pd.DataFrame, axes: list[str]) -> str:
    ok = table[table["status"] == "ok"]
    if "seed" not in axes or not len(ok):
        return ""
    keys = [a for a in axes if a != "seed"] + ["strategy"]
    g = ok.groupby(keys, sort=False)
    lines = [
        "| " + " | ".join(keys) + " | seeds | accuracy mean ± sd | Sharpe mean ± sd | Sharpe min … max |",
        "|" + "---|" * (len(keys) + 4),
    ]
    for k, d in g:
        k = k if isinstance(k, tuple) else (k,)
        acc = d["accuracy"] if "accuracy" in d else pd.Series(dtype=float)
        accs = "–" if acc.isna().all() else f"{acc.mean():.3f} ± {acc.std(ddof=1) if len(acc) > 1 else 0:.3f}"
        sh = d["sharpe"].dropna()  # NaN: that seed's model never traded (no return series to rate)
        idle = len(d) - len(sh)
        note = f" ({idle} of {len(d)} never traded)" if idle else ""
        if len(sh):
            mean = f"{_f(sh.mean(), '.2f')} ± {_f(sh.std(ddof=1) if len(sh) > 1 else 0.0, '.2f')}{note}"
            span = f"{_f(sh.min(), '.2f')} … {_f(sh.max(), '.2f')}"
        else:
            mean, span = f"n/a{note}", "–"
        lines.append(f"| {' | '.join(map(str, k))} | {len(d)} | {accs} | {mean} | {span} |")
    return "Spread across seeds:\n\n" + "\n".join(lines)


def _markdown(table: pd.DataFrame, axes: list[str], meta: dict, n_trials: int, link: bool) -> str:
    def cell_ref(r):
        return f"[{r['cell']}]({r['report']})" if link and r.get("report") else r["cell"]

    ok = table[table["status"] == "ok"]
    head = (
        "| cell | strategy | accuracy [95% CI] | majority | macro-F1 | log-loss | ECE | Sharpe [95% CI] | DSR (sweep) | "
        "turnover/yr | total return | checks |"
    )
    lines = [head, "|" + "---|" * 12]
    for _, r in ok.iterrows():
        checks = "ok" if r["verdict_ok"] else "LEAK"
        collapsed = " ⚠collapsed" if r.get("collapsed_folds") and not pd.isna(r.get("collapsed_folds")) else ""
        collapsed += ruin_flag(r.get("ruined_folds"), r.get("folds"))
        lines.append(
            f"| {cell_ref(r)} | {r['strategy']}{collapsed} | {_ci(r, 'accuracy')} | {_opt(r, 'majority_rate')} | "
            f"{_opt(r, 'macro_f1')} | {_opt(r, 'log_loss')} | {_opt(r, 'ece')} | {_ci(r, 'sharpe', '.2f')} | {_f(r['dsr_sweep'], '.2f')} | "
            f"{_f(r['turnover_per_year'], '.0f')} | {_f(r['total_return'], '.1%')} | {checks} |"
        )
    cls = ok[ok["accuracy"].notna()] if "accuracy" in ok else ok.iloc[:0]
    prf = [
        "Per-class precision / recall / F1 (" + " · ".join(CLASS_NAMES) + "):",
        "",
        "| cell | strategy | precision | recall | F1 |",
        "|---|---|---|---|---|",
    ]
    for _, r in cls.iterrows():
        trio = [" · ".join(_f(r[f"{m}_{c}"], ".2f") for c in CLASS_NAMES) for m in ("precision", "recall", "f1")]
        prf.append(f"| {cell_ref(r)} | {r['strategy']} | " + " | ".join(trio) + " |")
    failed = table[table["status"] == "failed"]
    pending = table[table["status"] == "pending"]
    parts = [
        f"{meta['cells']} cells ({meta['ran']} run now, {meta['skipped']} finished before, {meta['failed']} failed"
        + (f", **{meta['pending']} not run yet: a partial table**" if meta.get("pending") else "")
        + f"); runner: {meta['runner']}; wall time of this invocation {meta['wall_seconds']:.0f} s.",
        "Out-of-sample over each cell's test windows (walk-forward folds, or the test part of a holdout --split), after fees and slippage; 'checks' = the cell's "
        "null and look-ahead verdict. DSR (sweep): deflated Sharpe counting "
        f"{n_trials} distinct strategies tried over all cells.",
        "\n".join(lines),
        "\n".join(prf) if len(cls) else "",
        _seed_spread(table, axes),
        ("Failed cells:\n\n" + "\n".join(f"- {r['cell']}: {r['error']}" for _, r in failed.iterrows()))
        if len(failed)
        else "",
        (
            "Cells not run yet (the DSR above counts only the finished ones):\n\n"
            + "\n".join(f"- {c}" for c in pending["cell"])
        )
        if len(pending)
        else "",
    ]
    return "\n\n".join(p for p in parts if p)


def _html_table(md: str) -> str:
    """The markdown tables as HTML, with ``[text](href)`` cells as links."""
    from effnet_trading.evaluation.eval_report import _markdown_to_html

    out = _markdown_to_html(md)
    return re.sub(r"\[([^\]]+)\]\(([^)]+)\)", r'<a href="\2">\1</a>', out)


def write_sweep(cells, outcome: dict, cells_dir: Path, out: Path, meta: dict, config: dict) -> pd.DataFrame:
    """Write results.parquet / results.md / report.html / sweep.json into ``out``; returns the table."""
    from effnet_trading.evaluation.report import html_page

    table, n_trials = sweep_table(cells, outcome, cells_dir)
    axes = list(cells[0].axes) if cells else []
    require("pyarrow", "parquet")
    table.drop(columns=["_returns"]).to_parquet(out / "results.parquet", index=False)
    md = _markdown(table, axes, meta, n_trials, link=True)
    (out / "results.md").write_text(f"# Sweep results\n\n{md}\n")
    (out / "report.html").write_text(
        html_page("effnet-trading sweep", [("Results (cell names link to each cell's report)", _html_table(md))])
    )
    summary = {
        "meta": meta,
        "n_trials": n_trials,
        "config": config,
        "cells": [{"id": c.id, "axes": c.axes, **{k: v for k, v in outcome[c.id].items()}} for c in cells],
    }
    (out / "sweep.json").write_text(json.dumps(summary, indent=1, default=str))
    return table.drop(columns=["_returns"])
