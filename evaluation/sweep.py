"""Sweeps: a grid of walk-forward ``evaluate`` runs, one per cell, on Ray or in-process.

A sweep config (TOML) holds ``evaluate``'s option names (``evaluation.options``: underscores for
dashes, ``data`` for ``--data``). A key holding a list is a grid axis, a scalar applies to every
cell: ``data = ["a.csv", "b.csv"]`` with ``models = ["small_cnn", "compact"]`` makes four cells
(``models = "small_cnn,compact"`` is one cell evaluating both). Two keys are the sweep's own:
``cpus_per_cell`` (default: ``threads``, else 1) and ``gpus_per_cell`` (default 0; > 0 trains on CUDA),
the resources each cell's Ray task declares.

``run_sweep(config, out_dir)`` writes every cell as its own run folder ``cells/<id>/`` (an
``evaluate`` output: report.html, results.json, folds/, models/) and then the sweep's table
(``results.parquet``, ``results.md``, ``report.html``, ``sweep.json``). Cells run as Ray tasks when
Ray is installed (local by default, ``address=`` for an existing cluster; ``out_dir`` and the data
must then be on a path every node sees) and in-process one after another otherwise. Each data set
is loaded once and reaches the tasks through Ray's object store. Re-running the same config in the
same folder skips the finished cells; a failed cell is recorded with its error and the others run on.
"""

from __future__ import annotations

import fnmatch
import glob
import itertools
import json
import os
import re
import shutil
import sys
import time
import traceback
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from effnet_trading.errors import EffnetTradingError, OutputError, SpecError, require
from effnet_trading.evaluation.options import DATA_OPTIONS, eval_config_dict, load_eval_data, option_names

__all__ = ["Cell", "expand_grid", "run_sweep", "run_cell", "CELL_COMMAND", "SWEEP_COMMAND"]

SWEEP_COMMAND, CELL_COMMAND = "sweep", "sweep cell"
TABLE_FILES = frozenset({"results.parquet", "results.md", "report.html", "sweep.json"})  # sweep_report.write_sweep
_RESOURCE_KEYS = ("cpus_per_cell", "gpus_per_cell")


@dataclass(frozen=True)
class Cell:
    """One grid point: ``options`` are its ``evaluate`` options, ``axes`` its values on the grid axes."""

    id: str
    options: dict
    axes: dict


def _slug(value) -> str:
    if isinstance(value, str) and ("/" in value or "." in value):
        value = Path(value).name.split(".")[0]  # a data path: its file name without extensions
    return re.sub(r"[^A-Za-z0-9]+", "_", str(value)).strip("_")[:40] or "x"


def expand_grid(config: Mapping[str, Any]) -> list[Cell]:
    """The cells of a sweep config (resource keys dropped): the product of its list-valued keys, in order."""
    options = {k: v for k, v in config.items() if k not in _RESOURCE_KEYS}
    unknown = sorted(set(options) - set(option_names()))
    if unknown:
        raise SpecError(
            f"unknown sweep key(s) {unknown}; a sweep config holds evaluate's option names "
            f"{option_names()} and {list(_RESOURCE_KEYS)}."
        )
    if "data" not in options:
        raise SpecError('a sweep config needs data = "PATH.csv" (or a list of paths, one axis).')
    axes = {k: v for k, v in options.items() if isinstance(v, list)}
    empty = [k for k, v in axes.items() if not v]
    if empty:
        raise SpecError(f"sweep axis {empty} is an empty list; give at least one value or drop the key.")
    cells, seen = [], set()
    for values in itertools.product(*axes.values()):
        point = dict(zip(axes, values))
        cid = "__".join(_slug(v) if k == "data" else f"{k}-{_slug(v)}" for k, v in point.items()) or "cell"
        cid = cid if cid not in seen else f"{cid}-{len(cells)}"
        seen.add(cid)
        cells.append(Cell(cid, options | point, point))
    return cells


def _cell_config(cell: Cell) -> dict:
    from effnet_trading.evaluation.evaluate import EvalConfig
    from effnet_trading.model_zoo.registry import check_model_kwargs

    cfg = EvalConfig.from_dict(eval_config_dict({k: v for k, v in cell.options.items() if k not in DATA_OPTIONS}))
    cfg.data, cfg.timeframe = str(cell.options["data"]), cell.options.get("timeframe")
    for name in cfg.models:  # an unknown model or option fails here, before any cell runs
        check_model_kwargs(name, cfg.model_kwargs.get(name, {}))
    return {"options": cell.options, "eval_config": cfg.to_dict()}


