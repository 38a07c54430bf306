"""What the model looked at: on the planted data, maps of correct pattern predictions sit on the
pattern's bars more than on other bars; Grad-CAM and occlusion agree in rank; pixels map onto the
right bars; ``explain`` runs end to end with a compact EfficientNet.

The planted patterns (imaging/synthetic.py) are the 5 bars ending at each event's position, followed by
a drift in the pattern's direction for 6 bars; images ending ``off`` bars after the event (off 0..3, where
the planted direction still holds) show the pattern at bars ``window-5-off .. window-1-off``.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import TRAINED_SPEC

from effnet_trading.errors import ModelCardError, SpecError
from effnet_trading.imaging import ImageSpec, render
from effnet_trading.model_zoo.explain import bar_share, bar_weights, explain, occlusion_map, spearman

W = TRAINED_SPEC.window
N_EVENTS = 24  # events per offset: CI-sized (occlusion costs one 225-image ONNX batch per image)
OVERLAP_MIN = 1.3  # pattern bars get >= 1.3x the weight a uniform map gives them (measured 1.5 with occlusion)
RHO_MIN = 0.1  # mean per-image Spearman of Grad-CAM vs occlusion bar weights (measured 0.35)


@pytest.fixture(scope="module")
def explained(trained_model_dir, planted, planted_events):
    """Both maps for the planted events in the trained model's test span, images ending 0..3 bars after the event."""
    from effnet_trading.model_zoo import load_card

    card = load_card(trained_model_dir)
    lo, hi = (planted.index.get_loc(__import__("pandas").Timestamp(t)) for t in card.metrics["split"]["test"])
    ev = planted_events[(planted_events.position >= lo) & (planted_events.position + 4 <= hi)].iloc[:N_EVENTS]
    out = {}
    for off in range(4):
        ends = ev.position.to_numpy() + off
        images = render(TRAINED_SPEC, planted, ends)
        want = np.where(ev.direction.to_numpy() == "buy", 2, 0)
        g = explain(trained_model_dir, images, method="gradcam")
        o = explain(trained_model_dir, images, method="occlusion", patch=2)
        out[off] = (g, o, g.probs.argmax(1) == want)
    return out


def _pattern_mask(off: int) -> np.ndarray:
    mask = np.zeros(W, bool)
    mask[W - 5 - off : W - off] = True
    return mask


def test_maps_of_correct_predictions_sit_on_the_pattern_bars(explained):
    """Occlusion: the planted 5 bars get more weight than a uniform map gives them, and more than
    random 5-bar spans of the same window, wherever the pattern sits in the window."""
    rng = np.random.default_rng(0)
    for off, (_, o, ok) in explained.items():
        assert ok.sum() >= 10, f"offset {off}: only {ok.sum()} correct predictions to explain"
        on_pattern = bar_share(o.bars[ok], _pattern_mask(off)).mean()
        starts = rng.integers(0, W - 4, 200)
        spans = np.zeros((200, W), bool)
        for k, s in enumerate(starts):
            spans[k, s : s + 5] = True
        random_spans = np.mean([bar_share(o.bars[ok], m).mean() for m in spans])
        assert on_pattern > OVERLAP_MIN, f"offset {off}: pattern bars get {on_pattern:.2f}x a uniform map"
        assert on_pattern > random_spans + 0.2, (off, on_pattern, random_spans)


def test_gradcam_and_occlusion_agree_in_rank(explained):
    rhos = [spearman(a, b) for g, o, ok in explained.values() for a, b in zip(g.bars[ok], o.bars[ok])]
    assert np.mean(rhos) > RHO_MIN, f"mean Spearman {np.mean(rhos):.2f} (n={len(rhos)})"
    g = explained[0][0]
    assert g.method == "gradcam" and "epoch_" in g.info["source"] and "(8x16)" in g.info["layer"]
    assert explained[0][1].method == "occlusion" and "ONNX" in explained[0][1].info["source"]


def test_occlusion_finds_the_one_pixel_a_model_reads():
    """A 'model' whose buy probability is one pixel's value: the map peaks on that pixel, zero elsewhere."""

    def predict(x):
        p = x[:, 0, 5, 9].astype(np.float64)
        return np.stack([1 - p, np.zeros_like(p), p], 1)

    images = np.full((2, 1, 16, 16), 0.2, np.float32)
    images[:, 0, 5, 9] = 1.0
    maps, probs = occlusion_map(predict, images, patch=1)
    assert probs.argmax(1).tolist() == [2, 2]
    assert np.unravel_index(maps[0].argmax(), maps[0].shape) == (5, 9) and maps[0].sum() == pytest.approx(1.0)


