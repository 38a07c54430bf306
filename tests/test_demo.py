"""``effnet-trading demo`` end to end with tiny settings: train, export, backtest in both engines, report."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from effnet_trading.plugins.cli import main


@pytest.mark.slow
def test_demo_end_to_end(tmp_path):
    res = CliRunner().invoke(
        main, ["demo", "--out", str(tmp_path / "d"), "--bars", "1500", "--epochs", "1"], catch_exceptions=False
    )
    assert res.exit_code == 0, res.output
    out = tmp_path / "d"
    lines = res.output.splitlines()
    # the headline is a real market; the planted set comes second, labelled as a pipeline check
    assert lines[0].startswith("1) real market: btcusdt_1h.csv, Binance spot BTC/USDT 1h")
    assert "majority-class rate" in res.output and "vs buy & hold" in res.output
    assert (
        "2) pipeline check, NOT a market" in res.output
        and "not a market: do not read it as an expected return" in res.output
    )
    assert "Report:" in res.output and "engines agree" in res.output
    model_dir = out / "train" / "model"
    assert (model_dir / "model.onnx").is_file() and (model_dir / "card.json").is_file()
    assert json.loads((model_dir / "card.json").read_text())["architecture"] == "compact"  # the demo's model
    s = {e: json.loads((out / e / "summary.json").read_text()) for e in ("backtrader", "vectorbt")}
    # trained on the first 70 % of the last 1500 real hours, backtested on the unseen last 30 %
    assert s["vectorbt"]["bars"] == 450 and s["vectorbt"]["span"] == s["backtrader"]["span"]
    assert s["vectorbt"]["span"][1] == "2026-05-16 18:00:00+00:00"
    assert s["vectorbt"]["periods_per_year"] == pytest.approx(8766.0)  # 24/7 hourly, from the data's calendar
    assert s["vectorbt"]["strategy"]["cagr"] is None  # 450 hours: under 90 days
    assert 0 <= s["vectorbt"]["config"]["unseen_accuracy"]["majority_rate"] <= 1
    assert s["backtrader"]["strategy"]["total_return"] == pytest.approx(
        s["vectorbt"]["strategy"]["total_return"], abs=1e-9
    )
    page = (out / "vectorbt" / "report.html").read_text()
    assert page.index("About this run") < page.index("Summary") and "real Binance spot BTC/USDT hourly candles" in page
    assert "Confusion matrix" in page and "Example images" in page
    planted = (out / "planted_check" / "vectorbt" / "report.html").read_text()
    assert "PLANTED SYNTHETIC data (not a market)" in planted
    manifest = json.loads((out / "effnet-run.json").read_text())
    assert manifest["complete"] is True and manifest["command"] == "demo"


def test_demo_rejects_too_few_bars(tmp_path):
    res = CliRunner().invoke(main, ["demo", "--out", str(tmp_path), "--bars", "500"])
    assert res.exit_code != 0 and "1000" in res.output


def test_demo_refuses_a_folder_of_other_files(tmp_path):
    (tmp_path / "mine.txt").write_text("keep")
    res = CliRunner().invoke(main, ["demo", "--out", str(tmp_path), "--bars", "1500", "--epochs", "1"])
    assert res.exit_code == 1 and "refusing to write into" in res.output and "mine.txt" in res.output
    assert [p.name for p in tmp_path.iterdir()] == ["mine.txt"]