def run_cell(frame: pd.DataFrame, cell: Cell, cell_dir: str, device: str | None = None) -> dict:
    """Evaluate one cell into its run folder; ``{"status": "ok"|"failed", "seconds", "error"}``, never raises
    for a failure of the cell itself (a Ray task body, and the in-process loop's)."""
    from effnet_trading.evaluation.evaluate import EvalConfig, evaluate
    from effnet_trading.outputs import run_folder

    t0 = time.perf_counter()
    try:
        config = _cell_config(cell)
        cfg = EvalConfig.from_dict(config["eval_config"])
        if device:
            cfg.train.device = device
        with run_folder(
            cell_dir, command=CELL_COMMAND, config=config, inputs={"data": cell.options["data"]}, overwrite=True
        ) as work:
            evaluate(frame, cfg, work, progress=False)
        return {"status": "ok", "seconds": time.perf_counter() - t0, "error": None}
    except Exception as exc:  # recorded in the sweep table; the other cells run on
        return {
            "status": "failed",
            "seconds": time.perf_counter() - t0,
            "error": f"{type(exc).__name__}: {exc}",
            "traceback": traceback.format_exc(),
        }


def _finished(cell: Cell, cell_dir: Path) -> bool:
    from effnet_trading.outputs import read_manifest

    m = read_manifest(cell_dir)
    if not m or m.get("command") != CELL_COMMAND or m.get("complete") is not True:
        return False
    return m.get("config") == json.loads(json.dumps(_cell_config(cell), default=str))


def _data_key(cell: Cell) -> tuple:
    return tuple(str(cell.options.get(k)) for k in DATA_OPTIONS)


def _load(cell: Cell) -> pd.DataFrame:
    o = cell.options
    return load_eval_data(
        o["data"],
        timeframe=o.get("timeframe"),
        last_bars=o.get("last_bars"),
        date_format=o.get("date_format"),
        tz=o.get("tz"),
        start=o.get("start"),
        end=o.get("end"),
    )


def _say(line: str) -> None:
    """One line on stderr, above any progress bar: what a sweep running for hours writes to its log."""
    from tqdm.auto import tqdm

    tqdm.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}", file=sys.stderr)


def _in_process(jobs: list[tuple[Cell, Path]], device: str | None) -> Iterator[tuple[Cell, dict]]:
    frames: dict[tuple, pd.DataFrame] = {}
    for cell, cell_dir in jobs:
        key = _data_key(cell)
        if key not in frames:
            frames = {key: _load(cell)}  # cells are grouped by data: keep one frame in memory
        _say(f"cell {cell.id} started")
        yield cell, run_cell(frames[key], cell, str(cell_dir), device)


def _on_ray(
    jobs: list[tuple[Cell, Path]], address: str | None, cpus: float, gpus: float, device: str | None
) -> Iterator[tuple[Cell, dict]]:
    ray = require("ray", "scale")
    started = not ray.is_initialized()
    if started:
        ray.init(address=address, include_dashboard=False, logging_level="warning", log_to_driver=False)
    try:
        _check_ray_resources(ray.cluster_resources(), cpus, gpus, address or os.environ.get("RAY_ADDRESS"))
        task = ray.remote(num_cpus=cpus, num_gpus=gpus, max_retries=0)(run_cell)
        refs: dict[tuple, Any] = {}
        pending = {}
        for cell, cell_dir in jobs:
            key = _data_key(cell)
            if key not in refs:
                refs[key] = ray.put(_load(cell))  # once per data set; tasks read it from the object store
            pending[task.remote(refs[key], cell, str(cell_dir), device)] = cell
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            cell = pending.pop(done[0])
            try:
                out = ray.get(done[0])
            except Exception as exc:  # the worker died (out of memory, killed): the cell failed
                out = {"status": "failed", "seconds": float("nan"), "error": f"{type(exc).__name__}: {exc}"}
            yield cell, out
    finally:
        if started:
            ray.shutdown()


