"""Parameter sanity where the objects are built: one clear line per impossible setting, a loud warning
for implausible costs (issue 11)."""

from __future__ import annotations

import numpy as np
import pytest

from effnet_trading.errors import EffnetTradingError, SpecError
from effnet_trading.strategies import simulate


@pytest.mark.parametrize(
    "kw, message",
    [
        (dict(init_cash=float("inf")), "cash=inf must be a finite amount > 0"),
        (dict(init_cash=float("nan")), "cash=nan must be a finite amount > 0"),
        (dict(init_cash=0.0), "cash=0.0 must be a finite amount > 0"),
        (dict(fees=-0.001), "fees=-0.001 must be a fraction of the traded notional in [0, 1)"),
        (dict(slippage=float("nan")), "slippage=nan must be a fraction"),
        (dict(fees=1.5), "fees=1.5 must be a fraction"),
    ],
)
def test_impossible_costs_and_cash_refused(planted, kw, message):
    with pytest.raises(SpecError) as exc:
        simulate(planted.iloc[:50], np.zeros(50), **kw)
    assert message in str(exc.value) and "\n" not in str(exc.value)


@pytest.mark.parametrize("name", ["fees", "slippage"])
def test_costs_of_5_percent_warn_loudly(planted, name):
    with pytest.warns(UserWarning, match=rf"{name}=0.05 is 5.0% of every trade's notional.*Did you mean 0.0005"):
        simulate(planted.iloc[:50], np.zeros(50), **{name: 0.05})


def test_engines_check_costs_too(planted, tiny_model_dir):
    from effnet_trading.plugins.backtrader import run_backtrader
    from effnet_trading.plugins.vectorbt import portfolio_from_signals

    with pytest.raises(SpecError, match="cash=inf"):
        run_backtrader(planted.iloc[:100], tiny_model_dir, init_cash=float("inf"))
    with pytest.raises(SpecError, match="fees=-1"):
        portfolio_from_signals(planted.iloc[:100], np.zeros(100), fees=-1)


@pytest.mark.parametrize(
    "kw, message",
    [
        (dict(lr=-1.0), "lr=-1.0 must be > 0"),
        (dict(lr=0.0), "lr=0.0 must be > 0"),
        (dict(max_train_samples=-5), "max_train_samples=-5 must be >= 1"),
        (dict(device="tpu"), "device='tpu' is not one of 'auto', 'cpu', 'cuda', 'cuda:N', 'mps'"),
        (dict(model="small_cnn", model_kwargs={"widht": [8]}), "model 'small_cnn' has no option(s) ['widht']"),
        (dict(model="compact", model_kwargs={"dropout": 0.2}), "it takes ['drop_path_rate', 'drop_rate'"),
    ],
)
def test_train_config_refuses_impossible_settings(kw, message):
    from effnet_trading.model_zoo.train import TrainConfig

    with pytest.raises(EffnetTradingError) as exc:
        TrainConfig(**kw)
    assert message in str(exc.value)


def test_create_model_names_unknown_options():
    from effnet_trading.model_zoo import create_model

    with pytest.raises(SpecError, match=r"has no option\(s\) \['depth'\] .*; it takes \['drop_rate', 'widths'\]"):
        create_model("small_cnn", depth=3)


def test_render_size_huge_refused():
    from effnet_trading.imaging import ImageSpec

    with pytest.raises(SpecError, match=r"size \(100000, 100000\) is larger than 4096 pixels a side"):
        ImageSpec("gasf", window=32, size=100000)
    assert ImageSpec("gasf", window=32, size=4096).size == (4096, 4096)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--lr", "-1"], "lr=-1.0 must be > 0"),
        (["--max-train-samples", "-5"], "max_train_samples=-5 must be >= 1"),
        (["--device", "tpu"], "device='tpu' is not one of"),
    ],
)
def test_train_cli_one_line_each(tmp_path, planted, args, message):
    from click.testing import CliRunner

    from effnet_trading.plugins.cli import main

    csv = tmp_path / "bars.csv"
    planted.iloc[:300].to_csv(csv, index_label="timestamp")
    res = CliRunner().invoke(main, ["train", "--data", str(csv), "--out", str(tmp_path / "run"), *args])
    assert res.exit_code == 1 and message in res.output and "Traceback" not in res.output


def test_render_cli_size_refused(tmp_path, planted):
    from click.testing import CliRunner

    from effnet_trading.plugins.cli import main

    csv = tmp_path / "bars.csv"
    planted.iloc[:100].to_csv(csv, index_label="timestamp")
    res = CliRunner().invoke(
        main, ["render", "--data", str(csv), "--kind", "gasf", "--size", "100000", "--npy", str(tmp_path / "x.npy")]
    )
    assert res.exit_code != 0 and "larger than 4096 pixels" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "x.npy").exists()
