"""`effnet-trading zoo`: list, export, verify, bench, card through click's CliRunner."""

import json

import pytest
from _helpers import zoo_export_args
from click.testing import CliRunner

from effnet_trading.plugins.cli import main


@pytest.fixture(scope="module")
def runner():
    return CliRunner()


@pytest.fixture(scope="module")
def calib_csv(tmp_path_factory, planted):
    path = tmp_path_factory.mktemp("cli") / "calib.csv"
    planted.iloc[:700].to_csv(path, index_label="timestamp")
    return path


@pytest.fixture(scope="module")
def exported(runner, tmp_path_factory, calib_csv):
    out = tmp_path_factory.mktemp("cli_models") / "zoo" / "small"
    extra = ["--fp16", "--int8", "--calib-data", str(calib_csv)]
    res = runner.invoke(main, zoo_export_args(out, kind="gasf", window=32, size=32, extra=extra))
    assert res.exit_code == 0, res.output
    return out, res.output


def test_export_writes_folder_with_variants(exported):
    out, output = exported
    from effnet_trading.model_zoo.card import load_card

    card = load_card(out)
    assert card.architecture == "small_cnn" and card.input_shape == (1, 32, 32)
    assert set(card.variants) == {"fp16", "int8"} and card.variants["int8"]["checked_on"] == "held-out images"
    assert card.training["weights"] == "untrained (random init)"
    assert f"exported small_cnn -> {out}" in output and "int8: max |dp| vs fp32" in output


def test_export_with_weights_and_channels(runner, tmp_path):
    import torch

    from effnet_trading.model_zoo import create_model
    from effnet_trading.model_zoo.runtime import Predictor

    torch.manual_seed(5)
    model = create_model("small_cnn", in_chans=2).eval()
    torch.save(model.state_dict(), tmp_path / "w.pt")
    out = tmp_path / "m"
    extra = ["--channels", "close,volume", "--weights", str(tmp_path / "w.pt")]
    res = runner.invoke(main, zoo_export_args(out, kind="gadf", window=16, size=16, extra=extra))
    assert res.exit_code == 0, res.output
    p = Predictor(out, "cpu")
    assert p.input_shape == (2, 16, 16)
    x = torch.rand(3, 2, 16, 16)
    with torch.no_grad():  # the loaded weights are the ones exported
        ref = torch.softmax(model((x - 0.5) / 0.25), 1).numpy()
    assert abs(p.predict(x.numpy()) - ref).max() < 1e-4


def test_export_errors(runner, tmp_path):
    res = runner.invoke(main, ["zoo", "export", "--model", "small_cnn", "--int8", "--out", str(tmp_path / "x")])
    assert res.exit_code == 2 and "--int8 needs --calib-data" in res.output
    res = runner.invoke(main, ["zoo", "export", "--model", "no_such_net", "--out", str(tmp_path / "x")])
    assert res.exit_code == 1 and "unknown model 'no_such_net'" in res.output
    bad = tmp_path / "bad.pt"
    import torch

    torch.save({"nope": torch.zeros(1)}, bad)
    res = runner.invoke(
        main, ["zoo", "export", "--model", "small_cnn", "--weights", str(bad), "--out", str(tmp_path / "x")]
    )
    assert res.exit_code == 1 and "do not fit small_cnn" in res.output
    assert not (tmp_path / "x").exists()


def test_export_says_when_float32_rounding_needed_the_float64_check(runner, tmp_path):
    import torch
    from _helpers import ill_conditioned_small_cnn

    weights = tmp_path / "ill.pt"
    torch.save(ill_conditioned_small_cnn().state_dict(), weights)
    out = tmp_path / "m"
    res = runner.invoke(main, zoo_export_args(out, kind="gasf", window=32, size=32, extra=["--weights", str(weights)]))
    assert res.exit_code == 0, res.output
    assert (
        "above 1e-4 on the random images, so judged per image against float64" in res.output
        and (out / "model.onnx").exists()
    )


def test_list(runner, exported, tmp_path):
    out, _ = exported
    res = runner.invoke(main, ["zoo", "list", "--models-dir", str(out.parent)])
    assert res.exit_code == 0, res.output
    assert "small_cnn" in res.output and "baseline" in res.output and "64px" in res.output
    assert "exported models under" in res.output and "fp32,fp16,int8  ok" in res.output
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "card.json").write_text("{")
    res = runner.invoke(main, ["zoo", "list", "--models-dir", str(tmp_path), "--pattern", "none*"])
    assert res.exit_code == 0 and "BROKEN: " in res.output and "not valid JSON" in res.output


def test_list_param_count_matches_torch(runner):
    from effnet_trading.model_zoo import create_model

    n = sum(p.numel() for p in create_model("small_cnn").parameters())
    res = runner.invoke(main, ["zoo", "list", "--pattern", "small_cnn"])
    assert f"{n / 1e6:.2f}M" in res.output


