"""``effnet-trading explain``: what a model looked at, per bar (maps from model_zoo.explain, pictures from
evaluation.explain_gallery)."""

from __future__ import annotations

from pathlib import Path

import click

from effnet_trading.plugins.cli._data_options import data_read_options

__all__ = ["explain"]


@click.command("explain")
@data_read_options
@click.option("--data", "data_path", required=True, type=click.Path(exists=True, dir_okay=False), help="OHLCV CSV.")
@click.option(
    "--model",
    "model_dir",
    required=True,
    type=click.Path(exists=True, file_okay=False),
    help="Model folder (model.onnx + card.json); Grad-CAM also needs the train run's checkpoints/ beside it.",
)
@click.option("--at", "at", multiple=True, metavar="TIMESTAMP", help="Explain the decision at this bar (repeatable).")
@click.option("--top", default=None, type=int, help="Explain the N most confident buy and N most confident sell bars.")
@click.option(
    "--method",
    default="auto",
    show_default=True,
    type=click.Choice(["auto", "gradcam", "occlusion"]),
    help="auto: Grad-CAM where the torch checkpoint is there, else occlusion on the ONNX model.",
)
@click.option(
    "--bars",
    "how",
    default="mean",
    show_default=True,
    type=click.Choice(["mean", "max"]),
    help="How pixel heat is reduced onto each bar.",
)
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Folder for the pictures.")
@click.option("--overwrite", is_flag=True, help="Replace this command's files in an existing --out folder.")
def explain(date_format, tz, data_path, model_dir, at, top, method, how, out_dir, overwrite):
    """Write, per explained bar, the model's input image, the heat map over it and an mplfinance chart of
    the window with the heat on its bars, plus explain.json saying which method made the maps."""
    from effnet_trading.evaluation.explain_gallery import choose_bars, write_explanations
    from effnet_trading.imaging import load_ohlcv
    from effnet_trading.outputs import run_folder

    if at and top:
        raise click.UsageError("pass --at or --top, not both.")
    frame = load_ohlcv(data_path, date_format=date_format, tz=tz)
    ends, why = choose_bars(frame, model_dir, at=list(at), top=top)
    config = {"model": str(model_dir), "at": list(at), "top": top, "method": method, "bars": how}
    inputs = {"data": data_path, "model": Path(model_dir) / "model.onnx"}
    with run_folder(out_dir, command="explain", config=config, inputs=inputs, overwrite=overwrite) as work:
        doc = write_explanations(work, frame, model_dir, ends, method=method, how=how, labels=why)
    click.echo(f"explained {len(ends)} bar(s) with {doc['method']} ({doc['method_note']}); wrote {out_dir}")
