"""evaluate's date window (--start/--end) and holdout split (--split 70/15/15): window bounds, the
three parts disjoint and ordered with the purge + embargo gap, the refusals, and one tiny holdout run
whose trained model saw exactly the holdout's train and validation parts."""

import datetime
import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from effnet_trading.errors import SpecError, TrainingError
from effnet_trading.evaluation.evaluate import EvalConfig, evaluate, holdout_split, parse_split
from effnet_trading.evaluation.options import date_window, eval_config_dict, load_eval_data
from effnet_trading.imaging import ImageSpec
from effnet_trading.model_zoo.train import TrainConfig
from effnet_trading.plugins.cli import main


def _hourly(start="2022-01-01", days=10) -> pd.DataFrame:
    idx = pd.date_range(start, periods=24 * days, freq="1h", tz="UTC")
    return pd.DataFrame({"close": np.arange(len(idx), dtype=float)}, index=idx)


@pytest.mark.parametrize("n,horizon,embargo", [(1000, 6, 6), (1237, 4, 0), (5000, 12, 30)])
def test_holdout_parts_are_disjoint_ordered_and_gapped(n, horizon, embargo):
    p = holdout_split(n, "70/15/15", horizon=horizon, embargo=embargo)
    tr, va, te = p["train"], p["valid"], p["test"]
    for part in (tr, va, te):  # each a run of consecutive samples
        assert len(part) and np.array_equal(part, np.arange(part[0], part[-1] + 1))
    assert tr[0] == 0 and te[-1] == n - 1  # the whole span is used, the test part is the most recent
    # ordered, with exactly purge (horizon) + embargo samples left out between the parts
    assert va[0] - tr[-1] - 1 == horizon + embargo
    assert te[0] - va[-1] - 1 == horizon + embargo
    assert len(te) == int(n * 0.15) and len(va) == int(n * 0.15)
    assert len(tr) == n - len(va) - len(te) - 2 * (horizon + embargo)
    # no label window of one part reaches into the next one
    assert tr[-1] + horizon < va[0] and va[-1] + horizon < te[0]


def test_split_shares_and_refusals():
    assert parse_split("70/15/15") == parse_split("0.7/0.15/0.15") == parse_split([7, 1.5, 1.5]) == (0.7, 0.15, 0.15)
    for bad in ("70/30", "70/0/30", "a/b/c", "70/-15/45"):
        with pytest.raises(SpecError, match="three positive train/validation/test shares"):
            parse_split(bad)
    with pytest.raises(TrainingError, match="too few for a 0.7/0.15/0.15 split with a gap of 12"):
        holdout_split(60, "70/15/15", horizon=6, embargo=6)


def test_date_window_bounds_are_inclusive():
    f = _hourly()
    w = date_window(f, "2022-01-02", "2022-01-06")  # a bare end date includes its whole day
    assert w.index[0] == pd.Timestamp("2022-01-02 00:00", tz="UTC")
    assert w.index[-1] == pd.Timestamp("2022-01-06 23:00", tz="UTC") and len(w) == 5 * 24
    w = date_window(f, "2022-01-02 05:00", "2022-01-06 12:00")  # a timed end is inclusive at that bar
    assert w.index[0] == pd.Timestamp("2022-01-02 05:00", tz="UTC")
    assert w.index[-1] == pd.Timestamp("2022-01-06 12:00", tz="UTC")
    assert len(date_window(f, end="2022-01-06")) == 6 * 24 and len(date_window(f, start="2022-01-05")) == 6 * 24
    # TOML dates (sweep configs: end = 2022-01-06) are whole days too
    days = date_window(f, "2022-01-02", "2022-01-06")
    assert date_window(f, datetime.date(2022, 1, 2), datetime.date(2022, 1, 6)).equals(days)
    # naive bounds are read in --tz like naive data timestamps; aware bounds keep their zone
    w = date_window(f, "2022-01-02", "2022-01-06", tz="Europe/Berlin")
    assert w.index[0] == pd.Timestamp("2022-01-01 23:00", tz="UTC")
    assert w.index[-1] == pd.Timestamp("2022-01-06 22:00", tz="UTC")
    w = date_window(f, "2022-01-02T00:00+02:00", "2022-01-07T00:00+02:00")
    assert w.index[0] == pd.Timestamp("2022-01-01 22:00", tz="UTC")
    assert w.index[-1] == pd.Timestamp("2022-01-06 22:00", tz="UTC")


def test_a_bare_end_date_takes_its_whole_calendar_day_across_dst():
    """--end 2024-10-27 in Europe/Berlin covers that day's 25 hours; 2024-03-31 its 23 (not 24 h after midnight)."""
    idx = pd.date_range("2024-03-29", "2024-10-29", freq="h", tz="Europe/Berlin")
    c = np.linspace(100, 110, len(idx))
    frame = pd.DataFrame({"open": c, "high": c, "low": c, "close": c, "volume": 1.0}, index=idx)
    for day, hours in (("2024-10-27", 25), ("2024-03-31", 23)):
        cut = date_window(frame, None, day, tz="Europe/Berlin", min_bars=1)
        assert cut.index[-1].strftime("%Y-%m-%d %H:%M") == f"{day} 23:00"
        assert (cut.index.strftime("%Y-%m-%d") == day).sum() == hours


