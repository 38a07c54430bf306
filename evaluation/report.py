"""Self-contained HTML reports: figures embedded as base64 PNG, no external files or scripts.

``html_page`` and ``fig_to_data_uri`` are the building blocks (the evaluate command reuses them);
``write_backtest_report`` draws the backtest page: equity vs buy & hold, drawdown, the
probability strip over price, confusion matrix, example images per class, latency histogram.
matplotlib (Agg backend) is imported only when a figure is drawn.
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from effnet_trading.outputs import write_text_atomic  # noqa: F401  (re-exported)

__all__ = ["fig_to_data_uri", "html_page", "summary_table", "write_text_atomic", "write_backtest_report"]

_CSS = (
    "body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px;color:#222}"
    "h1{font-size:1.5em}h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #ddd}"
    "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}"
    "th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}img{max-width:100%}"
)


def _subplots(*args, figsize=None, **kw):
    """A figure outside pyplot: it renders with Agg whatever backend pyplot holds (``cerebro.plot()``
    forces TkAgg, which fails in a headless session), and nothing global is switched."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    return fig, fig.subplots(*args, **kw)


def fig_to_data_uri(fig, dpi: int = 90) -> str:
    """A matplotlib figure -> ``data:image/png;base64,...`` (the figure is closed)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    if getattr(fig.canvas, "manager", None) is not None:  # a pyplot figure handed in: release it
        import matplotlib.pyplot as plt

        plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def html_page(title: str, sections: Sequence[tuple[str, str]]) -> str:
    """A standalone HTML page: ``sections`` are (heading, HTML body) pairs; headings are escaped."""
    body = "\n".join(f"<h2>{html.escape(h)}</h2>\n{b}" for h, b in sections)
    return (
        f"<!doctype html>\n<html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{_CSS}</style></head>\n<body><h1>{html.escape(title)}</h1>\n{body}\n</body></html>\n"
    )


def _fmt(v) -> str:
    if isinstance(v, (bool, np.bool_)):
        return str(v)
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        return "nan" if v != v else f"{v:.4g}"
    return html.escape(str(v))


def summary_table(columns: Mapping[str, Mapping[str, object]]) -> str:
    """``{"strategy": {...}, "buy & hold": {...}}`` -> an HTML table with one row per statistic."""
    names = list(columns)
    keys = list(dict.fromkeys(k for c in columns.values() for k in c))
    head = "<tr><th>statistic</th>" + "".join(f"<th>{html.escape(n)}</th>" for n in names) + "</tr>"
    rows = "".join(
        "<tr><td>"
        + html.escape(k)
        + "</td>"
        + "".join(f"<td>{_fmt(columns[n].get(k, ''))}</td>" for n in names)
        + "</tr>"
        for k in keys
    )
    return f"<table>{head}{rows}</table>"


def _img(uri: str) -> str:
    return f'<img src="{uri}">'


def _equity_figure(equity: pd.Series, benchmark: pd.Series | None) -> str:
    from effnet_trading.strategies.performance import drawdown

    fig, (ax1, ax2) = _subplots(2, 1, figsize=(11, 5.5), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ax1.plot(equity.index, equity.to_numpy(), label="strategy", lw=1.1)
    if benchmark is not None:
        ax1.plot(benchmark.index, benchmark.to_numpy(), label="buy & hold", lw=1.0, alpha=0.8)
    ax1.set_ylabel("equity")
    ax1.legend(loc="upper left")
    ax2.fill_between(equity.index, drawdown(equity).to_numpy() * 100, 0, color="tab:red", alpha=0.4, label="strategy")
    if benchmark is not None:
        ax2.plot(benchmark.index, drawdown(benchmark).to_numpy() * 100, color="tab:orange", lw=0.8, label="buy & hold")
    ax2.set_ylabel("drawdown %")
    return fig_to_data_uri(fig)


def _strip_figure(probs: pd.DataFrame, ohlcv: pd.DataFrame, trades: pd.DataFrame | None, max_bars: int = 3000) -> str:
    """Close price over the last ``max_bars`` bars with the buy/sell probabilities beneath and trade entries marked."""
    tail = ohlcv.index[-max_bars:]
    fig, (ax1, ax2) = _subplots(2, 1, figsize=(11, 5), sharex=True, gridspec_kw={"height_ratios": [2, 1]})
    ax1.plot(tail, ohlcv["close"].reindex(tail).to_numpy(), color="k", lw=0.8)
    if trades is not None and len(trades):
        t = trades[trades["entry_time"] >= tail[0]]
        for direction, marker, color in (("long", "^", "tab:green"), ("short", "v", "tab:red")):
            sel = t[t["direction"] == direction]
            ax1.scatter(
                sel["entry_time"], sel["entry_price"], marker=marker, color=color, s=18, label=f"{direction} entry"
            )
        ax1.legend(loc="upper left", fontsize=8)
    ax1.set_ylabel("close")
    p = probs.reindex(tail)
    colors = {"sell": "tab:red", "hold": "tab:gray", "buy": "tab:green"}
    for col in [c for c in p.columns if c != "agreement"]:
        ax2.plot(tail, p[col].to_numpy(), lw=0.7, label=col, color=colors.get(col))
    ax2.set_ylim(0, 1)
    ax2.set_ylabel("probability")
    ax2.legend(loc="upper left", fontsize=8, ncol=3)
    return fig_to_data_uri(fig)


def _confusion_figure(confusion, class_names: Sequence[str]) -> str:
    m = np.asarray(confusion, dtype=np.float64)
    fig, ax = _subplots(figsize=(4, 3.5))
    ax.imshow(m, cmap="Blues")
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            ax.text(j, i, f"{int(m[i, j])}", ha="center", va="center", fontsize=9)
    ax.set_xticks(range(len(class_names)), class_names)
    ax.set_yticks(range(len(class_names)), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    return fig_to_data_uri(fig)


def _examples_figure(example_images: Mapping[str, np.ndarray]) -> str:
    """``{class: (n, C, H, W) in [0, 1]}`` -> a grid, one row per class (first channel shown)."""
    rows = list(example_images)
    cols = max(1, max(len(v) for v in example_images.values()))
    fig, axes = _subplots(len(rows), cols, figsize=(1.4 * cols, 1.5 * len(rows)), squeeze=False)
    for i, name in enumerate(rows):
        for j in range(cols):
            ax = axes[i, j]
            ax.axis("off")
            if j < len(example_images[name]):
                ax.imshow(np.asarray(example_images[name][j])[0], cmap="viridis", vmin=0, vmax=1)
        axes[i, 0].set_title(name, fontsize=9, loc="left")
    return fig_to_data_uri(fig)


def _latency_figure(latency_ms) -> str:
    lat = np.asarray(latency_ms, dtype=np.float64)
    fig, ax = _subplots(figsize=(6, 3))
    ax.hist(lat, bins=40, color="tab:blue")
    for q in (50, 95, 99):
        ax.axvline(np.percentile(lat, q), color="k", lw=0.7, ls="--")
    ax.set_xlabel("ms per call")
    ax.set_title(" ".join(f"p{q}={np.percentile(lat, q):.2f}ms" for q in (50, 95, 99)), fontsize=9)
    return fig_to_data_uri(fig)


def _split_summary(summary: Mapping) -> tuple[dict, dict, dict]:
    """-> (strategy stats, buy & hold stats, everything else) from a backtest summary dict."""
    strat = dict(summary.get("strategy", {}))
    bench = dict(summary.get("buy_and_hold", {}))
    rest = {k: v for k, v in summary.items() if k not in ("strategy", "buy_and_hold")}
    return strat, bench, rest


def write_backtest_report(
    out_dir: str | os.PathLike,
    *,
    summary: Mapping,
    equity: pd.Series,
    benchmark: pd.Series | None,
    probs: pd.DataFrame,
    ohlcv: pd.DataFrame,
    trades: pd.DataFrame | None,
    confusion=None,
    example_images: Mapping[str, np.ndarray] | None = None,
    latency_ms=None,
    title: str = "effnet-trading backtest",
    intro: Sequence[str] | None = None,
) -> Path:
    """Write ``out_dir/report.html`` (atomic) and return its path. ``summary`` holds ``strategy`` and
    ``buy_and_hold`` statistic dicts (shown side by side) plus any other keys (shown as config).
    intro: lines shown first (which data, what the figures mean)."""
    strat, bench, rest = _split_summary(summary)
    sections = [("About this run", "".join(f"<p>{html.escape(line)}</p>" for line in intro))] if intro else []
    sections += [
        ("Summary", summary_table({"strategy": strat, "buy & hold": bench}) if strat else "<p>no statistics</p>")
    ]
    sections.append(("Equity and drawdown", _img(_equity_figure(equity, benchmark))))
    sections.append(("Probabilities over price", _img(_strip_figure(probs, ohlcv, trades))))
    if trades is not None and len(trades):
        shown = trades.tail(50)
        sections.append(
            (
                f"Trades (last {len(shown)} of {len(trades)})",
                shown.to_html(index=False, float_format=lambda x: f"{x:.6g}"),
            )
        )
    if confusion is not None:
        names = [c for c in probs.columns if c != "agreement"]
        sections.append(("Confusion matrix", _img(_confusion_figure(confusion, names))))
    if example_images:
        sections.append(("Example images per predicted class", _img(_examples_figure(example_images))))
    if latency_ms is not None and len(latency_ms):
        sections.append(("Inference latency", _img(_latency_figure(latency_ms))))
    if rest:
        sections.append(("Configuration", f"<pre>{html.escape(json.dumps(rest, indent=1, default=str))}</pre>"))
    return write_text_atomic(Path(out_dir) / "report.html", html_page(title, sections))
