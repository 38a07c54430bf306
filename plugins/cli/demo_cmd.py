"""``effnet-trading demo``: sample data -> train the compact EfficientNet -> ONNX -> backtest in
backtrader and vectorbt on the unseen later bars -> HTML report. Under a minute on 2 CPU cores."""
from __future__ import annotations

import time
from pathlib import Path

import click
import numpy as np

__all__ = ["demo", "run_demo"]

_BUNDLED = Path(__file__).resolve().parents[2] / "sample_data"  # the repository's sample_data/ (editable installs)


def _sample_frame(out: Path, echo):
    """The planted 5m sample: bundled copy when present, else generated into ``out/data``."""
    from effnet_trading.imaging import load_ohlcv

    path = _BUNDLED / "planted_5m.csv"
    if not path.is_file():
        from effnet_trading.imaging.synthetic import write_sample_data

        echo(f"no bundled sample_data/: generating it in {out / 'data'}")
        write_sample_data(out / "data")
        path = out / "data" / "planted_5m.csv"
    return load_ohlcv(path), path


def _examples(model_dir: Path, frame, probs, per_class: int = 6) -> dict:
    """Rendered images of the bars each class won most confidently, ``{class: (n, C, H, W)}``."""
    from effnet_trading.imaging import render
    from effnet_trading.model_zoo.card import load_card

    spec = load_card(model_dir).spec
    p = probs.dropna()
    win = p.to_numpy().argmax(axis=1)
    out = {}
    for k, name in enumerate(p.columns):
        rows = np.flatnonzero(win == k)
        top = rows[np.argsort(-p.to_numpy()[rows, k])[:per_class]]
        if len(top):
            ends = np.sort(frame.index.get_indexer(p.index[top]))
            out[name] = render(spec, frame, ends)
    return out


def _pick_model(model: str) -> str:
    """'auto': the compact EfficientNet (about 20 s of training on 2 CPU cores here); an
    architecture that is not registered falls back to the small CNN."""
    from effnet_trading.model_zoo import list_models

    if model == "auto":
        model = "compact"
    return model if model in list_models() else "small_cnn"


