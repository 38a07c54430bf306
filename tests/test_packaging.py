"""The built wheel holds every folder of Python modules: setup.cfg lists packages by hand (the
folders are mapped into the effnet_trading namespace), so a new folder works in an editable
install and would be missing from the wheel without this test."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# folders that are not part of the installed package
NOT_INSTALLED = {"tests", "benchmarks", "scripts", "examples", "docs", "sample_data", "build", "dist"}


def _expected_packages() -> set[str]:
    """Every folder holding .py files -> its import name (core/ is the effnet_trading root)."""
    out = set()
    for path in ROOT.rglob("*.py"):
        rel = path.parent.relative_to(ROOT)
        if not rel.parts or rel.parts[0] in NOT_INSTALLED or rel.parts[0].startswith(".") or "egg-info" in rel.parts[0]:
            continue
        parts = ("effnet_trading",) + (rel.parts[1:] if rel.parts[0] == "core" else rel.parts)
        out.add(".".join(parts))
    return out


@pytest.fixture(scope="session")
def wheel(tmp_path_factory) -> Path:
    """The project built once per session as pip would (about 2 s of CPU; no network, no isolation),
    from a clean copy of the sources: a stale build/ folder must not hide a missing package."""
    src = tmp_path_factory.mktemp("src") / "effnet-trading"
    shutil.copytree(
        ROOT,
        src,
        ignore=shutil.ignore_patterns(
            ".*", "build", "dist", "*.egg-info", "__pycache__", "sample_data", "docs", "runs"
        ),
    )
    dest = tmp_path_factory.mktemp("wheel")
    out = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(dest), str(src)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    (whl,) = dest.glob("effnet_trading-*.whl")
    return whl


def test_wheel_holds_every_package_folder(wheel):
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
    built = {n.rsplit("/", 1)[0].replace("/", ".") for n in names if n.endswith(".py")}
    expected = _expected_packages()
    assert expected - built == set(), (
        f"folders missing from the wheel: {sorted(expected - built)}; "
        "add them to [options] package_dir and packages in setup.cfg"
    )
    assert built - expected == set(), f"the wheel holds packages with no folder: {sorted(built - expected)}"
    assert "effnet_trading/py.typed" in names
    assert not any(n.startswith(("tests/", "effnet_trading/tests")) for n in names)


def test_expected_packages_cover_the_layers():
    assert {
        "effnet_trading",
        "effnet_trading.imaging",
        "effnet_trading.model_zoo",
        "effnet_trading.strategies",
        "effnet_trading.evaluation",
        "effnet_trading.plugins",
        "effnet_trading.plugins.cli",
    } <= _expected_packages()
