"""sweep on CI-sized data: grid expansion, a two-cell sweep in-process and on local Ray giving the same
table, resume skipping finished cells, and a failed cell reported while the others finish."""

import json
import shutil

import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from effnet_trading.errors import OutputError, SpecError
from effnet_trading.evaluation import sweep as sweep_module
from effnet_trading.evaluation.evaluate import EvalConfig
from effnet_trading.evaluation.options import eval_config_dict
from effnet_trading.evaluation.sweep import expand_grid, run_sweep
from effnet_trading.plugins.cli import main

# tiny cells: 16 px GADF of returns (conftest), 1 epoch on 300 samples, 2 folds, no null run
BASE = {
    "models": "small_cnn",
    "spec": "gadf",
    "window": 16,
    "size": 16,
    "returns": True,
    "folds": 2,
    "epochs": 1,
    "max_train_bars": 300,
    "baselines": "buy_and_hold,logreg",
    "null": False,
    "bootstrap": 50,
    "threads": 1,
    "model_kwargs": {"small_cnn": {"widths": [8, 16, 32]}},
}
# what differs between runners and runs; everything else must be equal
VOLATILE = ["seconds"]


@pytest.fixture(scope="module")
def csv(tmp_path_factory, planted):
    path = tmp_path_factory.mktemp("sweep_data") / "planted.csv"
    planted.iloc[:1500].to_csv(path)
    return path


@pytest.fixture(scope="module")
def in_process(tmp_path_factory, csv):
    cfg = BASE | {"data": str(csv), "seed": [0, 1]}
    out = tmp_path_factory.mktemp("sweep") / "inproc"
    return cfg, out, run_sweep(cfg, out, use_ray=False, progress=False)


def test_grid_expansion_and_config_errors(tmp_path):
    cells = expand_grid({"data": ["a/x.csv", "b/y.csv.gz"], "models": ["small_cnn", "compact"], "folds": 4})
    assert [c.id for c in cells] == [
        "x__models-small_cnn",
        "x__models-compact",
        "y__models-small_cnn",
        "y__models-compact",
    ]
    assert all(c.options["folds"] == 4 for c in cells) and cells[1].axes == {"data": "a/x.csv", "models": "compact"}
    assert [c.id for c in expand_grid({"data": "x.csv", "models": "small_cnn,compact"})] == ["cell"]
    with pytest.raises(SpecError, match=r"unknown sweep key\(s\) \['model'\]"):
        expand_grid({"data": "x.csv", "model": ["small_cnn"]})
    with pytest.raises(SpecError, match=r"axis \['seed'\] is an empty list"):
        expand_grid({"data": "x.csv", "seed": []})
    with pytest.raises(SpecError, match="needs data"):
        expand_grid({"models": "small_cnn"})
    with pytest.raises(SpecError, match="sweep cell models-nope"):  # refused before any cell runs
        run_sweep({"data": "x.csv", "models": ["nope"]}, tmp_path / "o", use_ray=False)
    (tmp_path / "mine.txt").write_text("keep")
    with pytest.raises(OutputError, match="mine.txt"):
        run_sweep({"data": "x.csv"}, tmp_path, use_ray=False)


def test_option_names_map_onto_evaluate_config():
    d = eval_config_dict({"max_train_bars": 500, "threads": 1, "spec": "gasf", "size": 16, "models": "a,b"})
    cfg = EvalConfig.from_dict(d | {"models": ["small_cnn"]})
    assert d["models"] == ["a", "b"] and cfg.max_train_bars == 500 and cfg.train.num_threads == 1
    # unset spec options keep evaluate's defaults (window 32, price levels)
    assert (cfg.spec.kind, cfg.spec.size, cfg.spec.window, cfg.spec.returns) == ("gasf", (16, 16), 32, False)
    with pytest.raises(SpecError, match="model_kwargs is not valid JSON"):
        eval_config_dict({"model_kwargs": "{oops"})