def _check_ray_resources(have: Mapping[str, float], cpus: float, gpus: float, cluster: str | None) -> None:
    """A task asking for more than the cluster has is never scheduled: the sweep would wait forever.
    Refused on a local Ray (``cluster`` None); a cluster only warns, since an autoscaling one adds nodes."""
    for key, want, kind, fix in (
        ("cpus_per_cell", cpus, "CPU", "at most the machine's cores"),
        ("gpus_per_cell", gpus, "GPU", "0 to train on the CPU, or run on a machine with a GPU"),
    ):
        n = float(have.get(kind, 0))
        if want > n:
            where = "this machine's local Ray" if cluster is None else f"the Ray cluster at {cluster}"
            msg = f"{key} = {want:g}, but {where} has {n:g} {kind}(s)"
            if cluster is None:
                raise SpecError(f"{msg}; set {key} to {fix}.")
            warnings.warn(
                f"{msg} now; the cells wait until it has more (an autoscaling cluster adds them).", stacklevel=3
            )


def _use_ray(use_ray: bool | None, address: str | None) -> bool:
    if use_ray is False:
        if address:
            raise SpecError("--address needs Ray; drop --no-ray (or drop --address to run in-process).")
        return False
    if use_ray or address:
        require("ray", "scale")
        return True
    try:
        import ray  # noqa: F401
    except ImportError:
        return False
    return True


def _select(cells: list[Cell], only: Sequence[str]) -> set[str]:
    """The ids of the cells matching any of the ``only`` patterns (all cells without patterns)."""
    if not only:
        return {c.id for c in cells}
    unmatched = [p for p in only if not any(fnmatch.fnmatchcase(c.id, p) for c in cells)]
    if unmatched:
        ids = ", ".join(c.id for c in cells[:12]) + (f", ... ({len(cells)} cells)" if len(cells) > 12 else "")
        raise SpecError(
            f"--only {', '.join(unmatched)} matches no cell of this sweep; cell ids are {ids}. "
            'Use shell patterns on them, e.g. --only "*efficientnet_b0*".'
        )
    return {c.id for c in cells if any(fnmatch.fnmatchcase(c.id, p) for p in only)}


def _holds_sweep_cells(cells_dir: Path) -> bool:
    """True when ``cells_dir`` holds a finished sweep cell or a cell's work folder (not just any ``cells/``)."""
    from effnet_trading.outputs import read_manifest

    if not cells_dir.is_dir():
        return False
    for p in cells_dir.iterdir():
        if p.is_dir() and (".tmp-" in p.name or (read_manifest(p) or {}).get("command") == CELL_COMMAND):
            return True
    return False


def _check_out(out: Path, overwrite: bool) -> None:
    """Refuse a non-empty --out that is not a sweep folder (one of ours, or a sweep interrupted before its table)."""
    from effnet_trading.outputs import MANIFEST_FILE, read_manifest

    if out.exists() and not out.is_dir():
        raise OutputError(f"--out {out} is a file, not a folder; choose a folder path for the sweep.")
    if not out.is_dir() or overwrite:
        return
    m = read_manifest(out)
    own = set(m.get("files", [])) | {MANIFEST_FILE} if m and m.get("command") == SWEEP_COMMAND else set()
    if _holds_sweep_cells(out / "cells"):  # a sweep's own table files, also while another process moves them in
        own |= TABLE_FILES  # (run_folder's merge takes the manifest out first and puts it back last)
    foreign = [p.name for p in out.iterdir() if p.name != "cells" and p.name not in own]
    if foreign:
        raise OutputError(
            f"refusing to write a sweep into {out}: it holds files of something else ({', '.join(sorted(foreign)[:5])}). "
            "Choose an empty or new --out folder, or pass --overwrite to keep them and write the sweep beside them."
        )