def test_verify_ok_and_broken(runner, exported, tmp_path):
    import shutil

    out, _ = exported
    res = runner.invoke(main, ["zoo", "verify", str(out)])
    assert res.exit_code == 0, res.output
    assert "all checks passed" in res.output and "ok   int8" in res.output and "rows sum to 1" in res.output
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    with open(copy / "model_fp16.onnx", "ab") as fh:
        fh.write(b"x")
    res = runner.invoke(main, ["zoo", "verify", str(copy)])
    assert res.exit_code == 1 and "model_fp16.onnx in" in res.output and "sha256" in res.output


def test_bench(runner, exported):
    out, _ = exported
    res = runner.invoke(
        main, ["zoo", "bench", str(out), "--providers", "cpu", "--batches", "1,8", "--max-seconds", "0.05", "--json"]
    )
    assert res.exit_code == 0, res.output
    r = json.loads(res.output)["providers"]["CPUExecutionProvider"]
    assert [row["batch"] for row in r["curve"]] == [1, 8]
    assert r["batch1_ms"]["p50"] <= r["batch1_ms"]["p99"] and r["batch64_img_per_s"] > 0
    res = runner.invoke(
        main, ["zoo", "bench", str(out), "--variant", "int8", "--batches", "1", "--max-seconds", "0.05"]
    )
    assert res.exit_code == 0 and "batch 1 latency  p50" in res.output and "(int8)" in res.output
    res = runner.invoke(main, ["zoo", "bench", str(out), "--providers", "NoSuchExecutionProvider"])
    assert res.exit_code == 1 and "not available" in res.output


def test_card(runner, exported, tmp_path):
    out, _ = exported
    res = runner.invoke(main, ["zoo", "card", str(out)])
    assert res.exit_code == 0 and "architecture  small_cnn" in res.output and "int8" in res.output
    res = runner.invoke(main, ["zoo", "card", str(out), "--json"])
    assert json.loads(res.output)["input_shape"] == [1, 32, 32]
    res = runner.invoke(main, ["zoo", "card", str(tmp_path / "nowhere")])
    assert res.exit_code == 1 and "does not exist" in res.output


def test_list_verify_card_without_torch(exported):
    """Inference-only installs: list says torch is missing; verify and card work without it."""
    import subprocess
    import sys

    out, _ = exported
    code = f"""
import sys
sys.modules['torch'] = None
from click.testing import CliRunner
from effnet_trading.plugins.cli import main
r = CliRunner()
for args in (['zoo', 'list', '--models-dir', r'{out.parent}'], ['zoo', 'verify', r'{out}'], ['zoo', 'card', r'{out}']):
    res = r.invoke(main, args)
    assert res.exit_code == 0, (args, res.output, res.exception)
    print(res.output)
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "torch is not installed" in res.stdout and 'pip install "effnet-trading[train]"' in res.stdout
    assert "all checks passed" in res.stdout and "architecture  small_cnn" in res.stdout


@pytest.mark.parametrize("cwd", [False, True])
def test_export_never_deletes_foreign_files(runner, tmp_path, monkeypatch, cwd):
    """`zoo export --out DIR` used to empty DIR (with `--out .` the working folder): now it refuses,
    and with --overwrite it adds the model beside the other files."""
    target = tmp_path / "work"
    target.mkdir()
    (target / "notes.txt").write_text("precious")
    out = str(target)
    if cwd:
        monkeypatch.chdir(target)
        out = "."
    args = zoo_export_args(out, kind="gasf", window=16, size=16)
    res = runner.invoke(main, args)
    assert res.exit_code == 1 and "refusing to write into" in res.output and "notes.txt" in res.output
    assert "Traceback" not in res.output
    assert (
        sorted(p.name for p in target.iterdir()) == ["notes.txt"] and (target / "notes.txt").read_text() == "precious"
    )
    res = runner.invoke(main, args + ["--overwrite"])
    assert res.exit_code == 0, res.output
    assert (target / "notes.txt").read_text() == "precious"
    assert {"card.json", "model.onnx", "effnet-run.json", "notes.txt"} == {p.name for p in target.iterdir()}
    from effnet_trading.model_zoo.card import load_card

    load_card(target)
    # a plain re-export into its own model folder needs no flag
    res = runner.invoke(main, zoo_export_args(tmp_path / "m", kind="gasf", window=16, size=16))
    assert res.exit_code == 0, res.output
    res = runner.invoke(main, zoo_export_args(tmp_path / "m", kind="gadf", window=16, size=16))
    assert res.exit_code == 0, res.output
    assert load_card(tmp_path / "m").spec.kind == "gadf"


def test_library_export_refuses_a_folder_of_other_files(tmp_path):
    import torch  # noqa: F401

    from effnet_trading.errors import OutputError
    from effnet_trading.imaging import ImageSpec
    from effnet_trading.model_zoo import create_model
    from effnet_trading.model_zoo.export import export_onnx

    (tmp_path / "data.csv").write_text("keep me")
    with pytest.raises(OutputError, match=r"holds files that are not part of a model folder \(data.csv\)"):
        export_onnx(
            create_model("small_cnn", in_chans=1),
            tmp_path,
            spec=ImageSpec("gasf", window=16, size=(16, 16)),
            architecture="small_cnn",
        )
    assert (tmp_path / "data.csv").read_text() == "keep me"