@pytest.mark.slow
def test_two_cells_in_process(in_process):
    cfg, out, table = in_process
    assert set(table["cell"]) == {"seed-0", "seed-1"} and set(table["status"]) == {"ok"}
    assert set(table["strategy"]) == {"small_cnn", "buy_and_hold", "logreg"}
    saved = pd.read_parquet(out / "results.parquet")
    pd.testing.assert_frame_equal(saved, table)
    for c in ("seed-0", "seed-1"):
        assert (out / "cells" / c / "report.html").exists() and (out / "cells" / c / "folds" / "fold_1.json").exists()
    # each cell is one evaluate run: the sweep row equals the cell's own results.json
    res = json.loads((out / "cells" / "seed-1" / "results.json").read_text())
    row = table[(table["cell"] == "seed-1") & (table["strategy"] == "logreg")].iloc[0]
    assert row["accuracy"] == res["strategies"]["logreg"]["classification"]["accuracy_ci"]["estimate"]
    ece = res["strategies"]["logreg"]["classification"]["ece"]
    assert 0.0 <= ece < 1.0 and row["ece"] == ece  # calibration, beside the log-loss
    assert res["config"]["train"]["seed"] == 1 and res["config"]["max_train_bars"] == 300
    md, page = (out / "results.md").read_text(), (out / "report.html").read_text()
    assert "[seed-0](cells/seed-0/report.html)" in md and "Spread across seeds" in md and "precision" in md
    assert "| log-loss | ECE |" in md and f"| {row['log_loss']:.3f} | {ece:.3f} |" in md
    assert '<a href="cells/seed-1/report.html">seed-1</a>' in page
    meta = json.loads((out / "sweep.json").read_text())["meta"]
    assert meta["runner"] == "in-process" and meta["ran"] == 2 and meta["failed"] == 0


@pytest.mark.slow
def test_resume_skips_finished_cells(in_process, monkeypatch):
    cfg, out, table = in_process
    calls = []
    original = sweep_module.run_cell

    def counting(frame, cell, cell_dir, device=None):
        calls.append(cell.id)
        return original(frame, cell, cell_dir, device)

    monkeypatch.setattr(sweep_module, "run_cell", counting)
    again = run_sweep(cfg, out, use_ray=False, progress=False)
    assert calls == [] and json.loads((out / "sweep.json").read_text())["meta"]["skipped"] == 2
    shutil.rmtree(out / "cells" / "seed-1")  # as if the run had been killed during this cell
    rerun = run_sweep(cfg, out, use_ray=False, progress=False)
    assert calls == ["seed-1"]
    # same seeds -> same numbers
    pd.testing.assert_frame_equal(again.drop(columns=VOLATILE), table.drop(columns=VOLATILE))
    pd.testing.assert_frame_equal(rerun.drop(columns=VOLATILE), table.drop(columns=VOLATILE))


@pytest.mark.slow
def test_table_only_writes_the_finished_cells_and_runs_nothing(in_process, tmp_path, monkeypatch):
    cfg, out, table = in_process
    part = tmp_path / "part"
    shutil.copytree(out, part)
    shutil.rmtree(part / "cells" / "seed-1")
    running = part / "cells" / ".seed-1.tmp-abc"  # a sweep still running into the same folder
    running.mkdir()

    def refuse(*args, **kwargs):
        raise AssertionError("--table-only must not run a cell")

    monkeypatch.setattr(sweep_module, "run_cell", refuse)
    conf = tmp_path / "sweep.toml"
    conf.write_text(
        "\n".join(f"{k} = {json.dumps(v)}" for k, v in cfg.items() if k != "model_kwargs")
        + "\n[model_kwargs.small_cnn]\nwidths = [8, 16, 32]\n"
    )
    res = CliRunner().invoke(main, ["sweep", str(conf), "--out", str(part), "--table-only", "--no-progress"])
    assert res.exit_code == 0, res.output
    assert running.is_dir()  # the running sweep's work is left alone
    got = pd.read_parquet(part / "results.parquet")
    assert list(got.loc[got["cell"] == "seed-1", "status"]) == ["pending"]
    done = got[got["cell"] == "seed-0"].reset_index(drop=True)
    want = table[table["cell"] == "seed-0"].reset_index(drop=True)
    cols = ["strategy", "accuracy", "sharpe", "total_return"]
    pd.testing.assert_frame_equal(done[cols], want[cols])
    md = (part / "results.md").read_text()
    assert "1 not run yet: a partial table" in md and "- seed-1" in md and "Failed cells" not in md
    meta = json.loads((part / "sweep.json").read_text())["meta"]
    assert (meta["pending"], meta["skipped"], meta["failed"], meta["ran"]) == (1, 1, 0, 0)
    assert meta["runner"] == "none (table only)" and "1 finished before" in md