def run_demo(out_dir: str | Path, *, bars: int = 8000, epochs: int = 5, model: str = "auto", threshold: float = 0.5,
             fees: float = 0.0005, seed: int = 0, echo=click.echo) -> dict:
    """Train on the first 70 % of ``bars`` planted 5m bars, backtest both engines on the last 30 %;
    returns ``{"model_dir", "reports": {engine: path}, "summary": {engine: summary}}``."""
    from effnet_trading.errors import TrainingError
    from effnet_trading.imaging import ImageSpec
    from effnet_trading.model_zoo.train import TrainConfig, train_and_export
    from effnet_trading.plugins.backtest import build_scorer, run_backtest, write_backtest_outputs
    from effnet_trading.evaluation.report import write_backtest_report
    from effnet_trading.strategies import Policy

    out = Path(out_dir)
    t0 = time.perf_counter()
    frame, path = _sample_frame(out, echo)
    if bars < 1000:
        raise TrainingError(f"--bars {bars} is too few: the demo needs >= 1000 bars (70 % to train, 30 % to test).")
    frame = frame.iloc[: min(bars, len(frame))]
    split = int(len(frame) * 0.7)
    train, test = frame.iloc[:split], frame.iloc[split:]
    echo(f"data: {path} ({len(frame)} bars of planted-pattern 5m OHLCV); train {train.index[0]} .. {train.index[-1]}, "
         f"unseen test {test.index[0]} .. {test.index[-1]}")
    model = _pick_model(model)
    # GADF (not GASF) of returns: GASF cannot tell a V from a mirrored V, so it cannot see buy vs sell patterns
    spec = ImageSpec("gadf", window=16, size=(16, 16), returns=True)
    kwargs = {"widths": (16, 32, 64)} if model == "small_cnn" else {}
    cfg = TrainConfig(model=model, spec=spec, horizon=6, epochs=epochs, patience=3, seed=seed, progress=False,
                      num_threads=2, model_kwargs=kwargs)
    echo(f"training {model} on {spec.kind} {spec.size[0]}x{spec.size[1]} images for up to {epochs} epochs ...")
    res = train_and_export(train, cfg, out / "train")
    t = res.metrics["test"]
    echo(f"trained in {time.perf_counter() - t0:.0f}s: held-out accuracy {t['accuracy']:.3f} "
         f"(majority class {t['majority_rate']:.3f}); ONNX model + card in {res.model_dir}")
    reports, summaries = {}, {}
    for engine in ("backtrader", "vectorbt"):
        scorer = build_scorer([str(res.model_dir)], None)
        bt_out = run_backtest(test, scorer, engine=engine, policy=Policy(threshold), fees=fees, slippage=0.0,
                              config={"demo": True, "model_dir": str(res.model_dir), "train_span": [str(train.index[0]), str(train.index[-1])]})
        reports[engine] = write_backtest_outputs(bt_out, test, out / engine)
        summaries[engine] = bt_out.summary
        s, b = bt_out.summary["strategy"], bt_out.summary["buy_and_hold"]
        echo(f"{engine:<10} on unseen bars: strategy {s['total_return']:+.2%} ({s.get('trades', 0)} trades, Sharpe "
             f"{s['sharpe'] if s['sharpe'] is not None else float('nan'):.2f}) vs buy & hold {b['total_return']:+.2%}")
        if engine == "vectorbt":  # the richer page: confusion matrix and example images beside the backtest
            write_backtest_report(out / engine, summary=bt_out.summary, equity=bt_out.equity, benchmark=bt_out.benchmark,
                                  probs=bt_out.probs, ohlcv=test, trades=bt_out.trades, confusion=t.get("confusion"),
                                  example_images=_examples(res.model_dir, test, bt_out.probs), latency_ms=bt_out.latency_ms,
                                  title="effnet-trading demo (vectorbt)")
    eq = {e: summaries[e]["strategy"]["total_return"] for e in summaries}
    echo(f"engines agree: backtrader {eq['backtrader']:+.6%} vs vectorbt {eq['vectorbt']:+.6%} total return")
    echo("note: the sample data has patterns planted on purpose (sample_data/meta.json); an edge this large "
         "does not carry over to real markets. Use `effnet-trading evaluate` for honest walk-forward figures.")
    echo(f"done in {time.perf_counter() - t0:.0f}s. Report: {reports['vectorbt']}")
    return {"model_dir": res.model_dir, "reports": reports, "summary": summaries}


@click.command("demo")
@click.option("--out", "out_dir", default="effnet-demo", show_default=True, type=click.Path(file_okay=False), help="Folder for the model, results and reports.")
@click.option("--bars", default=8000, show_default=True, type=click.IntRange(min=1000), help="Sample bars to use (70 % train, 30 % unseen test).")
@click.option("--epochs", default=5, show_default=True, type=click.IntRange(min=1), help="Training epochs (early stopping may end sooner).")
@click.option("--model", default="auto", show_default=True, help="Registered architecture; auto = the compact EfficientNet.")
@click.option("--threshold", default=0.5, show_default=True, type=click.FloatRange(0, 1))
@click.option("--fees", default=0.0005, show_default=True, type=click.FloatRange(0, 1, max_open=True))
def demo(out_dir, bars, epochs, model, threshold, fees) -> None:
    """Train a compact model on sample data and backtest it in backtrader and vectorbt on unseen bars."""
    from effnet_trading.errors import EffnetTradingError

    try:
        run_demo(out_dir, bars=bars, epochs=epochs, model=model, threshold=threshold, fees=fees)
    except EffnetTradingError as exc:
        raise click.ClickException(str(exc)) from exc
