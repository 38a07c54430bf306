"""The README's Python snippets run as written (on a small model and the sample data)."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_has_the_three_usage_snippets():
    blocks = _python_blocks()
    assert len(blocks) == 3, "README should show backtrader, vectorbt and plain-Python use"


@pytest.mark.slow
@pytest.mark.parametrize("i", range(3), ids=["backtrader", "vectorbt", "python"])
def test_readme_snippet_runs(i, trained_model_dir, planted, monkeypatch, tmp_path):
    model = trained_model_dir
    code = _python_blocks()[i].replace('"effnet-demo/train/model"', repr(str(model)))
    df = planted.iloc[:1200]
    monkeypatch.chdir(README.parent)  # the snippets use repository-relative paths (sample_data/)
    scope = {"df": df}
    exec(compile(code, f"README block {i}", "exec"), scope)
    if i == 1:
        assert scope["pf"].total_return().shape == (3,)  # one column per threshold
    if i == 2:
        assert len(scope["target"]) == 20_000 and scope["result"].equity.iloc[-1] > 0


def test_readme_config_file_is_a_valid_eval_config(tmp_path):
    """The README's TOML example builds an EvalConfig (the layout of config.json)."""
    from effnet_trading.config import read_toml
    from effnet_trading.evaluation.evaluate import EvalConfig

    (block,) = re.findall(r"```toml\n(.*?)```", README.read_text(), flags=re.S)
    (tmp_path / "run.toml").write_text(block)
    cfg = EvalConfig.from_dict(read_toml(tmp_path / "run.toml"))
    assert cfg.models == ("compact", "small_cnn") and cfg.train.spec.kind == "gadf" and cfg.policy.threshold == 0.4