def test_table_only_before_any_cell_finished_keeps_the_running_sweep(tmp_path, monkeypatch):
    """No cell finished yet: cells/ holds only the running cell's still-empty work folder, which a
    replace of --out would delete (the sweep folder is merged into, never replaced)."""
    monkeypatch.setattr(sweep_module, "run_cell", lambda *a, **k: pytest.fail("--table-only ran a cell"))
    cfg = BASE | {"data": str(tmp_path / "x.csv"), "seed": [0, 1]}
    out = tmp_path / "out"
    running = out / "cells" / ".seed-0.tmp-abc"
    running.mkdir(parents=True)
    table = run_sweep(cfg, out, use_ray=False, progress=False, table_only=True)
    assert running.is_dir() and set(table["status"]) == {"pending"}
    assert "2 not run yet" in (out / "results.md").read_text()


def test_only_runs_the_matching_cells_and_lists_the_others(tmp_path, monkeypatch, capsys):
    """--only PATTERN: the matching unfinished cells run, the others are listed as not run yet."""
    calls = []

    def fake(frame, cell, cell_dir, device=None):
        calls.append(cell.id)
        return {"status": "failed", "seconds": 0.0, "error": "fake cell"}

    monkeypatch.setattr(sweep_module, "run_cell", fake)
    monkeypatch.setattr(sweep_module, "_load", lambda cell: pd.DataFrame())
    cfg = BASE | {"data": str(tmp_path / "x.csv"), "seed": [0, 1, 2], "models": ["small_cnn", "compact"]}
    cells = tmp_path / "out" / "cells"
    stale, other = cells / ".models-compact__seed-1.tmp-old", cells / ".models-small_cnn__seed-0.tmp-live"
    stale.mkdir(parents=True)
    other.mkdir()  # another sweep process's cell in progress (a disjoint --only): left alone
    table = run_sweep(cfg, tmp_path / "out", use_ray=False, progress=False, only=["*compact__seed-1", "*seed-2"])
    assert sorted(calls) == ["models-compact__seed-1", "models-compact__seed-2", "models-small_cnn__seed-2"]
    log = capsys.readouterr().err  # a line per cell, also without progress bars (a sweep's log file)
    assert "sweep: 3 of 6 cell(s) to run (0 finished before), in-process" in log
    assert f"cell {calls[0]} started" in log and f"[1/3] cell {calls[0]}: failed: fake cell (0 s)" in log
    assert not stale.exists() and other.is_dir()
    status = table.groupby("cell")["status"].first()
    assert set(status[status == "pending"].index) == {
        "models-small_cnn__seed-0",
        "models-small_cnn__seed-1",
        "models-compact__seed-0",
    }
    assert json.loads((tmp_path / "out" / "sweep.json").read_text())["meta"]["pending"] == 3
    calls.clear()
    run_sweep(cfg, tmp_path / "out", use_ray=False, progress=False, only="*compact__seed-0")  # one pattern as a str
    assert calls == ["models-compact__seed-0"]


