"""The ``effnet-trading`` command line. Commands load lazily so ``--help`` stays fast
and inference-only installs never import torch.

Errors a user can cause end in one or two lines and exit status 1, never a traceback: the group
maps the project's ``EffnetTradingError`` tree and ``OSError`` (permissions, missing folders, a full
disk) to messages here, in one place; ``--debug`` (or ``EFFNET_DEBUG=1``) shows the traceback.
"""

from __future__ import annotations

import importlib
import os

import click

__all__ = ["main"]

# command name -> "module:attribute" (modules under effnet_trading.plugins.cli)
_COMMANDS = {
    "sample-data": "sample_data_cmd:sample_data",
    "render": "render_cmd:render",
    "train": "train_cmd:train",
    "zoo": "zoo_cmd:zoo",
    "backtest": "backtest_cmd:backtest",
    "predict": "predict_cmd:predict",
    "demo": "demo_cmd:demo",
    "evaluate": "evaluate_cmd:evaluate",
    "fetch": "fetch_cmd:fetch",
    "live": "live_cmd:live",
    "sweep": "sweep_cmd:sweep",
    "regimes": "regimes_cmd:regimes",
    "lob": "lob_cmd:lob",
    "explain": "explain_cmd:explain",
    "patterns": "patterns_cmd:patterns",
    "candles": "candles_cmd:candles",
}


def _message(exc: BaseException) -> str:
    """One or two lines for a user: what went wrong and, where the error says it, how to fix it."""
    from effnet_trading.errors import EffnetTradingError

    if isinstance(exc, EffnetTradingError):
        return str(exc)
    if isinstance(exc, PermissionError):
        return f"permission denied: {exc.filename or exc}. Choose a folder you can write to (--out) or fix its permissions."
    if isinstance(exc, FileNotFoundError):
        return f"no such file or folder: {exc.filename or exc}. Check the path."
    where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
    return f"{getattr(exc, 'strerror', None) or exc}{where}."


class _LazyGroup(click.Group):
    def invoke(self, ctx):
        from effnet_trading.errors import EffnetTradingError

        debug = bool(ctx.params.get("debug")) or os.environ.get("EFFNET_DEBUG", "") not in ("", "0")
        try:
            return super().invoke(ctx)
        except (
            EffnetTradingError,
            OSError,
        ) as exc:  # what a user can cause; anything else is a bug: its traceback shows
            if debug:
                raise
            raise click.ClickException(_message(exc)) from exc

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
@click.option("--debug", is_flag=True, help="Show the Python traceback of an error instead of a one-line message.")
def main(debug: bool) -> None:
    """EfficientNet trading signals from market images, for backtrader and vectorbt."""
