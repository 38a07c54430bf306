"""Several symbols in one backtest: separate sleeves in both engines, vectorbt cash sharing, CLI outputs."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from effnet_trading.plugins.backtest import run_backtest
from effnet_trading.plugins.cli import main
from effnet_trading.plugins.portfolio import run_backtest_many
from effnet_trading.strategies import Policy

N = 400
POLICY = Policy(threshold=0.4)


@pytest.fixture(scope="module")
def frames(planted):
    return {"aaa": planted.iloc[:N], "bbb": planted.iloc[N // 2 : N // 2 + N]}  # overlapping, different spans


@pytest.mark.slow
def test_sleeves_agree_across_engines_and_with_one_symbol_runs(frames, decisive_model_dir):
    vb = run_backtest_many(frames, decisive_model_dir, engine="vectorbt", policy=POLICY)
    bt = run_backtest_many(frames, decisive_model_dir, engine="backtrader", policy=POLICY)
    np.testing.assert_allclose(vb.equity.to_numpy(), bt.equity.to_numpy(), rtol=1e-9)
    assert list(vb.summary["symbols"]) == ["aaa", "bbb"]
    assert len(vb.equity) == N + N // 2  # the union of both spans
    one = run_backtest(frames["bbb"], decisive_model_dir, policy=POLICY, init_cash=5_000.0)
    mine = vb.trades[vb.trades["symbol"] == "bbb"].drop(columns="symbol").reset_index(drop=True)
    pd.testing.assert_frame_equal(mine, one.trades.reset_index(drop=True), check_dtype=False)
    assert vb.summary["symbols"]["bbb"]["strategy"]["total_return"] == pytest.approx(
        one.summary["strategy"]["total_return"]
    )
    assert (vb.trades["symbol"] == "aaa").sum() >= 2
    # before bbb's first bar its sleeve holds its cash: the portfolio is aaa's sleeve + 5,000
    one_a = run_backtest(frames["aaa"], decisive_model_dir, policy=POLICY, init_cash=5_000.0)
    early = frames["bbb"].index[0] - pd.Timedelta("5min")
    assert vb.equity[early] == pytest.approx(one_a.equity[early] + 5_000.0)


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["vectorbt", "backtrader"])
def test_cash_sharing_with_two_copies_equals_one_symbol(planted, decisive_model_dir, engine):
    bars = planted.iloc[:N]
    shared = run_backtest_many(
        {"a": bars, "b": bars}, decisive_model_dir, engine=engine, policy=POLICY, cash_sharing=True, fees=0.001
    )
    one = run_backtest(bars, decisive_model_dir, policy=POLICY, fees=0.001)
    # two identical symbols at target / 2 each of one pool hold what one symbol at the full target holds
    np.testing.assert_allclose(shared.equity.to_numpy(), one.equity.to_numpy(), rtol=1e-9)
    assert set(shared.trades["symbol"]) == {"a", "b"}
    assert shared.summary["symbols"]["a"]["trades"] == len(one.trades)


@pytest.mark.slow
def test_backtest_cli_on_a_folder_of_symbols(frames, decisive_model_dir, tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    for sym, f in frames.items():
        f.to_csv(folder / f"{sym}.csv", index_label="timestamp")
    out = tmp_path / "run"
    res = CliRunner().invoke(
        main,
        [
            "backtest",
            "--data",
            str(folder),
            "--model",
            str(decisive_model_dir),
            "--threshold",
            "0.4",
            "--out",
            str(out),
            "--no-progress",
        ],
        catch_exceptions=False,
    )
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["symbols"]) == {"aaa", "bbb"} and summary["config"]["cash_sharing"] is False
    trades = pd.read_csv(out / "trades.csv")
    signals = pd.read_csv(out / "signals.csv")
    assert trades.columns[0] == "symbol" and set(trades["symbol"]) <= {"aaa", "bbb"}
    assert list(signals.columns) == ["timestamp", "symbol", "sell", "hold", "buy", "target"]
    assert signals["symbol"].value_counts().to_dict() == {"aaa": N, "bbb": N}
    assert (out / "report.html").is_file()


@pytest.mark.parametrize("cash_sharing", [True, False])
def test_a_symbol_with_missing_bars_fills_at_its_own_next_bar(cash_sharing):
    """Several symbols on a joint index: B has every second bar of A. B's order decided at its first
    bar fills at B's next bar, not at a joint bar where B has no price (vectorbt would drop it)."""
    from effnet_trading.plugins.vectorbt import portfolio_from_signals

    idx = pd.date_range("2024-01-01", periods=8, freq="1h", tz="UTC")

    def bars(ix):
        c = np.linspace(100.0, 107.0, len(ix))
        return pd.DataFrame({"open": c, "high": c + 1, "low": c - 1, "close": c, "volume": 1.0}, index=ix)

    frames = {"A": bars(idx), "B": bars(idx[::2])}
    target = pd.DataFrame({"A": 0.0, "B": pd.Series(0.5, index=idx[::2])}, index=idx)
    pf = portfolio_from_signals(frames, target, fees=0.0, cash_sharing=cash_sharing)
    orders = pf.orders.records_readable
    assert list(orders["Column"]) == ["B"] and list(orders["Timestamp"]) == [idx[2]]
