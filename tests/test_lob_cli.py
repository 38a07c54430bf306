"""``lob analyze`` on a synthetic book with planted walls and place-cancel sequences (wide CSV)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
from click.testing import CliRunner

from effnet_trading.applications._lob_synth import PlantedSpoof, PlantedWall, synthetic_book
from effnet_trading.plugins.cli import main


def test_lob_analyze_writes_detections_heatmap_and_impact(tmp_path):
    book, planted = synthetic_book(
        400, walls=(PlantedWall("bid", 40, 200),), spoofs=(PlantedSpoof("ask", 100),), move_prob=0.01, seed=3
    )
    csv = tmp_path / "book.csv"
    book.to_frame().to_csv(csv)
    (tmp_path / "notes.txt").write_text("not a book")
    out = tmp_path / "out"
    res = CliRunner().invoke(main, ["lob", "analyze", "--data", str(tmp_path), "--out", str(out), "--sizes", "0.5,2,5"])
    assert res.exit_code == 0, res.output
    det = pd.read_csv(out / "detections.csv")
    kinds = det.groupby("kind")["price"].apply(list).to_dict()
    wall, spoof = planted.iloc[0], planted.iloc[1]
    assert np.isclose(kinds["wall_add"], wall.price).all() and np.isclose(kinds["wall_pull"], wall.price).all()
    assert np.isclose(kinds["place_cancel"], spoof.price).all() and set(det["source"]) == {"book.csv"}
    impact = pd.read_csv(out / "impact.csv", index_col=["source", "size"])
    assert impact["buy_bps_median"].is_monotonic_increasing and len(impact) == 3
    summary = json.loads((out / "summary.json").read_text())
    assert summary["books"]["book.csv"]["events"] == {"wall_add": 1, "wall_pull": 1, "place_cancel": 1}
    assert (out / "heatmap_book.png").stat().st_size > 5000 and (out / "impact.png").is_file()


def test_lob_analyze_refuses_a_folder_without_books(tmp_path):
    (tmp_path / "x.csv").write_text("a,b\n1,2\n")
    res = CliRunner().invoke(main, ["lob", "analyze", "--data", str(tmp_path), "--out", str(tmp_path / "o")])
    assert res.exit_code == 1 and "no readable order book" in res.output
