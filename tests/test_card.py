"""Model cards: round trip, and every way a model folder can be wrong gives a ModelCardError naming the fix."""

import hashlib
import json
import shutil

import numpy as np
import pytest

from effnet_trading.errors import ModelCardError
from effnet_trading.model_zoo.card import CARD_FILE, ModelCard, find_model_dirs, load_card, sha256_file


@pytest.fixture(scope="module")
def variant_dir(tmp_path_factory, planted):
    """tiny small_cnn with fp16 + int8 variants."""
    import torch

    from effnet_trading.imaging import ImageSpec, render
    from effnet_trading.model_zoo import create_model
    from effnet_trading.model_zoo.export import export_onnx

    spec = ImageSpec("gasf", window=32, size=(32, 32))
    torch.manual_seed(1)
    images = render(spec, planted.iloc[:400])
    out = tmp_path_factory.mktemp("card") / "tiny_variants"
    export_onnx(
        create_model("small_cnn", in_chans=1).eval(),
        out,
        spec=spec,
        architecture="small_cnn",
        sample_images=images[:64],
        fp16=True,
        int8=True,
        calib_images=images[:200],
        holdout_images=images[200:],
    )
    return out


def _copy(src, tmp_path):
    dst = tmp_path / "m"
    shutil.copytree(src, dst)
    return dst


def _edit_card(d, **changes):
    raw = json.loads((d / CARD_FILE).read_text())
    raw.update(changes)
    (d / CARD_FILE).write_text(json.dumps(raw))


def test_round_trip_and_hash(tiny_model_dir):
    card = load_card(tiny_model_dir)
    again = ModelCard.from_dict(json.loads(json.dumps(card.to_dict())))
    assert again == card
    # independent hash of the file
    assert card.onnx_sha256 == hashlib.sha256((tiny_model_dir / "model.onnx").read_bytes()).hexdigest()
    assert card.label == {"rule": "forward_return", "horizon": 6, "k": 0.5}
    assert card.input_shape == (1, 32, 32) and card.opset == 17
    assert {"numpy", "onnxruntime", "torch"} <= set(card.versions)


def test_card_records_variants(variant_dir):
    card = load_card(variant_dir)
    assert set(card.variants) == {"fp16", "int8"}
    for name, info in card.variants.items():
        assert info["sha256"] == sha256_file(variant_dir / info["file"])
        assert 0.0 <= info["agreement_vs_fp32"] <= 1.0
    assert card.variants["int8"]["checked_on"] == "held-out images"
    assert card.variants["int8"]["calibration_images"] == 200
    assert "int8" in card.summary() and "small_cnn" in card.summary()


def _corrupt_onnx(d):
    with open(d / "model.onnx", "ab") as fh:
        fh.write(b"\0")


def _corrupt_int8(d):
    with open(d / "model_int8.onnx", "ab") as fh:
        fh.write(b"\0")


CASES = {
    "hash": (
        _corrupt_onnx,
        "model.onnx in .* has sha256 .* but card.json says .*Restore the original file or re-export",
    ),
    "variant_hash": (_corrupt_int8, "model_int8.onnx in .* has sha256 .*re-export"),
    "variant_missing": (
        lambda d: (d / "model_fp16.onnx").unlink(),
        "model_fp16.onnx' is missing but card.json lists it as the fp16 model",
    ),
    "onnx_missing": (
        lambda d: (d / "model.onnx").unlink(),
        "model.onnx' is missing but card.json lists it as the fp32 model",
    ),
    "card_missing": (
        lambda d: (d / CARD_FILE).unlink(),
        "card.json' is missing: a model folder holds model.onnx \\+ card.json",
    ),
    "folder_missing": (
        lambda d: shutil.rmtree(d),
        "model folder .* does not exist; export one with `effnet-trading zoo export`",
    ),
    "bad_json": (lambda d: (d / CARD_FILE).write_text("{not json"), "card.json' is not valid JSON .*re-export"),
    "not_object": (lambda d: (d / CARD_FILE).write_text("[1, 2]"), "card.json holds a list, expected a JSON object"),
    "missing_field": (lambda d: _drop(d, "spec"), "missing required field\\(s\\) \\['spec'\\]"),
    "bad_spec": (lambda d: _edit_card(d, spec={"kind": "nonsense"}), "card.json is malformed .*nonsense"),
    "shape_vs_spec": (
        lambda d: _edit_card(d, input_shape=[3, 32, 32]),
        "card input_shape \\[3, 32, 32\\] disagrees with its ImageSpec, which renders \\[1, 32, 32\\]",
    ),
}


