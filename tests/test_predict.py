"""Score once, backtest many: ``effnet-trading predict`` files, their provenance checks, and parity of
precomputed scores with live scoring in both engines."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from effnet_trading.errors import DataError, ModelCardError
from effnet_trading.plugins.cli import main
from effnet_trading.strategies import Policy, PrecomputedScores
from effnet_trading.strategies.scores import SCORES_META_KEY, ohlcv_sha256, read_scores

N_BARS = 400


@pytest.fixture(scope="module")
def bars(planted) -> pd.DataFrame:
    return planted.iloc[:N_BARS]


@pytest.fixture(scope="module")
def data_dir(planted, tmp_path_factory):
    """Two symbols: the planted bars and a later slice of them (different bars, different hashes)."""
    folder = tmp_path_factory.mktemp("symbols")
    planted.iloc[:N_BARS].to_csv(folder / "aaa.csv", index_label="timestamp")
    planted.iloc[N_BARS : 2 * N_BARS].to_csv(folder / "bbb.csv", index_label="timestamp")
    return folder


def _cli(*args):
    return CliRunner().invoke(main, [*map(str, args)], catch_exceptions=False)


@pytest.mark.slow
def test_predict_csv_equals_backtest_signals(data_dir, decisive_model_dir, tmp_path):
    csv = data_dir / "aaa.csv"
    res = _cli("predict", "--data", csv, "--model", decisive_model_dir, "--out", tmp_path / "p.csv", "--no-progress")
    assert res.exit_code == 0, res.output
    res = _cli("backtest", "--data", csv, "--model", decisive_model_dir, "--out", tmp_path / "bt", "--no-progress")
    assert res.exit_code == 0, res.output
    probs = pd.read_csv(tmp_path / "p.csv")
    signals = pd.read_csv(tmp_path / "bt" / "signals.csv")
    assert list(probs.columns) == ["timestamp", "sell", "hold", "buy"]  # one symbol: no symbol column
    assert (probs["timestamp"] == signals["timestamp"]).all()
    np.testing.assert_array_equal(
        probs[["sell", "hold", "buy"]].to_numpy(), signals[["sell", "hold", "buy"]].to_numpy()
    )
    assert probs["buy"].notna().sum() > N_BARS - 50
    side = json.loads((tmp_path / "p.csv.json").read_text())
    card = json.loads((decisive_model_dir / "card.json").read_text())
    assert side["models"]["model"]["onnx_sha256"] == card["onnx_sha256"]
    assert side["models"]["model"]["spec"] == card["spec"]
    assert side["symbols"] == ["aaa"]
    from effnet_trading.errors import DataError
    from effnet_trading.strategies.scores import read_scores

    read_scores(tmp_path / "p.csv")  # the pair matches
    with open(tmp_path / "p.csv", "a") as fh:  # a CSV replaced or edited behind its sidecar's back
        fh.write(probs.iloc[[-1]].to_csv(index=False, header=False))
    with pytest.raises(DataError, match="does not match its sidecar"):
        read_scores(tmp_path / "p.csv")


def test_predict_parquet_several_symbols_and_refusals(data_dir, decisive_model_dir, tiny_model_dir, planted, tmp_path):
    import pyarrow.parquet as pq

    out = tmp_path / "scores.parquet"
    res = _cli("predict", "--data", data_dir, "--model", decisive_model_dir, "--out", out, "--no-progress")
    assert res.exit_code == 0, res.output
    assert not list(tmp_path.glob(".*tmp"))  # the temporary file was renamed into place
    meta = json.loads(pq.read_metadata(out).metadata[SCORES_META_KEY.encode()])
    a, b = planted.iloc[:N_BARS], planted.iloc[N_BARS : 2 * N_BARS]
    assert meta["data"]["aaa"]["sha256"] == ohlcv_sha256(a) != meta["data"]["bbb"]["sha256"]
    frame, _ = read_scores(out)
    assert list(frame.columns) == ["timestamp", "symbol", "sell", "hold", "buy"]
    assert frame["symbol"].value_counts().to_dict() == {"aaa": N_BARS, "bbb": N_BARS}

    scores = PrecomputedScores.by_symbol(out, model=decisive_model_dir, data={"aaa": a, "bbb": b})
    from effnet_trading.strategies import SignalModel

    live = SignalModel(decisive_model_dir).predict_proba(b)
    pd.testing.assert_frame_equal(scores["bbb"].predict_proba(b), live, check_names=False, check_freq=False)

    with pytest.raises(DataError, match="holds 2 symbols"):
        PrecomputedScores.from_file(out)
    from effnet_trading.plugins.portfolio import run_backtest_many

    with pytest.raises(DataError, match="belong to symbol 'bbb' but the run trades"):  # one symbol's scores for all
        run_backtest_many({"aaa": a, "bbb": b}, scores["bbb"])
    moved = a.copy()
    moved.iloc[300, moved.columns.get_loc("close")] *= 1.0001
    with pytest.raises(DataError, match="other bars for 'aaa'"):
        PrecomputedScores.from_file(out, symbol="aaa", data=moved)
    with pytest.raises(ModelCardError, match="another model.*onnx_sha256"):
        PrecomputedScores.from_file(out, symbol="aaa", model=tiny_model_dir)
    # not a score file: the CLI refuses to overwrite it without --overwrite
    other = tmp_path / "notes.csv"
    other.write_text("keep me\n")
    res = CliRunner().invoke(
        main, ["predict", "--data", str(data_dir), "--model", str(decisive_model_dir), "--out", str(other)]
    )
    assert res.exit_code == 1 and "not a score file" in res.output
    assert other.read_text() == "keep me\n"


@pytest.mark.slow
def test_precomputed_scores_trade_like_live_scoring(bars, decisive_model_dir, tmp_path):
    from effnet_trading.plugins.backtrader import run_backtrader
    from effnet_trading.plugins.predict import predict_to_file
    from effnet_trading.plugins.vectorbt import portfolio_from_signals

    path = predict_to_file({"aaa": bars}, decisive_model_dir, tmp_path / "s.parquet")
    scores = PrecomputedScores.from_file(path, model=decisive_model_dir, data=bars)
    assert scores.meta["symbols"] == ["aaa"]
    policy = Policy(threshold=0.4, hysteresis=0.05)
    live = run_backtrader(bars, decisive_model_dir, policy=policy)
    pre = run_backtrader(bars, scores, policy=policy)
    assert len(live.trades) >= 3
    pd.testing.assert_frame_equal(pre.trades, live.trades)
    pd.testing.assert_series_equal(pre.equity, live.equity)
    pd.testing.assert_series_equal(pre.target, live.target)
    target = policy.replace().positions(scores.predict_proba(bars))
    pf = portfolio_from_signals(bars, target)
    np.testing.assert_allclose(pf.value().to_numpy(), live.equity.to_numpy(), rtol=1e-9)


@pytest.mark.slow
def test_policy_grid_scores_once_and_matches_one_by_one(bars, decisive_model_dir):
    from effnet_trading.plugins.vectorbt import policy_grid, portfolio_from_signals
    from effnet_trading.strategies import SignalModel

    class Counting(SignalModel):
        calls = 0

        def predict_proba(self, ohlcv):
            type(self).calls += 1
            return super().predict_proba(ohlcv)

    scorer = Counting(decisive_model_dir)
    pf = policy_grid(
        bars, scorer, threshold=[0.4, 0.5], hysteresis=[0.0, 0.1], long_only=[False, True], sizing=["fixed", "prob"]
    )
    assert Counting.calls == 1
    values = pf.value()
    assert values.shape == (len(bars), 16)
    probs = SignalModel(decisive_model_dir).predict_proba(bars)
    for key in [(0.4, 0.1, True, "prob"), (0.5, 0.0, False, "fixed")]:
        target = Policy(*key[:3], sizing=key[3]).positions(probs)
        one = portfolio_from_signals(bars, target).value()
        np.testing.assert_allclose(values[key].to_numpy(), one.to_numpy(), rtol=1e-12)
    assert values.iloc[-1].nunique() > 4  # the combinations trade differently


def test_probability_feed_carries_the_scores(bars, decisive_model_dir, tmp_path):
    import backtrader as bt

    from effnet_trading.plugins.backtrader import ProbabilityData
    from effnet_trading.plugins.predict import predict_to_file

    path = predict_to_file({"aaa": bars}, decisive_model_dir, tmp_path / "s.csv")
    scores = PrecomputedScores.from_file(path, data=bars)
    policy = Policy(threshold=0.4)
    seen = []

    class Read(bt.Strategy):
        def next(self):
            d = self.data
            seen.append((d.sell[0], d.hold[0], d.buy[0], d.signal[0]))

    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(ProbabilityData.from_scores(bars, scores, policy))
    cerebro.addstrategy(Read)
    cerebro.run()
    probs = scores.predict_proba(bars)
    want = np.column_stack([probs[["sell", "hold", "buy"]].to_numpy(), policy.positions(probs).to_numpy()])
    np.testing.assert_allclose(np.array(seen), want, rtol=1e-12)


def test_score_files_record_calibration_and_kelly_follows_it(bars, decisive_model_dir, tmp_path):
    """A score file records whether its model's card was calibrated (method, temperature);
    ``PrecomputedScores`` carries it; ``CappedKelly`` sizes from a calibrated file and refuses a raw one."""
    import shutil

    from effnet_trading.errors import SpecError
    from effnet_trading.plugins.backtrader import run_backtrader
    from effnet_trading.plugins.predict import predict_to_file
    from effnet_trading.plugins.vectorbt import policy_grid
    from effnet_trading.strategies import CappedKelly
    from effnet_trading.strategies.scores import scores_sidecar

    bars = bars.iloc[:250]
    calibrated = tmp_path / "calibrated"
    shutil.copytree(decisive_model_dir, calibrated)
    card = json.loads((calibrated / "card.json").read_text())
    card["calibration"] = {"method": "temperature", "temperature": 1.7, "ece_before": 0.1, "ece_after": 0.05}
    (calibrated / "card.json").write_text(json.dumps(card))
    raw_file = predict_to_file({"aaa": bars}, decisive_model_dir, tmp_path / "raw.parquet")
    cal_file = predict_to_file({"aaa": bars}, calibrated, tmp_path / "cal.csv")
    want = {"method": "temperature", "temperature": 1.7}
    assert json.loads(scores_sidecar(cal_file).read_text())["calibration"] == want
    assert read_scores(raw_file)[1]["calibration"] is None
    raw = PrecomputedScores.from_file(raw_file, model=decisive_model_dir, data=bars)
    cal = PrecomputedScores.from_file(cal_file, model=calibrated, data=bars)
    assert raw.calibration is None and cal.calibration == want
    # the temperature changes the probabilities: a calibrated card's file is not the raw card's
    assert not np.allclose(raw.probs.dropna().to_numpy(), cal.probs.dropna().to_numpy())
    with pytest.raises(ModelCardError, match="calibration"):
        PrecomputedScores.from_file(cal_file, model=decisive_model_dir)
    policy, kelly = Policy(threshold=0.4), CappedKelly(cap=0.5, window=20)
    kelly.check(cal)
    sized = run_backtrader(bars, cal, policy=policy, sizer=kelly)
    assert sized.target.abs().max() > 0.0
    assert policy_grid(bars, cal, sizing=[kelly]) is not None
    with pytest.raises(SpecError, match="calibrated probabilities"):
        run_backtrader(bars, raw, policy=policy, sizer=CappedKelly(window=20))
    with pytest.raises(SpecError, match="calibrated probabilities"):
        policy_grid(bars, raw, sizing=[CappedKelly(window=20)])
