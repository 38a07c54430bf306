"""Pictures of what a model looked at, per decision bar: the model's input, the heat map over it, and an
mplfinance chart of the window with the heat mapped onto the bars (``model_zoo.explain`` makes the maps)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from effnet_trading.errors import SpecError, require

__all__ = [
    "pick_bars",
    "choose_bars",
    "write_explanations",
    "gallery_html",
    "add_report_gallery",
    "add_evaluate_gallery",
]


def pick_bars(probs: np.ndarray, class_names, top: int) -> list[tuple[int, str]]:
    """``[(row, 'buy'|'sell'), ...]``: the ``top`` rows most confident in buy and in sell (predicted class)."""
    out = []
    for cls in ("buy", "sell"):
        if cls not in class_names:
            continue
        k = list(class_names).index(cls)
        rows = np.flatnonzero(probs.argmax(1) == k)
        out += [(int(r), cls) for r in rows[np.argsort(-probs[rows, k])][:top]]
    return out


def choose_bars(frame: pd.DataFrame, model_dir, *, at=None, top: int | None = None) -> tuple[list[int], list[str]]:
    """Bar positions to explain and why: the bars at the ``at`` timestamps, or the ``top`` most confident
    buy and sell decisions of the model over the whole frame."""
    from effnet_trading.imaging import render, valid_ends
    from effnet_trading.model_zoo.card import load_card
    from effnet_trading.model_zoo.runtime import Predictor

    if at:
        ends = []
        for ts in at:
            t = pd.Timestamp(ts)
            t = t.tz_localize("UTC") if t.tzinfo is None and frame.index.tz is not None else t
            if t not in frame.index:
                raise SpecError(f"--at {ts}: no bar at that time; the data runs {frame.index[0]} .. {frame.index[-1]}.")
            ends.append(int(frame.index.get_loc(t)))
        return ends, ["--at"] * len(ends)
    if not top or top < 1:
        raise SpecError("say which bars to explain: --at TIMESTAMP (repeatable) or --top N (N >= 1).")
    card = load_card(model_dir)
    ends = valid_ends(card.spec, frame)
    probs = Predictor(model_dir, "cpu").predict(render(card.spec, frame, ends))
    picked = pick_bars(probs, card.class_names, top)
    if not picked:
        raise SpecError("the model predicts neither buy nor sell on any bar of --data; nothing to show with --top.")
    return [int(ends[r]) for r, _ in picked], [f"top {cls}" for _, cls in picked]


def _save_input_and_heat(image: np.ndarray, heat: np.ndarray, stem: Path) -> tuple[str, str]:
    from effnet_trading.evaluation.report import _subplots

    shown = image.transpose(1, 2, 0) if image.shape[0] == 3 else image.mean(0)
    names = []
    for suffix, overlay in (("input", False), ("heat", True)):
        fig, ax = _subplots(figsize=(3, 3))
        ax.imshow(shown, cmap=None if shown.ndim == 3 else "gray", vmin=0, vmax=1, interpolation="nearest")
        if overlay:
            ax.imshow(heat, cmap="jet", alpha=0.5, vmin=0, vmax=1, interpolation="bilinear")
        ax.set_axis_off()
        path = stem.with_name(f"{stem.name}_{suffix}.png")
        fig.savefig(path, dpi=80, bbox_inches="tight")
        names.append(path.name)
    return names[0], names[1]


def _save_chart(frame: pd.DataFrame, end: int, weights: np.ndarray, path: Path) -> None:
    """Candles of the window with the per-bar weight as a coloured panel below (mplfinance)."""
    mpf = require("mplfinance", "plot")
    require("matplotlib", "plot").use("Agg")
    window = len(weights)
    bars = frame.iloc[end + 1 - window : end + 1].rename(columns=str.capitalize)
    bars.index = bars.index.tz_localize(None) if bars.index.tz is not None else bars.index
    from matplotlib import colormaps

    colors = [colormaps["jet"](float(w)) for w in weights]
    panel = mpf.make_addplot(weights, type="bar", panel=1, color=colors, ylabel="heat", ylim=(0, 1.05))
    mpf.plot(
        bars, type="candle", style="charles", addplot=[panel], figsize=(7, 4.5), savefig=dict(fname=str(path), dpi=80)
    )


def write_explanations(
    out_dir: str | os.PathLike,
    frame: pd.DataFrame,
    model_dir: str | os.PathLike,
    ends: list[int],
    *,
    method: str = "auto",
    how: str = "mean",
    labels: list[str] | None = None,
) -> dict:
    """Explain the model's decision at each bar position in ``ends``; write per bar ``<time>_input.png``,
    ``<time>_heat.png``, ``<time>_chart.png`` and one ``explain.json`` (method, source, per-bar weights)."""
    from effnet_trading.imaging import render, valid_ends
    from effnet_trading.model_zoo.card import load_card
    from effnet_trading.model_zoo.explain import explain

    card = load_card(model_dir)
    ok = set(valid_ends(card.spec, frame).tolist())
    bad = [e for e in ends if e not in ok]
    if bad:
        raise SpecError(
            f"bar(s) {bad[:3]} cannot be rendered with the model's spec (window {card.spec.window}); "
            f"pick bars from {frame.index[min(ok)]} on."
        )
    images = render(card.spec, frame, np.asarray(ends))
    ex = explain(model_dir, images, method=method, how=how)
    out = Path(out_dir)
    rows = []
    for i, end in enumerate(ends):
        stamp = frame.index[end].strftime("%Y%m%dT%H%M%S")
        inp, heat = _save_input_and_heat(images[i], ex.maps[i], out / stamp)
        chart = f"{stamp}_chart.png"
        _save_chart(frame, end, ex.bars[i], out / chart)
        rows.append(
            {
                "timestamp": frame.index[end].isoformat(),
                "position": int(end),
                "why": None if labels is None else labels[i],
                "explained_class": card.class_names[int(ex.target[i])],
                "probabilities": dict(zip(card.class_names, map(float, ex.probs[i]))),
                "bar_weights": [round(float(w), 4) for w in ex.bars[i]],
                "files": {"input": inp, "heat": heat, "chart": chart},
            }
        )
    doc = {
        "method": ex.method,
        "method_note": "Grad-CAM on the torch checkpoint"
        if ex.method == "gradcam"
        else "occlusion on the ONNX model (probability drop when a patch is greyed to the image mean)",
        "info": ex.info,
        "model": str(model_dir),
        "bars_per_image": int(ex.bars.shape[1]),
        "bar_weights_note": "one weight per bar of the window, oldest first, the decision bar last",
        "explanations": rows,
    }
    (out / "explain.json").write_text(json.dumps(doc, indent=2))
    return doc


def gallery_html(folder: str | os.PathLike, doc: dict) -> str:
    """An HTML block showing each explained bar's heat map and chart (images inlined)."""
    import base64
    import html

    folder = Path(folder)
    cells = []
    for row in doc["explanations"]:
        imgs = "".join(
            f'<img src="data:image/png;base64,{base64.b64encode((folder / row["files"][k]).read_bytes()).decode()}" '
            f'style="height:220px">'
            for k in ("heat", "chart")
        )
        p = max(row["probabilities"].values())
        cells.append(
            f"<div><b>{html.escape(row['explained_class'])}</b> {row['timestamp']} (p={p:.2f})<br>{imgs}</div>"
        )
    return f"<p>maps: {html.escape(doc['method_note'])}</p>" + "".join(cells)