def _drop(d, key):
    raw = json.loads((d / CARD_FILE).read_text())
    raw.pop(key)
    (d / CARD_FILE).write_text(json.dumps(raw))


@pytest.mark.parametrize("case", sorted(CASES))
def test_load_card_errors(case, variant_dir, tmp_path):
    d = _copy(variant_dir, tmp_path)
    load_card(d)  # the copy is fine before we break it
    breaker, message = CASES[case]
    breaker(d)
    with pytest.raises(ModelCardError, match=message):
        load_card(d)


def test_verify_hash_off_and_single_variant(variant_dir, tmp_path):
    d = _copy(variant_dir, tmp_path)
    _corrupt_int8(d)
    load_card(d, variant="fp16")  # only the requested variant is checked
    load_card(d, verify_hash=False)
    with pytest.raises(ModelCardError, match="model_int8.onnx"):
        load_card(d, variant="int8")


GRAPH_CASES = {
    # the card is self-consistent but the ONNX graph was exported for other images / classes
    "input_shape": (
        {"input_shape": [1, 16, 16], "spec_size": [16, 16]},
        "model.onnx takes input \\['batch', 1, 32, 32\\] but card.json declares \\(N, 1, 16, 16\\)",
    ),
    "classes": ({"class_names": ["down", "up"]}, "ONNX model outputs 3 classes but card.json names 2"),
    "variant": ({"variants": {}}, "has no 'int8' variant .*zoo export --int8"),
}


@pytest.mark.parametrize("case", sorted(GRAPH_CASES))
def test_predictor_checks_graph_against_card(case, variant_dir, tmp_path):
    from effnet_trading.model_zoo.runtime import Predictor

    d = _copy(variant_dir, tmp_path)
    changes, message = GRAPH_CASES[case]
    raw = json.loads((d / CARD_FILE).read_text())
    if "spec_size" in changes:
        raw["spec"]["size"] = changes.pop("spec_size")
    raw.update(changes)
    (d / CARD_FILE).write_text(json.dumps(raw))
    with pytest.raises(ModelCardError, match=message):
        Predictor(d, "cpu", variant="int8" if case == "variant" else "fp32")


def test_save_is_atomic_and_readable(tiny_model_dir, tmp_path):
    d = _copy(tiny_model_dir, tmp_path)
    card = load_card(d)
    card.metrics["note"] = "edited"
    card.save(d)
    assert not list(d.glob("*.tmp"))
    assert oct((d / CARD_FILE).stat().st_mode & 0o777) == "0o644"
    assert load_card(d).metrics["note"] == "edited"


def test_find_model_dirs(variant_dir, tiny_model_dir, tmp_path):
    root = tmp_path / "zoo"
    shutil.copytree(variant_dir, root / "a")
    shutil.copytree(tiny_model_dir, root / "nested" / "b")
    (root / "empty").mkdir()
    assert find_model_dirs(root) == [root / "a", root / "nested" / "b"]
    assert find_model_dirs(tmp_path / "absent") == []
    assert np.all([load_card(p) is not None for p in find_model_dirs(root)])


@pytest.mark.parametrize(
    "version, message",
    [(2, "card_version 2, newer than this effnet-trading"), ("1", "card_version '1'; expected a whole number")],
)
def test_unknown_card_version_refused_by_load_and_verify(tiny_model_dir, tmp_path, version, message):
    from click.testing import CliRunner

    from effnet_trading.plugins.cli import main

    d = _copy(tiny_model_dir, tmp_path)
    _edit_card(d, card_version=version)
    with pytest.raises(ModelCardError, match=message):
        load_card(d)
    res = CliRunner().invoke(main, ["zoo", "verify", str(d)])
    assert res.exit_code == 1 and message in res.output and "Traceback" not in res.output


def test_corrupt_onnx_with_recomputed_hash_is_a_clear_error(tiny_model_dir, tmp_path):
    from effnet_trading.model_zoo.runtime import Predictor

    d = _copy(tiny_model_dir, tmp_path)
    data = bytearray((d / "model.onnx").read_bytes())
    (d / "model.onnx").write_bytes(bytes(data[: len(data) // 3]) + b"\x00garbage" * 50)  # truncated + junk
    _edit_card(d, onnx_sha256=sha256_file(d / "model.onnx"))  # someone "fixed" the hash
    with pytest.raises(ModelCardError) as exc:
        Predictor(d, "cpu")
    assert "cannot be loaded by onnxruntime" in str(exc.value) and "re-export" in str(exc.value)
    assert isinstance(exc.value.__cause__, Exception)
