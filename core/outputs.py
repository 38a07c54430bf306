"""Run folders: every command that writes a folder writes it through ``run_folder``.

A run is written into a temporary sibling folder and moved into place only when it completed,
so an interrupted run never leaves a folder that looks finished but mixes two runs. The folder
then carries a manifest (``effnet-run.json``: command, config, input sha256, package version,
start/end time, the files written, ``complete: true``).

Commands whose partial state must survive an interruption (``train`` keeps checkpoints, ``evaluate``
keeps finished folds) write in place through ``resumable_folder`` instead: the manifest says
``complete: false`` until the run ends, so an unfinished folder never looks finished.

Rules (no command ever deletes or overwrites a file it did not create):
- a missing or empty folder, or a complete run of the same command, is (re)written;
- a non-empty folder that is not such a run is refused unless ``overwrite=True``; with
  ``overwrite`` only the run's own files are replaced: other files stay untouched;
- ``resume=True`` continues a stored run only when its config equals the new one (else the
  error names the settings that differ); the new run starts from a copy of the stored files.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from effnet_trading.errors import OutputError

__all__ = [
    "MANIFEST_FILE",
    "run_folder",
    "replace_folder",
    "read_manifest",
    "config_differences",
    "file_sha256",
    "resumable_folder",
    "atomic_file",
    "write_text_atomic",
    "write_json_atomic",
]

MANIFEST_FILE = "effnet-run.json"
_MANIFEST_VERSION = 1


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, mode: int = 0o644) -> Iterator[Path]:
    """Yield a temporary sibling path (same suffix, so ``np.save``/``to_png`` keep it) to write ``path`` to;
    it is renamed over ``path`` when the block completes and removed if it raises: readers never see a
    half-written file, and an interrupted write leaves the old file as it was. The one atomic-write
    mechanism of the project (files; ``run_folder`` does the same for folders)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.stem}.tmp-", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, mode)  # mkstemp makes 0600; results are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) through ``atomic_file``."""
    with atomic_file(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json_atomic(path: str | os.PathLike, obj: Any, indent: int | None = 2, **kw: Any) -> Path:
    """Write ``obj`` as JSON (``default=str`` for dates and paths) through ``atomic_file``."""
    return write_text_atomic(path, json.dumps(obj, indent=indent, default=str, **kw) + "\n")


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _jsonable(obj: Any) -> Any:
    """Config values as JSON sees them (tuples -> lists, paths -> str), so stored and new configs compare."""
    return json.loads(json.dumps(obj, default=str))


def read_manifest(folder: str | os.PathLike) -> dict | None:
    """The folder's manifest, or None when it holds none (or an unreadable one)."""
    path = Path(folder) / MANIFEST_FILE
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def config_differences(stored: Mapping, new: Mapping, prefix: str = "") -> list[str]:
    """``["threshold: 0.5 -> 0.6", ...]`` for every setting that differs (nested dicts by dotted key)."""
    out = []
    for key in sorted(set(stored) | set(new), key=str):
        a, b = stored.get(key, "<unset>"), new.get(key, "<unset>")
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            out += config_differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}: {a!r} -> {b!r}")
    return out


def _entries(folder: Path) -> list[str]:
    """Relative paths of the files below ``folder`` (sorted, '/'-separated)."""
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() or p.is_symlink())


def _is_own_run(manifest: dict | None, command: str) -> bool:
    if not manifest:
        return False
    return manifest.get("command") == command and manifest.get("complete") is True


def _foreign_files(folder: Path, manifest: dict | None) -> list[str]:
    own = set((manifest or {}).get("files", [])) | {MANIFEST_FILE}
    return [f for f in _entries(folder) if f not in own]


def _holds_cwd(folder: Path) -> bool:
    """True when ``folder`` is the working directory or one of its parents (it cannot be renamed away)."""
    try:
        cwd = Path.cwd().resolve()
    except OSError:
        return False
    target = folder.resolve()
    return target == cwd or target in cwd.parents


