"""Every command, driven through every class of bad input a user can cause, ends in a short message
with exit status 1 or 2 — never a traceback (the CLI group maps errors in one place; --debug shows
the traceback instead)."""

from __future__ import annotations

import gzip
import shutil

import pytest
from _helpers import edit_card
from click.testing import CliRunner

from effnet_trading.plugins.cli import main


@pytest.fixture(scope="module")
def files(tmp_path_factory, planted, tiny_model_dir):
    """Bad inputs of every class, written once for the module."""
    d = tmp_path_factory.mktemp("bad")
    ok = d / "ok.csv"
    planted.iloc[:400].to_csv(ok, index_label="timestamp")
    short = d / "short.csv"
    planted.iloc[:5].to_csv(short, index_label="timestamp")
    dayfirst = d / "dayfirst.csv"
    frame = planted.iloc[:400].copy()
    frame.index = frame.index.strftime("%d/%m/%Y %H:%M")
    frame.to_csv(dayfirst, index_label="timestamp")
    garbage = d / "garbage.csv"
    garbage.write_bytes(gzip.compress(b"\x00\x01 not a csv") + b"\xff\xfe")
    nocols = d / "nocols.csv"
    nocols.write_text("a,b\n1,2\n3,4\n")
    foreign = d / "foreign"
    foreign.mkdir()
    (foreign / "thesis.txt").write_text("do not delete")
    a_file = d / "a_file"
    a_file.write_text("x")
    corrupt_model = d / "corrupt_model"
    shutil.copytree(tiny_model_dir, corrupt_model)
    (corrupt_model / "model.onnx").write_bytes(b"not an onnx graph")
    newer_card = edit_card(tiny_model_dir, lambda card: card.update(card_version=999), copy_to=d / "newer_card")
    return {
        "ok": ok,
        "short": short,
        "dayfirst": dayfirst,
        "garbage": garbage,
        "nocols": nocols,
        "missing": d / "nope.csv",
        "foreign": foreign,
        "a_file": a_file,
        "model": tiny_model_dir,
        "corrupt_model": corrupt_model,
        "newer_card": newer_card,
        "no_model": d / "no_model",
        "out": d / "out",
    }


# (command line with {placeholders}, message fragment); every case must exit 1 or 2 without a traceback
CASES = [
    ("render --data {missing} --npy {out}/x.npy", "does not exist"),
    ("render --data {garbage} --npy {out}/x.npy", ""),
    ("render --data {nocols} --npy {out}/x.npy", "timestamp"),
    ("render --data {dayfirst} --npy {out}/x.npy", "--date-format"),
    ("render --data {ok} --kind gasf --size 100000 --npy {out}/x.npy", "larger than 4096"),
    ("train --data {short} --out {out}/t", ""),
    ("train --data {ok} --lr -1 --out {out}/t", "lr=-1.0 must be > 0"),
    ("train --data {ok} --device tpu --out {out}/t", "device='tpu'"),
    ("train --data {dayfirst} --out {out}/t", "--date-format"),
    ("backtest --data {ok} --model {no_model} --out {out}/b", "is not a model folder"),
    ("backtest --data {short} --model {model} --out {out}/b", "needs at least"),
    ("backtest --data {dayfirst} --model {model} --out {out}/b", "--date-format"),
    ("backtest --data {ok} --model {corrupt_model} --out {out}/b", "model.onnx"),
    ("backtest --data {ok} --model {newer_card} --out {out}/b", "card_version"),
    ("backtest --data {missing} --model {model} --out {out}/b", ""),
    ("backtest --data {ok} --model {model} --out {foreign}", "refusing to write into"),
    ("backtest --data {ok} --model {model} --out {a_file}", ""),
    ("evaluate --data {garbage} --out {out}/e", ""),
    ("evaluate --data {nocols} --out {out}/e", "timestamp"),
    ("zoo verify {corrupt_model}", "model.onnx"),
    ("zoo verify {newer_card}", "card_version"),
    ("zoo verify {no_model}", ""),
    ("zoo export --model small_cnn --out {foreign}", "refusing to write into"),
    ("train --data {ok} --epochs 1 --out {foreign}", "refusing to write into"),
    ("evaluate --data {ok} --out {foreign}", "refusing to write into"),
    ("render --data {ok} --npy {foreign}/thesis.txt", "must end in .npy"),
    ("render --data {ok} --png {foreign}/thesis.txt", "refusing to overwrite"),
    ("sample-data --out {foreign}", "refusing to write into"),
    ("demo --out {foreign} --no-planted-check", "refusing to write into"),
]


@pytest.mark.parametrize("line, fragment", CASES, ids=[c[0].split(" --out")[0][:60] for c in CASES])
def test_bad_input_gives_a_message_not_a_traceback(files, line, fragment):
    args = line.format(**{k: str(v) for k, v in files.items()}).split()
    res = CliRunner().invoke(main, args)
    out = res.output
    assert res.exit_code in (1, 2), f"exit {res.exit_code}: {out[-800:]}"
    assert "Traceback" not in out, out[-2000:]
    assert not isinstance(res.exception, Exception) or isinstance(res.exception, SystemExit), repr(res.exception)
    assert fragment in out, out[-800:]
    assert (files["foreign"] / "thesis.txt").read_text() == "do not delete"  # nothing of the user's is ever lost


def test_debug_shows_the_traceback(files):
    res = CliRunner().invoke(
        main,
        [
            "--debug",
            "backtest",
            "--data",
            str(files["ok"]),
            "--model",
            str(files["corrupt_model"]),
            "--out",
            str(files["out"] / "dbg"),
        ],
    )
    assert res.exit_code != 0 and res.exception is not None and not isinstance(res.exception, SystemExit)