def run_sweep(
    config: Mapping[str, Any],
    out_dir: str | os.PathLike,
    *,
    address: str | None = None,
    use_ray: bool | None = None,
    overwrite: bool = False,
    progress: bool = True,
    table_only: bool = False,
    only: Sequence[str] = (),
) -> pd.DataFrame:
    """Run every unfinished cell of ``config`` into ``out_dir/cells/`` and write the sweep table;
    returns it (one row per cell and strategy; failed cells one row with ``status="failed"``).

    use_ray: None = Ray if installed, True = Ray (``MissingDependencyError`` without it), False = in-process.
    table_only: run nothing; write the table of the cells finished so far, the others one row each with
    ``status="pending"`` (safe beside a sweep still running into the same folder: its unfinished cells'
    temporary folders are left alone).
    only: run just the unfinished cells whose id matches one of these shell patterns (``"*efficientnet_b0*"``);
    the table lists the other unfinished cells as ``pending``. A pattern matching no cell is an error.
    """
    from effnet_trading.evaluation.sweep_report import write_sweep
    from effnet_trading.outputs import run_folder

    t0 = time.perf_counter()
    config = dict(config)
    if "data" in config:  # absolute, so tasks on other workers (and a resumed run) find the same files
        data = config["data"]
        config["data"] = [str(Path(p).resolve()) for p in data] if isinstance(data, list) else str(Path(data).resolve())
    cells = expand_grid(config)
    for cell in cells:  # a config error shows before anything runs
        try:
            _cell_config(cell)
        except EffnetTradingError as exc:  # SpecError, TrainingError from the config objects
            raise SpecError(f"sweep cell {cell.id}: {exc}") from exc
    only = (only,) if isinstance(only, str) else tuple(only)  # one pattern, not its characters
    chosen = _select(cells, only)  # a pattern matching nothing fails here too
    ray_on = not table_only and _use_ray(use_ray, address)
    out = Path(out_dir).resolve()
    _check_out(out, overwrite)
    cells_dir = out / "cells"
    threads = config.get("threads")
    if isinstance(threads, list) and not config.get("cpus_per_cell"):  # a grid axis: reserve the largest
        threads = max((t for t in threads if t), default=None)
    cpus = float(config.get("cpus_per_cell") or threads or 1)
    gpus = float(config.get("gpus_per_cell") or 0)
    device = "cuda" if gpus > 0 else None
    outcome = {c.id: {"status": "ok", "skipped": True} for c in cells if _finished(c, cells_dir / c.id)}
    jobs = sorted(((c, cells_dir / c.id) for c in cells if c.id not in outcome), key=lambda j: _data_key(j[0]))
    outcome |= {c.id: {"status": "pending"} for c, _ in jobs if table_only or c.id not in chosen}
    jobs = [j for j in jobs if j[0].id not in outcome]
    if jobs and device and not ray_on:  # in-process: every cell would fail on the same missing GPU
        from effnet_trading.model_zoo.train import resolve_device

        try:
            resolve_device(device)
        except EffnetTradingError as exc:
            raise SpecError(f"gpus_per_cell = {gpus:g}: {exc}") from exc
    for cell, _ in jobs:  # work folders left by a run killed mid-cell; only those of the cells this run will run
        for tmp in cells_dir.glob(f".{glob.escape(cell.id)}.tmp-*"):
            shutil.rmtree(tmp, ignore_errors=True)
    ray_on = ray_on and bool(jobs)
    runner = _on_ray(jobs, address, cpus, gpus, device) if ray_on else _in_process(jobs, device)
    from tqdm.auto import tqdm

    if jobs:
        before = sum(bool(o.get("skipped")) for o in outcome.values())
        _say(
            f"sweep: {len(jobs)} of {len(cells)} cell(s) to run ({before} finished before), "
            + ("on Ray" if ray_on else "in-process, one after another")
        )
    for k, (cell, res) in enumerate(tqdm(runner, total=len(jobs), desc="sweep cells", disable=not progress), 1):
        outcome[cell.id] = res
        how = "ok" if res["status"] == "ok" else f"failed: {res['error']}"
        _say(f"[{k}/{len(jobs)}] cell {cell.id}: {how} ({res['seconds']:.0f} s)")
    cells_dir.mkdir(parents=True, exist_ok=True)  # the cells made it already; the table needs it even when none ran
    for c in cells:  # another process (a disjoint --only) may have finished, or a user moved, a cell meanwhile
        if outcome[c.id].get("skipped") or outcome[c.id]["status"] == "pending":
            done = _finished(c, cells_dir / c.id)
            outcome[c.id] = {"status": "ok", "skipped": True} if done else {"status": "pending"}
    meta = {
        "cells": len(cells),
        "ran": len(jobs),
        "skipped": sum(bool(o.get("skipped")) for o in outcome.values()),
        "failed": sum(o["status"] == "failed" for o in outcome.values()),
        "pending": sum(o["status"] == "pending" for o in outcome.values()),
        "runner": "none (table only)"
        if table_only
        else ("ray" + (f" at {address}" if address else " (local)"))
        if ray_on
        else "in-process",
        "wall_seconds": time.perf_counter() - t0,
    }
    # merge, never replace: cells/ holds the cells (and, beside --table-only, a running sweep's work folders)
    with run_folder(out, command=SWEEP_COMMAND, config=config, overwrite=True, merge=True) as work:
        table = write_sweep(cells, outcome, cells_dir, work, meta, config)
    return table