def replace_folder(work: Path, target: Path) -> None:
    """Rename the finished folder ``work`` over ``target``; an old ``target`` is kept aside until the
    rename succeeded (and put back if it failed), then removed."""
    old = None
    if target.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
        old.rmdir()
        target.replace(old)
    try:
        work.replace(target)
    except BaseException:
        if old is not None:
            old.replace(target)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _merge_into(work: Path, target: Path, old_manifest: dict | None) -> None:
    """Move the run's files into ``target`` one by one, replacing only files of the previous run;
    the manifest goes first (out) and last (in), so a half-merged folder never looks complete."""
    (target / MANIFEST_FILE).unlink(missing_ok=True)
    new_files = set(_entries(work))
    for rel in (old_manifest or {}).get("files", []):
        if rel not in new_files and rel != MANIFEST_FILE:
            (target / rel).unlink(missing_ok=True)
    for rel in sorted(new_files - {MANIFEST_FILE}):
        dest = target / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(work / rel, dest)
    os.replace(work / MANIFEST_FILE, target / MANIFEST_FILE)
    shutil.rmtree(work, ignore_errors=True)


@contextlib.contextmanager
def run_folder(
    out_dir: str | os.PathLike,
    *,
    command: str,
    config: Mapping[str, Any] | None = None,
    inputs: Mapping[str, str | os.PathLike] | None = None,
    overwrite: bool = False,
    resume: bool = False,
    merge: bool = False,
) -> Iterator[Path]:
    """Yield a temporary folder to write the run into; on success move it to ``out_dir`` with a manifest.

    command: e.g. "backtest" (a folder holding a complete run of the same command is one of ours).
    config: the run's full configuration (JSON-able), stored and compared on ``resume``.
    inputs: ``{name: path}`` of input files whose sha256 goes into the manifest.
    merge: move the files into ``out_dir`` one by one and never replace the folder, even when it holds
    nothing but empty folders (``sweep``: its ``cells/`` may belong to a sweep still running).
    On an exception the temporary folder is removed and ``out_dir`` is left exactly as it was.
    """
    target = Path(out_dir)
    config = _jsonable(dict(config or {}))
    if target.exists() and not target.is_dir():
        raise OutputError(f"--out {target} is a file, not a folder; choose a folder path for the results.")
    manifest = read_manifest(target) if target.is_dir() else None
    own = _is_own_run(manifest, command)
    foreign = _foreign_files(target, manifest if own else None) if target.is_dir() else []
    if foreign and not overwrite:
        _refuse_foreign(target, foreign, own)
    if resume and manifest is not None:
        if not own:
            raise OutputError(f"cannot resume in {target}: it holds no complete {command!r} run to continue.")
        _check_resume(target, manifest.get("config", {}), config)
    inputs_sha = _input_hashes(inputs)
    parent = target.resolve().parent
    parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{target.resolve().name}.tmp-", dir=parent))
    os.chmod(work, 0o755)  # mkdtemp makes 0700; results are meant to be shared
    started = _now()
    try:
        if resume and own:
            assert manifest is not None  # own: it is a complete run of this command
            for rel in manifest.get("files", []):
                if (target / rel).is_file():
                    (work / rel).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(target / rel, work / rel)
        yield work
        files = [f for f in _entries(work) if f != MANIFEST_FILE]
        from effnet_trading import __version__

        record = {
            "manifest_version": _MANIFEST_VERSION,
            "command": command,
            "config": config,
            "inputs": inputs_sha,
            "package_version": __version__,
            "started": started,
            "finished": _now(),
            "files": files,
            "complete": True,
        }
        (work / MANIFEST_FILE).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
        if target.is_dir() and (foreign or merge or _holds_cwd(target)):
            _merge_into(work, target, manifest if own else None)
        else:
            if target.is_dir() and not own and _entries(target):  # pragma: no cover - guarded above
                raise OutputError(f"refusing to replace {target}: not an effnet-trading run folder.")
            replace_folder(work, target)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise


def _check_resume(target: Path, stored: Mapping, config: Mapping, ignore: Iterable[str] = ()) -> None:
    """Refuse to resume a run stored with other settings (``ignore``: dotted names that may differ)."""
    diff = [d for d in config_differences(stored, config) if d.split(":")[0] not in set(ignore)]
    if diff:
        raise OutputError(
            f"cannot resume in {target}: the stored run used other settings ({'; '.join(diff)}). "
            "Rerun with the stored settings, or choose a new --out folder (or drop --resume to start over)."
        )


