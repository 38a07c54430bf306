"""The ``effnet-trading`` command line. Commands load lazily so ``--help`` stays fast
and inference-only installs never import torch."""
from __future__ import annotations

import importlib

import click

__all__ = ["main"]

# command name -> "module:attribute" (modules under effnet_trading.plugins.cli)
_COMMANDS = {
    "sample-data": "sample_data_cmd:sample_data",
    "render": "render_cmd:render",
    "train": "train_cmd:train",
    "zoo": "zoo_cmd:zoo",
    "backtest": "backtest_cmd:backtest",
    "demo": "demo_cmd:demo",
    "evaluate": "evaluate_cmd:evaluate",
    "fetch": "fetch_cmd:fetch",
    "live": "live_cmd:live",
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx):
        return sorted(set(_COMMANDS) | set(self.commands))

    def get_command(self, ctx, name):
        if name in self.commands:
            return self.commands[name]
        if name not in _COMMANDS:
            return None
        module, attr = _COMMANDS[name].split(":")
        try:
            mod = importlib.import_module(f"effnet_trading.plugins.cli.{module}")
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.endswith(module):
                return None  # command not built yet in this install
            raise
        return getattr(mod, attr)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="effnet-trading")
def main() -> None:
    """EfficientNet trading signals from market images, for backtrader and vectorbt."""
