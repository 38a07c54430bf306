"""``effnet-trading demo`` end to end with tiny settings: train, export, backtest in both engines, report."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from effnet_trading.plugins.cli import main



@pytest.mark.slow
def test_demo_end_to_end(tmp_path):
    res = CliRunner().invoke(main, ["demo", "--out", str(tmp_path), "--bars", "1500", "--epochs", "1"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert "Report:" in res.output and "engines agree" in res.output
    model_dir = tmp_path / "train" / "model"
    assert (model_dir / "model.onnx").is_file() and (model_dir / "card.json").is_file()
    assert json.loads((model_dir / "card.json").read_text())["architecture"] == "compact"  # the demo's model
    s = {e: json.loads((tmp_path / e / "summary.json").read_text()) for e in ("backtrader", "vectorbt")}
    # trained on the first 70 %, backtested on the unseen last 30 %
    assert s["vectorbt"]["bars"] == 450 and s["vectorbt"]["span"] == s["backtrader"]["span"]
    assert s["backtrader"]["strategy"]["total_return"] == pytest.approx(s["vectorbt"]["strategy"]["total_return"], abs=1e-9)
    page = (tmp_path / "vectorbt" / "report.html").read_text()
    assert "Confusion matrix" in page and "Example images" in page


def test_demo_rejects_too_few_bars(tmp_path):
    res = CliRunner().invoke(main, ["demo", "--out", str(tmp_path), "--bars", "500"])
    assert res.exit_code != 0 and "1000" in res.output
