"""``effnet-trading sample-data``: write the seeded synthetic data sets."""
from __future__ import annotations

import json

import click


@click.command("sample-data")
@click.option("--out", "out_dir", default="sample_data", show_default=True, type=click.Path(file_okay=False), help="Folder to write into.")
@click.option("--bars", default=20_000, show_default=True, type=click.IntRange(min=500), help="Bars per series.")
@click.option("--seed", default=7, show_default=True, type=int)
def sample_data(out_dir: str, bars: int, seed: int) -> None:
    """Write planted-structure and random-walk OHLCV (5m bars) plus meta.json (class balance, oracle accuracy)."""
    from effnet_trading.imaging.synthetic import SampleConfig, write_sample_data

    meta = write_sample_data(out_dir, SampleConfig(n_bars=bars, seed=seed))
    click.echo(f"wrote {out_dir}/planted_5m.csv, planted_events.csv, random_walk_5m.csv, meta.json")
    click.echo(json.dumps({k: v for k, v in meta.items() if k.endswith(".csv")}, indent=2))
