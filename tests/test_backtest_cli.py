"""``effnet-trading backtest``: outputs in both engines, engine agreement, clear errors; the HTML report helpers."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from effnet_trading.evaluation.report import fig_to_data_uri, html_page, write_backtest_report
from effnet_trading.plugins.cli import main
from effnet_trading.strategies import performance_summary, simulate

N_BARS = 1500


@pytest.fixture(scope="module")
def csv_path(planted, tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "bars.csv"
    planted.iloc[:N_BARS].to_csv(path, index_label="timestamp")
    return path


def _invoke(*args):
    return CliRunner().invoke(main, ["backtest", *map(str, args)], catch_exceptions=False)


@pytest.mark.slow
def test_both_engines_write_the_same_results(csv_path, decisive_model_dir, tmp_path, planted):
    outs = {}
    for engine in ("backtrader", "vectorbt"):
        out = tmp_path / engine
        res = _invoke(
            "--data",
            csv_path,
            "--model",
            decisive_model_dir,
            "--engine",
            engine,
            "--threshold",
            "0.5",
            "--fees",
            "0.001",
            "--slippage",
            "0",
            "--out",
            out,
            "--no-progress",
        )
        assert res.exit_code == 0, res.output
        assert "report:" in res.output and "buy & hold" in res.output
        assert {p.name for p in out.iterdir()} == {
            "summary.json",
            "trades.csv",
            "signals.csv",
            "report.html",
            "effnet-run.json",
        }
        outs[engine] = out
    s = {e: json.loads((o / "summary.json").read_text()) for e, o in outs.items()}
    for e in s:
        assert s[e]["config"]["engine"] == e and s[e]["config"]["fees"] == 0.001
        assert set(s[e]["strategy"]) >= {
            "total_return",
            "cagr",
            "sharpe",
            "sortino",
            "max_drawdown",
            "trades",
            "win_rate",
            "exposure",
        }
    assert s["vectorbt"]["strategy"]["trades"] > 20
    for e in s:  # the calendar used is stated; a span of days has no CAGR (issue 11)
        assert s[e]["periods_per_year"] == pytest.approx(365.25 * 288) and s[e]["periods_per_year_source"].startswith(
            "observed"
        )
        assert s[e]["strategy"]["cagr"] is None and "under 90" in s[e]["strategy"]["cagr_note"]
        assert s[e]["gaps"]["count"] == 0
    assert s["backtrader"]["strategy"]["total_return"] == pytest.approx(
        s["vectorbt"]["strategy"]["total_return"], abs=1e-9
    )
    trades = {e: pd.read_csv(o / "trades.csv") for e, o in outs.items()}
    a, b = trades["backtrader"], trades["vectorbt"]
    assert list(a["entry_time"]) == list(b["entry_time"]), (
        len(a),
        len(b),
        a.iloc[95:101].to_string(),
        b.iloc[95:101].to_string(),
    )
    # buy & hold beside it is the independent simulate() figure
    bars = planted.iloc[:N_BARS]
    bh = performance_summary(simulate(bars, np.ones(N_BARS), fees=0.001))
    assert s["vectorbt"]["buy_and_hold"]["total_return"] == pytest.approx(bh["total_return"], rel=1e-9)
    sig = {e: pd.read_csv(o / "signals.csv", index_col=0) for e, o in outs.items()}
    assert list(sig["vectorbt"].columns) == ["sell", "hold", "buy", "target"]
    np.testing.assert_allclose(sig["backtrader"].to_numpy(), sig["vectorbt"].to_numpy(), rtol=1e-6, equal_nan=True)
    page = (outs["vectorbt"] / "report.html").read_text()
    assert page.count("data:image/png;base64,") >= 2 and "http://" not in page and "https://" not in page


def test_clear_errors(csv_path, tiny_model_dir, tmp_path):
    res = CliRunner().invoke(main, ["backtest", "--data", str(csv_path), "--out", str(tmp_path / "o")])
    assert res.exit_code != 0 and "no model given" in res.output
    res = CliRunner().invoke(
        main, ["backtest", "--data", str(csv_path), "--model", str(tmp_path), "--out", str(tmp_path / "o")]
    )
    assert res.exit_code != 0 and "is not a model folder" in res.output and "card.json" in res.output
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "timestamp,open,high,low,close,volume\n2021-01-01T00:00:00Z,1,0.5,0.9,1,1\n2021-01-01T00:05:00Z,1,2,0.9,1,1\n"
    )
    res = CliRunner().invoke(
        main, ["backtest", "--data", str(bad), "--model", str(tiny_model_dir), "--out", str(tmp_path / "o")]
    )
    assert res.exit_code != 0 and "high" in res.output
    res = CliRunner().invoke(
        main,
        [
            "backtest",
            "--data",
            str(tmp_path / "missing.csv"),
            "--model",
            str(tiny_model_dir),
            "--out",
            str(tmp_path / "o"),
        ],
    )
    assert res.exit_code != 0 and "no such file" in res.output
    res = CliRunner().invoke(
        main,
        [
            "backtest",
            "--data",
            str(csv_path),
            "--model",
            str(tiny_model_dir),
            "--model",
            str(tiny_model_dir),
            "--out",
            str(tmp_path / "o"),
        ],
    )
    assert res.exit_code != 0 and "--timeframes" in res.output
    short = tmp_path / "short.csv"
    pd.read_csv(csv_path).iloc[:20].to_csv(short, index=False)  # fewer bars than the model's window
    res = CliRunner().invoke(
        main, ["backtest", "--data", str(short), "--model", str(tiny_model_dir), "--out", str(tmp_path / "o")]
    )
    assert res.exit_code == 1 and "has 20 bars but model" in res.output and "needs at least" in res.output
    res = CliRunner().invoke(
        main,
        [
            "backtest",
            "--data",
            str(csv_path),
            "--model",
            str(tiny_model_dir),
            "--cash",
            "inf",
            "--out",
            str(tmp_path / "o"),
        ],
    )
    assert res.exit_code == 1 and "cash=inf must be a finite amount" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "o").exists()  # nothing half-written on errors


def test_timeframe_ensemble_run(csv_path, tiny_model_dir, tmp_path):
    res = _invoke(
        "--data",
        csv_path,
        "--model",
        tiny_model_dir,
        "--model",
        tiny_model_dir,
        "--timeframes",
        "5m,15m",
        "--engine",
        "vectorbt",
        "--out",
        tmp_path,
        "--no-progress",
        "--periods-per-year",
        "252",
    )
    assert res.exit_code == 0, res.output
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["config"]["timeframes"] == ["5m", "15m"]
    assert summary["periods_per_year"] == 252 and summary["periods_per_year_source"] == "given"
    assert "annualised with 252.0 bars a year (given)" in res.output
    signals = pd.read_csv(tmp_path / "signals.csv", index_col=0)
    assert signals["buy"].isna().sum() > 32  # the 15m member warms up over 32 closed 15m bars


def test_html_page_is_self_contained_and_escaped():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    uri = fig_to_data_uri(fig)
    assert uri.startswith("data:image/png;base64,iVBOR")  # PNG magic, base64-encoded
    page = html_page("a <b> & c", [("x < y", f'<img src="{uri}">')])
    assert "<title>a &lt;b&gt; &amp; c</title>" in page and "<h2>x &lt; y</h2>" in page


def test_write_backtest_report_sections(planted, tmp_path):
    bars = planted.iloc[:400]
    res = simulate(bars, np.r_[np.zeros(100), np.ones(300)], fees=0.001)
    probs = pd.DataFrame(np.full((400, 3), 1 / 3), index=bars.index, columns=["sell", "hold", "buy"])
    summary = {"strategy": performance_summary(res), "buy_and_hold": {"total_return": 0.1}, "config": {"engine": "x"}}
    images = {"buy": np.random.default_rng(0).random((3, 1, 16, 16))}
    path = write_backtest_report(
        tmp_path,
        summary=summary,
        equity=res.equity,
        benchmark=res.equity * 1.01,
        probs=probs,
        ohlcv=bars,
        trades=res.trades,
        confusion=[[5, 1, 0], [2, 3, 1], [0, 1, 6]],
        example_images=images,
        latency_ms=np.linspace(1, 3, 50),
    )
    page = path.read_text()
    for heading in (
        "Equity and drawdown",
        "Probabilities over price",
        "Confusion matrix",
        "Example images",
        "Inference latency",
        "Configuration",
        "Trades",
    ):
        assert heading in page, heading
    assert page.count("data:image/png;base64,") == 5
    assert not list(tmp_path.glob("*.tmp"))  # atomic write leaves no temp file


def test_report_draws_without_pyplot(planted, tmp_path, monkeypatch):
    """Headless: after backtrader's cerebro.plot() forced TkAgg, pyplot cannot open figures. The report
    never goes through pyplot, so it still draws (here pyplot is broken outright)."""
    import matplotlib.pyplot as plt

    def boom(*a, **k):
        raise RuntimeError("no display: TkAgg cannot open a window")

    monkeypatch.setattr(plt, "subplots", boom)
    monkeypatch.setattr(plt, "figure", boom)
    bars = planted.iloc[:300]
    res = simulate(bars, np.r_[np.zeros(100), np.ones(200)], fees=0.001)
    probs = pd.DataFrame(np.full((300, 3), 1 / 3), index=bars.index, columns=["sell", "hold", "buy"])
    path = write_backtest_report(
        tmp_path,
        summary={"strategy": performance_summary(res)},
        equity=res.equity,
        benchmark=None,
        probs=probs,
        ohlcv=bars,
        trades=res.trades,
        confusion=[[5, 1, 0], [2, 3, 1], [0, 1, 6]],
        intro=["Data: planted bars."],
    )
    page = path.read_text()
    assert page.count("data:image/png;base64,") == 3 and page.index("About this run") < page.index("Summary")


def test_summary_line_marks_a_ruin_and_says_why_there_is_no_cagr():
    from effnet_trading.plugins.cli.backtest_cmd import _fmt_line

    idx = pd.date_range("2024-01-01", periods=200, freq="1D", tz="UTC")
    close = np.concatenate([np.full(100, 100.0), np.linspace(100, 400, 100)])
    frame = pd.DataFrame({"open": close, "high": close, "low": close, "close": close, "volume": 1.0}, index=idx)
    res = simulate(frame, -np.ones(200), fees=0.0)  # a 1x short through a 4x rally
    s = performance_summary(res) | {"ruined_at": str(res.ruined_at)}
    line = _fmt_line("strategy", s)
    assert f"RUINED at {res.ruined_at}: equity reached 0" in line and "CAGR n/a (equity reached zero)" in line
    calm = performance_summary(simulate(frame.iloc[:60], np.ones(60), fees=0.0))  # 59 days
    assert "RUINED" not in _fmt_line("strategy", calm) and "CAGR n/a (not annualised" in _fmt_line("strategy", calm)