def _input_hashes(inputs: Mapping[str, str | os.PathLike] | None) -> dict:
    out = {}
    for name, path in (inputs or {}).items():
        try:
            out[str(name)] = {"path": str(Path(path).resolve()), "sha256": file_sha256(path)}
        except OSError as exc:
            raise OutputError(f"cannot read input {name} {path} to record its sha256 ({exc}).") from exc
    return out


def _refuse_foreign(target: Path, foreign: list[str], own: bool) -> None:
    shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
    what = "is not an effnet-trading run folder" if not own else "holds files this command did not write"
    raise OutputError(
        f"refusing to write into {target}: it {what} ({shown}). Choose an empty or new --out folder, "
        "or pass --overwrite (overwrite=True) to replace only this command's own files and keep the others."
    )


@contextlib.contextmanager
def resumable_folder(
    out_dir: str | os.PathLike,
    *,
    command: str,
    config: Mapping[str, Any] | None = None,
    inputs: Mapping[str, str | os.PathLike] | None = None,
    overwrite: bool = False,
    resume: bool = False,
    ignore: Iterable[str] = (),
) -> Iterator[Path]:
    """Yield ``out_dir`` itself for a run that writes in place and can be resumed after an interruption.

    The manifest is written first with ``complete: false`` and rewritten with ``complete: true`` (and the
    files written) when the block ends; an exception leaves the unfinished run for ``resume``.
    - a folder holding other files (not a run of ``command``) is refused unless ``overwrite=True``; those
      files are recorded as ``kept`` and never touched;
    - ``resume=True`` continues a run of ``command`` (finished or not) only when its config equals the new
      one (settings named in ``ignore``, dotted for nested ones, do not count), else the error names the
      settings that differ;
    - ``resume=True`` also refuses input files whose sha256 differs from the stored run's;
    - without ``resume``, the files of an earlier run of ``command`` are removed first (no stale folds or
      checkpoints), and nothing else is. An unfinished run records no file list, so every file in its
      folder except the ``kept`` ones is taken as the run's own.
    """
    target = Path(out_dir)
    config = _jsonable(dict(config or {}))
    if target.exists() and not target.is_dir():
        raise OutputError(f"--out {target} is a file, not a folder; choose a folder path for the results.")
    manifest = (read_manifest(target) if target.is_dir() else None) or {}
    own = bool(manifest) and manifest.get("command") == command
    kept = set(manifest.get("kept", [])) if own else set()
    present = _entries(target) if target.is_dir() else []
    if own and manifest.get("complete") is True:
        foreign = [f for f in present if f not in set(manifest.get("files", [])) | kept | {MANIFEST_FILE}]
    elif own:
        foreign = []  # an unfinished run of ours: everything but the recorded ``kept`` files is its own
    else:
        foreign = present
    if foreign and not overwrite:
        _refuse_foreign(target, foreign, own)
    kept |= set(foreign)
    if resume and own:
        _check_resume(target, manifest.get("config", {}), config, ignore)
    inputs_sha = _input_hashes(inputs)
    if resume and own:
        stored = {k: v.get("sha256") for k, v in manifest.get("inputs", {}).items()}
        changed = sorted(k for k, v in inputs_sha.items() if k in stored and stored[k] != v["sha256"])
        if changed:
            raise OutputError(
                f"cannot resume in {target}: input {', '.join(changed)} is not the file the stored run read (its "
                "sha256 differs). Resume with the same data, or choose a new --out folder (or drop --resume)."
            )
    target.mkdir(parents=True, exist_ok=True)
    if own and not resume:  # start over: remove the earlier run's files, never the kept ones
        for rel in present:
            if rel not in kept and rel != MANIFEST_FILE:
                (target / rel).unlink(missing_ok=True)
    from effnet_trading import __version__

    record = {
        "manifest_version": _MANIFEST_VERSION,
        "command": command,
        "config": config,
        "inputs": inputs_sha,
        "package_version": __version__,
        "started": manifest.get("started", _now()) if (own and resume) else _now(),
        "kept": sorted(kept),
        "files": [],
        "complete": False,
    }
    write_json_atomic(target / MANIFEST_FILE, record, sort_keys=True)
    yield target
    record.update(
        finished=_now(),
        files=[f for f in _entries(target) if f not in kept and f != MANIFEST_FILE],
        complete=True,
    )
    write_json_atomic(target / MANIFEST_FILE, record, sort_keys=True)