def test_only_matching_no_cell_is_refused_before_anything_runs(tmp_path):
    conf = tmp_path / "s.toml"
    conf.write_text(f'data = "{tmp_path / "x.csv"}"\nseed = [0, 1]\n')
    res = CliRunner().invoke(main, ["sweep", str(conf), "--out", str(tmp_path / "o"), "--only", "seed-7"])
    assert res.exit_code == 1 and "--only seed-7 matches no cell" in res.output and "seed-0, seed-1" in res.output
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_a_failed_cell_is_reported_and_the_others_finish(csv, tmp_path):
    conf = tmp_path / "sweep.toml"
    lines = [f"{k} = {json.dumps(v)}" for k, v in BASE.items() if k != "model_kwargs"]
    lines += [f'data = "{csv}"', "seed = 0", "last_bars = [1500, 40]"]  # 40 bars: too few for 2 folds
    conf.write_text("\n".join(lines) + "\n[model_kwargs]\nsmall_cnn = {widths = [8, 16, 32]}\n")
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["sweep", str(conf), "--out", str(out), "--no-ray", "--no-progress"])
    assert result.exit_code == 1 and "1 cell(s) failed: last_bars-40" in result.output, result.output
    table = pd.read_parquet(out / "results.parquet")
    bad = table[table["cell"] == "last_bars-40"]
    assert len(bad) == 1 and bad["status"].iloc[0] == "failed" and "TrainingError" in bad["error"].iloc[0]
    good = table[table["cell"] == "last_bars-1500"]
    assert set(good["status"]) == {"ok"} and len(good) == 3
    assert "Failed cells:" in (out / "results.md").read_text() and not (out / "cells" / "last_bars-40").exists()


@pytest.mark.slow
def test_local_ray_gives_the_in_process_table(in_process, tmp_path):
    import ray

    cfg, _, table = in_process
    ray.init(num_cpus=2, include_dashboard=False, logging_level="error", log_to_driver=False)
    try:
        got = run_sweep(cfg, tmp_path / "ray", progress=False)  # Ray is installed: the default runner
    finally:
        ray.shutdown()
    assert json.loads((tmp_path / "ray" / "sweep.json").read_text())["meta"]["runner"] == "ray (local)"
    pd.testing.assert_frame_equal(got.drop(columns=VOLATILE), table.drop(columns=VOLATILE))


_EXAMPLE_CONFIGS = {  # every shipped sweep config and its number of cells
    "btc_small": 2,
    "evidence": 108,
    "literature": 3,
    "evidence_next": 4,
    "evidence_cpu": 27,
    "evidence_cpu_seeds": 12,
    "evidence_cpu_seeds_eth_5m": 6,
    "evidence_cpu_full": 3,
    "evidence_cpu_uncapped": 2,
    "evidence_cpu_seeds_compact": 9,
    "evidence_cpu_seeds_b0": 6,
    "evidence_cpu_seeds_b0_gasf": 6,
    "evidence_cpu_64px": 3,
    "evidence_cpu_b3": 3,
    "literature_gpu": 25,
    "literature_gpu_null": 4,
}


def test_every_shipped_sweep_config_is_checked():
    from pathlib import Path

    shipped = {p.stem for p in (Path(__file__).resolve().parents[1] / "examples" / "sweeps").glob("*.toml")}
    assert shipped == set(_EXAMPLE_CONFIGS)


@pytest.mark.parametrize("name, n_cells", list(_EXAMPLE_CONFIGS.items()))
def test_example_configs_build_every_cell(name, n_cells):
    """The shipped sweep configs stay valid: every cell builds its EvalConfig (nothing runs)."""
    from pathlib import Path

    from effnet_trading.config import read_toml

    conf = read_toml(Path(__file__).resolve().parents[1] / "examples" / "sweeps" / f"{name}.toml")
    cells = expand_grid(conf)
    assert len(cells) == n_cells and len({c.id for c in cells}) == n_cells
    for cell in cells:
        cfg = sweep_module._cell_config(cell)["eval_config"]
        assert cfg["fees"] == 0.001 and cfg["slippage"] == 0.0005


