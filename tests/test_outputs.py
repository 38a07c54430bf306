"""Run folders: atomic moves into place, foreign files never deleted, resume only with the same config."""

import json
import os

import pytest

from effnet_trading.errors import OutputError
from effnet_trading.outputs import (
    MANIFEST_FILE,
    atomic_file,
    config_differences,
    read_manifest,
    resumable_folder,
    run_folder,
)


def _write_run(out, text, command="backtest", config=None, **kw):
    with run_folder(out, command=command, config=config or {"threshold": 0.5}, **kw) as work:
        (work / "summary.json").write_text(text)
        (work / "report.html").write_text("<html>" + text)
    return out


def test_new_folder_gets_files_and_manifest(tmp_path):
    data = tmp_path / "bars.csv"
    data.write_text("timestamp,open\n")
    out = tmp_path / "runs" / "a"
    with run_folder(out, command="backtest", config={"threshold": 0.5, "spans": (1, 2)}, inputs={"data": data}) as work:
        assert work.parent == out.parent and work != out and not out.exists()  # a temporary sibling
        (work / "summary.json").write_text("{}")
        (work / "sub").mkdir()
        (work / "sub" / "x.csv").write_text("1")
    m = read_manifest(out)
    assert m["complete"] is True and m["command"] == "backtest" and m["config"] == {"threshold": 0.5, "spans": [1, 2]}
    assert m["files"] == ["sub/x.csv", "summary.json"]
    import hashlib

    assert m["inputs"]["data"]["sha256"] == hashlib.sha256(data.read_bytes()).hexdigest()
    assert m["package_version"] and m["started"] <= m["finished"]
    assert sorted(p.name for p in out.parent.iterdir()) == ["a"]  # no temporary folder left behind


def test_interrupted_run_leaves_the_old_run_intact(tmp_path):
    out = _write_run(tmp_path / "r", "old")
    before = {p.name: p.read_text() for p in out.iterdir()}
    with pytest.raises(KeyboardInterrupt):
        with run_folder(out, command="backtest", config={"threshold": 0.5}) as work:
            (work / "summary.json").write_text("new")  # written, then the run dies before the report
            raise KeyboardInterrupt
    assert {p.name: p.read_text() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]


def test_own_run_is_replaced_whole(tmp_path):
    out = _write_run(tmp_path / "r", "old")
    with run_folder(out, command="backtest", config={"threshold": 0.6}) as work:
        (work / "summary.json").write_text("new")  # this run writes no report.html
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST_FILE, "summary.json"]  # the stale report is gone
    assert (out / "summary.json").read_text() == "new"


@pytest.mark.parametrize("cwd", [False, True])
def test_foreign_folder_refused_and_nothing_deleted(tmp_path, monkeypatch, cwd):
    target = tmp_path / "mine"
    target.mkdir()
    (target / "thesis.tex").write_text("precious")
    (target / "summary.json").write_text("someone else's")
    out = target
    if cwd:  # `--out .` in a folder of the user's own files
        monkeypatch.chdir(target)
        out = "."
    with pytest.raises(OutputError) as exc:
        _write_run(out, "new")
    msg = str(exc.value)
    assert "refusing to write into" in msg and "summary.json, thesis.tex" in msg and "--overwrite" in msg
    assert (target / "thesis.tex").read_text() == "precious" and (
        target / "summary.json"
    ).read_text() == "someone else's"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]


@pytest.mark.parametrize("cwd", [False, True])
def test_overwrite_replaces_only_own_files(tmp_path, monkeypatch, cwd):
    target = tmp_path / "mine"
    target.mkdir()
    (target / "thesis.tex").write_text("precious")
    out = target
    if cwd:
        monkeypatch.chdir(target)
        out = "."
    _write_run(out, "one", overwrite=True)
    assert (target / "thesis.tex").read_text() == "precious" and (target / "summary.json").read_text() == "one"
    # a second run (its own files now known) replaces them and drops its own stale files only
    with run_folder(out, command="backtest", config={}, overwrite=True) as work:
        (work / "summary.json").write_text("two")
    assert sorted(p.name for p in target.iterdir()) == [MANIFEST_FILE, "summary.json", "thesis.tex"]
    assert (target / "summary.json").read_text() == "two" and read_manifest(target)["files"] == ["summary.json"]


def test_other_commands_run_is_foreign(tmp_path):
    out = _write_run(tmp_path / "r", "x", command="evaluate")
    with pytest.raises(OutputError, match="not an effnet-trading run folder"):
        _write_run(out, "y", command="backtest")


def test_incomplete_manifest_is_not_a_run(tmp_path):
    out = _write_run(tmp_path / "r", "x")
    m = read_manifest(out)
    m["complete"] = False
    (out / MANIFEST_FILE).write_text(json.dumps(m))
    with pytest.raises(OutputError, match="refusing"):
        _write_run(out, "y")