def test_pixels_map_onto_the_bars_they_draw():
    heat = np.zeros((1, 32, 32), np.float32)
    heat[0, :, 24:28] = 1.0  # candles: columns 24..27 of 32 draw bar 12 of 16 (two columns a bar)
    cand = bar_weights(ImageSpec("candles", window=16, size=(32, 32)), heat)
    assert cand[0].argmax() == 12 and cand[0, 13] == 1.0 and cand[0, :12].max() == 0.0
    gasf = ImageSpec("gasf", window=32, size=(16, 16))  # PAA: pixel row/column k covers bars 2k, 2k+1
    heat = np.zeros((1, 16, 16), np.float32)
    heat[0, 3, 3] = 1.0
    w = bar_weights(gasf, heat)[0]
    assert set(np.flatnonzero(w == w.max())) == {6, 7} and w[:6].max() < w.max()
    assert bar_weights(gasf, heat, "max")[0].tolist().count(1.0) == 2
    with pytest.raises(SpecError, match="lob_heatmap"):
        bar_weights(ImageSpec("lob_heatmap", window=16, size=(16, 16)), heat)


def test_spearman_matches_a_known_value():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 2, 3, 4, 5], [2, 1, 4, 3, 5]) == pytest.approx(0.8)  # 1 - 6*4/(5*24)


def test_gradcam_without_checkpoint_says_use_occlusion(tiny_model_dir, planted):
    from effnet_trading.model_zoo import load_card

    images = render(load_card(tiny_model_dir).spec, planted.iloc[:200], [100])
    with pytest.raises(ModelCardError, match="checkpoint.*--method occlusion"):
        explain(tiny_model_dir, images, method="gradcam")
    assert explain(tiny_model_dir, images, method="auto").method == "occlusion"


@pytest.fixture(scope="module")
def compact_run(planted, tmp_path_factory):
    """compact, 1 epoch on 128 images (plumbing: the maps need not be meaningful)."""
    import warnings

    from effnet_trading.model_zoo.metrics import CollapseWarning
    from effnet_trading.model_zoo.train import TrainConfig, train_and_export

    cfg = TrainConfig(
        model="compact",
        spec=TRAINED_SPEC,
        epochs=1,
        max_train_samples=128,
        batch_size=64,
        progress=False,
        num_threads=1,
    )
    out = tmp_path_factory.mktemp("explain") / "run"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CollapseWarning)
        res = train_and_export(planted.iloc[:700], cfg, out)
    csv = out.parent / "bars.csv"
    planted.iloc[:700].to_csv(csv, index_label="timestamp")
    return res.model_dir, csv


def test_explain_cli_end_to_end(compact_run, planted, tmp_path):
    from effnet_trading.plugins.cli import main

    model_dir, csv = compact_run
    t = planted.index[650]
    res = CliRunner().invoke(
        main, ["explain", "--data", str(csv), "--model", str(model_dir), "--at", str(t), "--out", str(tmp_path / "a")]
    )
    assert res.exit_code == 0, res.output
    doc = json.loads((tmp_path / "a" / "explain.json").read_text())
    assert doc["method"] == "gradcam" and "Grad-CAM" in doc["method_note"] and "epoch_" in doc["info"]["source"]
    (row,) = doc["explanations"]
    assert row["position"] == 650 and len(row["bar_weights"]) == W and max(row["bar_weights"]) <= 1.0
    for f in row["files"].values():
        assert (tmp_path / "a" / f).read_bytes()[:4] == b"\x89PNG"
    res = CliRunner().invoke(
        main,
        ["explain", "--data", str(csv), "--model", str(model_dir), "--top", "1", "--method", "occlusion"]
        + ["--out", str(tmp_path / "b")],
    )
    assert res.exit_code == 0, res.output
    doc = json.loads((tmp_path / "b" / "explain.json").read_text())
    assert doc["method"] == "occlusion" and 1 <= len(doc["explanations"]) <= 2
    assert {r["why"] for r in doc["explanations"]} <= {"top buy", "top sell"}
    res = CliRunner().invoke(
        main,
        ["explain", "--data", str(csv), "--model", str(model_dir), "--at", "1999-01-01", "--out", str(tmp_path / "c")],
    )
    assert res.exit_code != 0 and "no bar at that time" in res.output


def test_backtest_report_shows_the_explained_decisions(compact_run, tmp_path):
    from effnet_trading.plugins.cli import main

    model_dir, csv = compact_run
    args = ["backtest", "--data", str(csv), "--model", str(model_dir), "--engine", "vectorbt", "--no-progress"]
    res = CliRunner().invoke(main, args + ["--explain-top", "1", "--out", str(tmp_path / "bt")])
    assert res.exit_code == 0, res.output
    page = (tmp_path / "bt" / "report.html").read_text()
    doc = json.loads((tmp_path / "bt" / "explain" / "explain.json").read_text())
    assert "What the model looked at" in page and 1 <= len(doc["explanations"]) <= 2
    assert page.count("data:image/png;base64,") >= 2 + 2 * len(doc["explanations"])
