"""``effnet-trading sample-data``: write the seeded synthetic data sets."""

from __future__ import annotations

import json

import click


@click.command("sample-data")
@click.option(
    "--out",
    "out_dir",
    default="sample_data",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Folder to write into.",
)
@click.option("--bars", default=20_000, show_default=True, type=click.IntRange(min=500), help="Bars per series.")
@click.option("--seed", default=7, show_default=True, type=int)
@click.option(
    "--overwrite", is_flag=True, help="Write into a folder that holds other files (only these data files are replaced)."
)
def sample_data(out_dir: str, bars: int, seed: int, overwrite: bool) -> None:
    """Write planted-structure and random-walk OHLCV (5m bars) plus meta.json (class balance, oracle accuracy)."""
    from effnet_trading.imaging.synthetic import SampleConfig, write_sample_data
    from effnet_trading.outputs import run_folder

    cfg = SampleConfig(n_bars=bars, seed=seed)
    with run_folder(out_dir, command="sample-data", config={"bars": bars, "seed": seed}, overwrite=overwrite) as work:
        meta = write_sample_data(work, cfg)
    click.echo(f"wrote {out_dir}/planted_5m.csv, planted_events.csv, random_walk_5m.csv, meta.json")
    click.echo(json.dumps({k: v for k, v in meta.items() if k.endswith(".csv")}, indent=2))
