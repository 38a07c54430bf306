"""The layer contract of DESIGN.md, checked on the source: imports only point down."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# folder -> (forbidden top-level modules, forbidden effnet_trading subpackages)
RULES = {
    "imaging": (
        {"torch", "onnxruntime", "onnx", "backtrader", "vectorbt", "pybit"},
        {"model_zoo", "strategies", "evaluation", "plugins"},
    ),
    "model_zoo": ({"backtrader", "vectorbt", "pybit"}, {"strategies", "evaluation", "plugins"}),
    # the signal engine is torch-free: evaluation (which trains) lives in evaluation/
    "strategies": ({"torch", "backtrader", "vectorbt", "pybit"}, {"evaluation", "plugins"}),
    "evaluation": ({"backtrader", "vectorbt", "pybit"}, {"plugins", "applications"}),
    # beside evaluation: may train (torch), never imports an adapter or evaluation
    "applications": ({"backtrader", "vectorbt", "pybit"}, {"plugins", "evaluation"}),
}
# model_zoo modules that must stay torch-free (the inference runtime)
TORCH_FREE = [
    "model_zoo/runtime.py",
    "model_zoo/card.py",
    "model_zoo/failover.py",
    "model_zoo/registry.py",
    "model_zoo/metrics.py",
    "model_zoo/calibration.py",
    "model_zoo/splits.py",
    "model_zoo/explain.py",
]


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_every_package_folder_has_a_rule():
    """A new top-level package folder must be given its layer rule here (or be plugins/core)."""
    folders = {p.parent.name for p in ROOT.glob("*/__init__.py")} - {"core", "plugins", "tests", "benchmarks"}
    assert folders == set(RULES), f"folders without a layer rule: {sorted(folders - set(RULES))}"


@pytest.mark.parametrize("folder", sorted(RULES))
def test_imports_point_down(folder):
    bad_top, bad_sub = RULES[folder]
    offenders = []
    for path in sorted((ROOT / folder).glob("*.py")):
        for name in _imports(path):
            top = name.split(".")[0]
            sub = name.split(".")[1] if name.startswith("effnet_trading.") else None
            if top in bad_top or sub in bad_sub:
                offenders.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not offenders, "layer rule broken (DESIGN.md 'imports only point down'):\n" + "\n".join(offenders)


@pytest.mark.parametrize("rel", TORCH_FREE)
def test_runtime_modules_never_import_torch(rel):
    path = ROOT / rel
    assert path.is_file(), f"{rel} was renamed or removed: update TORCH_FREE in this test"
    assert not any(n.split(".")[0] == "torch" for n in _imports(path)), f"{rel} must not import torch"


def test_inference_path_works_without_torch(tiny_model_dir, planted):
    """Block torch entirely and run render -> Predictor: an inference-only install needs no torch."""
    code = f"""
import sys
sys.modules['torch'] = None
from effnet_trading.imaging import load_ohlcv, render
from effnet_trading.model_zoo.runtime import Predictor
p = Predictor(r'{tiny_model_dir}')
df = load_ohlcv(r'{ROOT / "sample_data" / "planted_5m.csv"}').iloc[:100]
probs = p.predict(render(p.spec, df))
assert probs.shape == (100 - p.spec.window + 1, 3), probs.shape
print('ok')
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


def test_import_has_no_side_effects():
    code = (
        "import logging, effnet_trading, effnet_trading.imaging, effnet_trading.model_zoo, effnet_trading.strategies; "
        "import sys; assert 'torch' not in sys.modules, 'importing the package imported torch'; "
        "assert not logging.getLogger().handlers, 'importing configured logging'; print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


def test_nothing_imports_a_cli_module():
    """DESIGN.md: a CLI module parses options and calls the library; nothing else imports it."""
    offenders = []
    for path in sorted(ROOT.glob("*/**/*.py")):
        rel = path.relative_to(ROOT)
        if rel.parts[0] in ("tests", "benchmarks", "scripts", "examples") or rel == Path("plugins/cli/__init__.py"):
            continue  # the CLI group registers its commands
        inside_cli = rel.parts[:2] == ("plugins", "cli")  # CLI modules may share the CLI's private option helpers
        offenders += [
            f"{rel} imports {n}"
            for n in _imports(path)
            if n.startswith("effnet_trading.plugins.cli")
            and not (inside_cli and n.startswith("effnet_trading.plugins.cli._"))
        ]
    assert not offenders, "library code imports the CLI:\n" + "\n".join(offenders)


def test_signal_engine_runs_without_torch():
    """Every strategies/ module imports with torch blocked: the signal engine is torch-free."""
    mods = sorted(p.stem for p in (ROOT / "strategies").glob("*.py") if p.stem != "__init__")
    code = (
        "import sys, importlib; sys.modules['torch'] = None\n"
        f"for m in {mods!r}: importlib.import_module('effnet_trading.strategies.' + m)\nprint('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]