def test_a_gpu_sweep_without_a_gpu_is_refused_before_anything_is_written(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # also where a GPU is present
    conf = tmp_path / "s.toml"
    conf.write_text('data = "x.csv"\ngpus_per_cell = 0.5\n')
    result = CliRunner().invoke(main, ["sweep", str(conf), "--out", str(tmp_path / "o"), "--no-ray"])
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert "gpus_per_cell = 0.5: device 'cuda' asks for a GPU" in result.output and "gpus_per_cell = 0" in result.output
    assert not (tmp_path / "o").exists()
    # --table-only runs nothing, so it needs no GPU
    assert CliRunner().invoke(main, ["sweep", str(conf), "--out", str(tmp_path / "o"), "--table-only"]).exit_code == 0


@pytest.mark.slow
def test_local_ray_without_enough_gpus_is_refused_not_left_waiting(tmp_path):
    """A Ray task asking for a GPU the cluster lacks is never scheduled: the sweep would wait forever."""
    import ray

    ray.init(num_cpus=1, num_gpus=0, include_dashboard=False, logging_level="error", log_to_driver=False)
    try:
        with pytest.raises(SpecError, match=r"gpus_per_cell = 0.5, but this machine's local Ray has 0 GPU"):
            run_sweep({"data": "x.csv", "gpus_per_cell": 0.5}, tmp_path / "o", progress=False)
    finally:
        ray.shutdown()
    assert not (tmp_path / "o").exists()  # refused before anything was written


def test_ray_resources_a_cell_cannot_get_are_refused_locally_and_warned_on_a_cluster(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    check = sweep_module._check_ray_resources
    check({"CPU": 2.0, "GPU": 1.0}, 2, 0.5, None)  # fits: nothing said
    with pytest.raises(SpecError, match=r"cpus_per_cell = 4, but this machine's local Ray has 2 CPU"):
        check({"CPU": 2.0}, 4, 0, None)
    with pytest.raises(SpecError, match=r"gpus_per_cell = 1, but this machine's local Ray has 0 GPU"):
        check({"CPU": 2.0}, 1, 1, None)
    with pytest.warns(UserWarning, match=r"the Ray cluster at auto has 0 GPU\(s\) now"):
        check({"CPU": 8.0}, 1, 1, "auto")


def test_out_mid_merge_of_another_sweeps_table_is_ours(tmp_path):
    """run_folder's merge takes the manifest out first and puts it back last; a sweep process starting
    in that moment beside it (disjoint --only) must not take the table files for someone else's."""
    out = tmp_path / "o"
    (out / "cells").mkdir(parents=True)
    for name in ("results.md", "results.parquet", "report.html", "sweep.json"):
        (out / name).write_text("")
    with pytest.raises(OutputError, match="results.md"):  # a bare cells/ folder is not yet a sweep's
        sweep_module._check_out(out, overwrite=False)
    (out / "cells" / ".seed-1.tmp-abc").mkdir()  # a cell at work
    sweep_module._check_out(out, overwrite=False)  # no manifest: mid-merge
    (out / "cells" / ".seed-1.tmp-abc").rmdir()
    (out / "cells" / "seed-0").mkdir()
    (out / "cells" / "seed-0" / "effnet-run.json").write_text(json.dumps({"command": "sweep cell"}))
    sweep_module._check_out(out, overwrite=False)  # a finished cell
    (out / "mine.txt").write_text("keep")
    with pytest.raises(OutputError, match=r"something else \(mine.txt\)"):
        sweep_module._check_out(out, overwrite=False)
    other = tmp_path / "p"
    other.mkdir()
    (other / "results.md").write_text("")  # no cells/: not a sweep folder
    with pytest.raises(OutputError, match="results.md"):
        sweep_module._check_out(other, overwrite=False)


@pytest.mark.parametrize(
    "text, extra, fragment",
    [
        ('data = "x.csv"\nmodel = ["small_cnn"]\n', [], "unknown sweep key(s) ['model']"),
        ('data = "x.csv"\n', ["--no-ray", "--address", "auto"], "--address needs Ray"),
    ],
)
def test_cli_config_errors_are_one_line(tmp_path, text, extra, fragment):
    conf = tmp_path / "s.toml"
    conf.write_text(text)
    result = CliRunner().invoke(main, ["sweep", str(conf), "--out", str(tmp_path / "o"), *extra])
    assert result.exit_code == 1 and fragment in result.output and "Traceback" not in result.output, result.output
    assert not (tmp_path / "o").exists()  # refused before anything is written


def test_ruined_folds_are_flagged_in_the_cell_and_sweep_tables(in_process, tmp_path):
    """A cell whose model was ruined in a fold is marked in both tables; a cell written before the ruin rule
    (no ruined_folds, equity below zero in a fold) is counted from its fold files."""
    from effnet_trading.evaluation.eval_report import markdown_table

    cfg, out, _ = in_process
    part = tmp_path / "part"
    shutil.copytree(out, part)
    new, old = part / "cells" / "seed-0", part / "cells" / "seed-1"
    res = json.loads((new / "results.json").read_text())
    res["strategies"]["small_cnn"]["ruined_folds"] = 2
    (new / "results.json").write_text(json.dumps(res))
    assert "| small_cnn ⚠ruined in 2 of 2 folds |" in markdown_table(res).replace(" ⚠collapsed", "")
    res = json.loads((old / "results.json").read_text())
    res["strategies"]["small_cnn"].pop("ruined_folds")
    (old / "results.json").write_text(json.dumps(res))
    fold = json.loads((old / "folds" / "fold_1.json").read_text())
    fold["strategies"]["small_cnn"]["perf"].pop("ruined")
    fold["strategies"]["small_cnn"]["perf"]["max_drawdown"] = -1.4
    (old / "folds" / "fold_1.json").write_text(json.dumps(fold))
    table = run_sweep(cfg, part, table_only=True, progress=False)
    got = table.set_index(["cell", "strategy"])["ruined_folds"]
    assert (got["seed-0", "small_cnn"], got["seed-1", "small_cnn"], got["seed-0", "logreg"]) == (2, 1, 0)
    md = (part / "results.md").read_text().replace(" ⚠collapsed", "")
    assert "small_cnn ⚠ruined in 2 of 2 folds |" in md and "small_cnn ⚠ruined in 1 of 2 folds |" in md
    assert "logreg ⚠ruined" not in md


def test_the_table_sees_cells_that_other_processes_finished_or_moved_meanwhile(in_process, tmp_path, monkeypatch):
    """Two --only processes share one --out: at the end each lists the cells as they are then, not as they
    were at its start (a cell finished by the other process is in the table; one moved away is pending)."""
    cfg, out, _ = in_process
    part = tmp_path / "part"
    shutil.copytree(out, part)
    shutil.rmtree(part / "cells" / "seed-1")

    def other_process_meanwhile(frame, cell, cell_dir, device=None):
        shutil.copytree(out / "cells" / cell.id, cell_dir)  # this process's cell
        shutil.rmtree(part / "cells" / "seed-0")  # finished at the start, moved away since
        return {"status": "ok", "seconds": 0.0, "error": None}

    monkeypatch.setattr(sweep_module, "run_cell", other_process_meanwhile)
    table = run_sweep(cfg, part, use_ray=False, progress=False, only="seed-1")
    assert dict(table.groupby("cell")["status"].first()) == {"seed-0": "pending", "seed-1": "ok"}

    def finished_by_the_other(frame, cell, cell_dir, device=None):
        shutil.copytree(out / "cells" / cell.id, cell_dir)
        shutil.copytree(out / "cells" / "seed-1", part / "cells" / "seed-1")  # the other process's cell
        return {"status": "ok", "seconds": 0.0, "error": None}

    shutil.rmtree(part / "cells" / "seed-1")
    monkeypatch.setattr(sweep_module, "run_cell", finished_by_the_other)
    table = run_sweep(cfg, part, use_ray=False, progress=False, only="seed-0")
    assert dict(table.groupby("cell")["status"].first()) == {"seed-0": "ok", "seed-1": "ok"}
    assert "not run yet" not in (part / "results.md").read_text()


def test_seed_spread_says_which_seeds_never_traded():
    """A seed whose model never trades has no Sharpe: the spread is over the others, and says so."""
    from effnet_trading.evaluation.sweep_report import _seed_spread

    rows = [
        {"status": "ok", "models": "m", "seed": s, "strategy": "m", "accuracy": 0.4, "sharpe": sh}
        for s, sh in ((0, float("nan")), (1, 0.5), (2, -0.3))
    ] + [
        {"status": "ok", "models": "m", "seed": s, "strategy": "idle", "accuracy": 0.5, "sharpe": float("nan")}
        for s in (0, 1)
    ]
    md = _seed_spread(pd.DataFrame(rows), ["models", "seed"])
    assert "| m | m | 3 | 0.400 ± 0.000 | 0.10 ± 0.57 (1 of 3 never traded) | -0.30 … 0.50 |" in md
    assert "| m | idle | 2 | 0.500 ± 0.000 | n/a (2 of 2 never traded) | – |" in md