def test_date_window_refusals():
    f = _hourly()
    with pytest.raises(SpecError, match="holds 23 bar\\(s\\) \\(need >= 100\\); the data spans 2022-01-01"):
        date_window(f, "2022-01-03 00:00", "2022-01-03 22:00")
    with pytest.raises(SpecError, match="holds 0 bar"):
        date_window(f, "2023-01-01")
    with pytest.raises(SpecError, match="--end 2022-01-02 is before --start 2022-01-05"):
        date_window(f, "2022-01-05", "2022-01-02")
    with pytest.raises(SpecError, match="--start 'soon' is not a date"):
        date_window(f, "soon")


def test_window_and_split_through_options_and_the_cli(sample_dir, tmp_path):
    frame = load_eval_data(sample_dir / "btcusdt_1h.csv", start="2025-06-01", end="2025-06-30")
    assert str(frame.index[0]) == "2025-06-01 00:00:00+00:00" and str(frame.index[-1]) == "2025-06-30 23:00:00+00:00"
    cfg = EvalConfig.from_dict(eval_config_dict({"split": "70/15/15", "folds": 5}))
    assert cfg.split == (0.7, 0.15, 0.15)
    assert EvalConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))).to_dict() == cfg.to_dict()
    with pytest.raises(SpecError, match="three positive"):
        eval_config_dict({"split": "80/20"})
    args = ["evaluate", "--data", str(sample_dir / "btcusdt_1h.csv"), "--out", str(tmp_path / "o")]
    res = CliRunner().invoke(main, [*args, "--start", "2020-01-01", "--end", "2020-12-31"])
    assert res.exit_code != 0 and "holds 0 bar(s) (need >= 100); the data spans 2025-03-26" in res.output
    res = CliRunner().invoke(main, [*args, "--split", "70/30"])
    assert res.exit_code != 0 and "three positive train/validation/test shares" in res.output


@pytest.mark.slow
@pytest.mark.parametrize("cap", [None, 300])
def test_holdout_run_trains_on_its_parts_and_says_holdout(planted, tmp_path, cap):
    """With --max-train-bars the models train on the last ``cap`` samples of the train part, and the
    recorded train span says so (not the whole part)."""
    spec = ImageSpec("gadf", window=16, size=(16, 16), returns=True)
    tcfg = TrainConfig(spec=spec, horizon=6, epochs=1, patience=1, num_threads=1, seed=0)
    cfg = EvalConfig(
        models=("small_cnn",),
        train=replace(tcfg, batch_size=256),
        split=(70, 15, 15),
        baselines=("buy_and_hold", "logreg"),
        bootstrap=100,
        lookahead_samples=2,
        model_kwargs={"small_cnn": {"widths": (4, 8, 8)}},
        max_train_bars=cap,
    )
    res = evaluate(planted.iloc[:1000], cfg, tmp_path, progress=False)
    assert res["mode"].startswith("holdout 70/15/15") and len(res["folds"]) == 1
    fold = json.loads((tmp_path / "folds" / "fold_0.json").read_text())
    # the model trained and early-stopped on exactly the holdout's train and validation parts
    card = json.loads((tmp_path / "models" / "real" / "fold_0" / "small_cnn" / "metrics.json").read_text())["split"]
    assert [card["train"], card["valid"], card["test"]] == [fold["train_span"], fold["valid_span"], fold["test_span"]]
    if cap is not None:
        assert card["n_train"] == fold["n_train"] == cap
        return
    n = card["n_train"] + card["n_valid"] + card["n_test"] + 2 * 12  # + the two purge (6) + embargo (6) gaps
    assert card["n_test"] == fold["n_test"] == int(n * 0.15) and card["n_valid"] == fold["n_valid"] == int(n * 0.15)
    # the same tables, baselines and null as walk-forward, labelled holdout
    assert {"small_cnn", "buy_and_hold", "logreg"} <= set(res["strategies"]) and res["null"]["ran"]
    assert (tmp_path / "folds" / "null_fold_0.json").exists()
    md = (tmp_path / "results.md").read_text()
    assert "Mode: holdout 70/15/15" in md and "| holdout test (" in md and "walk-forward" in md  # "not walk-forward"
    assert "validation = the holdout's validation part" in md


def test_sweep_cells_read_the_window_and_the_split(sample_dir):
    from effnet_trading.evaluation import sweep as sweep_module

    conf = {"data": str(sample_dir / "btcusdt_1h.csv"), "start": "2025-06-01", "end": datetime.date(2025, 6, 30)}
    (cell,) = sweep_module.expand_grid(conf | {"split": "70/15/15", "models": ["small_cnn"]})
    frame = sweep_module._load(cell)
    assert str(frame.index[0]) == "2025-06-01 00:00:00+00:00" and str(frame.index[-1]) == "2025-06-30 23:00:00+00:00"
    assert sweep_module._cell_config(cell)["eval_config"]["split"] == [0.7, 0.15, 0.15]
