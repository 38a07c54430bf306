"""``effnet-trading sweep``: a grid of walk-forward evaluations from one TOML config, on Ray or in-process."""

from __future__ import annotations

import click

__all__ = ["sweep"]


@click.command("sweep")
@click.argument("config_path", metavar="CONFIG.toml", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Sweep folder.")
@click.option("--address", default=None, help="Ray cluster to run on (e.g. auto or ray://host:10001); default: local.")
@click.option("--no-ray", is_flag=True, help="Run the cells in-process one after another, without Ray.")
@click.option("--overwrite", is_flag=True, help="Write into a non-empty --out, keeping the files that are not ours.")
@click.option(
    "--table-only",
    is_flag=True,
    help="Run nothing: write the table of the cells finished so far (the others listed as not run yet). "
    "Safe while the sweep is still running into --out.",
)
@click.option(
    "--only",
    "only",
    multiple=True,
    metavar="PATTERN",
    help='Run only the cells whose id matches this shell pattern (repeatable), e.g. --only "*efficientnet_b0*"; '
    "the table lists the others as not run yet.",
)
@click.option("--progress/--no-progress", default=True, show_default=True)
def sweep(config_path, out_dir, address, no_ray, overwrite, table_only, only, progress) -> None:
    """Run every cell of CONFIG.toml (keys: evaluate's option names; a list is a grid axis) and
    aggregate them into results.parquet, results.md and report.html in --out.

    Re-running the same command skips the cells already finished; a failed cell is listed with its
    error and the others run on (the command then exits with status 1).
    """
    from pathlib import Path

    from effnet_trading.config import read_toml
    from effnet_trading.evaluation.sweep import run_sweep

    table = run_sweep(
        read_toml(config_path),
        out_dir,
        address=address,
        use_ray=False if no_ray else None,
        overwrite=overwrite,
        progress=progress,
        table_only=table_only,
        only=only,
    )
    click.echo((Path(out_dir) / "results.md").read_text())
    click.echo(f"report: {Path(out_dir) / 'report.html'}")
    failed = sorted(set(table.loc[table["status"] == "failed", "cell"]))
    if failed:
        raise click.ClickException(f"{len(failed)} cell(s) failed: {', '.join(failed)} (errors in results.md).")