def test_resume_needs_the_same_config(tmp_path):
    out = _write_run(tmp_path / "r", "fold0", config={"threshold": 0.5, "folds": 3, "fees": 0.001})
    with pytest.raises(OutputError) as exc:
        with run_folder(out, command="backtest", config={"threshold": 0.6, "folds": 3, "fees": 0.001}, resume=True):
            pass
    assert "other settings (threshold: 0.5 -> 0.6)" in str(exc.value)
    assert (out / "summary.json").read_text() == "fold0"
    with run_folder(out, command="backtest", config={"threshold": 0.5, "folds": 3, "fees": 0.001}, resume=True) as work:
        assert (work / "summary.json").read_text() == "fold0"  # the stored files continue
        (work / "fold1.json").write_text("fold1")
    assert sorted(read_manifest(out)["files"]) == ["fold1.json", "report.html", "summary.json"]


def test_config_differences_nested():
    assert config_differences({"a": 1, "b": {"c": 2}}, {"a": 1, "b": {"c": 3}, "d": 4}) == [
        "b.c: 2 -> 3",
        "d: '<unset>' -> 4",
    ]


def test_out_is_a_file(tmp_path):
    f = tmp_path / "f"
    f.write_text("x")
    with pytest.raises(OutputError, match="is a file"):
        _write_run(f, "y")
    assert f.read_text() == "x"


def test_empty_existing_folder_is_used(tmp_path):
    out = tmp_path / "empty"
    out.mkdir()
    _write_run(out, "x")
    assert (out / "summary.json").read_text() == "x"
    assert os.path.isfile(out / MANIFEST_FILE)


# -- resumable runs (train, evaluate): written in place, complete only at the end ----------------


class _Stop(Exception):
    pass


def _resumable(out, files, config=None, **kw):
    with resumable_folder(out, command="train", config=config or {"epochs": 2}, **kw) as work:
        assert work == out and read_manifest(out)["complete"] is False  # an unfinished run says so
        for name, text in files.items():
            (work / name).parent.mkdir(parents=True, exist_ok=True)
            (work / name).write_text(text)
            if text == "STOP":
                raise _Stop


def test_resumable_run_is_marked_complete_with_its_files(tmp_path):
    out = tmp_path / "t"
    _resumable(out, {"ckpt/epoch_001.pt": "1", "metrics.json": "{}"})
    m = read_manifest(out)
    assert m["complete"] is True and m["files"] == ["ckpt/epoch_001.pt", "metrics.json"] and m["kept"] == []


def test_interrupted_resumable_run_stays_unfinished_and_resumes_with_same_config_only(tmp_path):
    out = tmp_path / "t"
    with pytest.raises(_Stop):
        _resumable(out, {"ckpt/epoch_001.pt": "1", "ckpt/epoch_002.pt": "STOP"})
    assert read_manifest(out)["complete"] is False and (out / "ckpt/epoch_001.pt").exists()
    with pytest.raises(OutputError, match="epochs: 2 -> 3"):
        _resumable(out, {}, config={"epochs": 3}, resume=True)
    assert (out / "ckpt/epoch_001.pt").read_text() == "1"  # a refused resume touches nothing
    data = tmp_path / "bars.csv"
    data.write_text("a")
    _resumable(out, {}, resume=True, inputs={"data": data})
    data.write_text("b")
    with pytest.raises(OutputError, match="input data is not the file the stored run read"):
        _resumable(out, {}, resume=True, inputs={"data": data})
    _resumable(out, {"ckpt/epoch_003.pt": "3"}, resume=True, ignore=("progress",))
    m = read_manifest(out)
    assert m["complete"] is True and "ckpt/epoch_001.pt" in m["files"] and "ckpt/epoch_003.pt" in m["files"]


def test_resumable_restart_removes_only_its_own_stale_files(tmp_path):
    out = tmp_path / "t"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match="refusing to write into"):
        _resumable(out, {"fold_0.json": "old"})
    _resumable(out, {"fold_0.json": "old", "fold_1.json": "old"}, overwrite=True)
    assert read_manifest(out)["kept"] == ["notes.txt"]
    _resumable(out, {"fold_0.json": "new"})  # a fresh run (no resume): the old folds go, the user's file stays
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST_FILE, "fold_0.json", "notes.txt"]
    assert (out / "notes.txt").read_text() == "mine" and (out / "fold_0.json").read_text() == "new"


def test_atomic_file_keeps_the_old_file_when_the_write_fails(tmp_path):
    path = tmp_path / "x.npy"
    path.write_text("old")
    with pytest.raises(_Stop):
        with atomic_file(path) as tmp:
            assert tmp.suffix == ".npy" and tmp.parent == tmp_path
            tmp.write_text("half")
            raise _Stop
    assert path.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["x.npy"]
    with atomic_file(path) as tmp:
        tmp.write_text("new")
    assert path.read_text() == "new" and oct(path.stat().st_mode & 0o777) == "0o644"