def add_report_gallery(
    report: str | os.PathLike, frame: pd.DataFrame, model_dir, top: int, probs: pd.DataFrame | None = None
) -> dict:
    """Explain the ``top`` most confident buy and sell bars (from ``probs``, the run's per-bar probabilities,
    or scored afresh) into ``<report folder>/explain/`` and add a gallery section to the HTML ``report``."""
    report = Path(report)
    if probs is not None:
        p = probs.dropna()
        picked = pick_bars(p.to_numpy(), list(p.columns), top)
        ends = [int(frame.index.get_loc(p.index[r])) for r, _ in picked]
        why = [f"top {cls}" for _, cls in picked]
    else:
        ends, why = choose_bars(frame, model_dir, top=top)
    folder = report.parent / "explain"
    folder.mkdir(exist_ok=True)
    doc = write_explanations(folder, frame, model_dir, ends, labels=why)
    section = f"<h2>What the model looked at (top {top} buy / sell)</h2>\n{gallery_html(folder, doc)}\n"
    page = report.read_text()
    report.write_text(page.replace("</body>", section + "</body>", 1))
    return doc


def add_evaluate_gallery(out_dir: str | os.PathLike, frame: pd.DataFrame, top: int) -> dict:
    """The evaluate run's gallery: the first model of the last walk-forward fold (``folds/fold_K.json``),
    its ``top`` most confident buy and sell bars *in that fold's test span*, added to ``report.html``."""
    from effnet_trading.imaging import render, valid_ends
    from effnet_trading.model_zoo.card import load_card
    from effnet_trading.model_zoo.runtime import Predictor

    out = Path(out_dir)
    folds = sorted(out.glob("folds/fold_*.json"), key=lambda p: int(p.stem.split("_")[1]))
    if not folds:
        raise SpecError(f"{out} holds no folds/fold_K.json: run `effnet-trading evaluate` into it first.")
    last = json.loads(folds[-1].read_text())
    name, entry = next(((n, e) for n, e in last["strategies"].items() if e.get("kind") == "model"), (None, None))
    if entry is None:
        raise SpecError("the evaluation trained no model (only baselines); there is nothing to explain.")
    from effnet_trading.evaluation.evaluate import recorded_model_dir

    entry["model_dir"] = str(recorded_model_dir(out, entry["model_dir"]))  # also after the folder moved
    card = load_card(entry["model_dir"])
    lo, hi = (frame.index.get_loc(pd.Timestamp(t)) for t in last["test_span"])
    ends = valid_ends(card.spec, frame)
    ends = ends[(ends >= lo) & (ends <= hi)]
    probs = pd.DataFrame(
        Predictor(entry["model_dir"], "cpu").predict(render(card.spec, frame, ends)),
        index=frame.index[ends],
        columns=list(card.class_names),
    )
    return add_report_gallery(out / "report.html", frame, entry["model_dir"], top, probs=probs) | {"model": name}
