"""Options shared by several commands: how to read ``--data`` timestamps, the trading ``Policy``, and the
trading costs (``--fees``, ``--slippage``, ``--cash``)."""

from __future__ import annotations

import click

__all__ = [
    "data_read_options",
    "symbols_data_option",
    "model_options",
    "policy_options",
    "policy_from_options",
    "cost_options",
    "explain_top_option",
]


def data_read_options(func):
    """Add ``--date-format`` and ``--tz`` (passed on as ``date_format=`` / ``tz=`` to ``load_ohlcv``)."""
    func = click.option(
        "--tz",
        default=None,
        metavar="ZONE",
        help="Time zone of naive timestamps in --data (e.g. Europe/Berlin); default: read as UTC (said once).",
    )(func)
    return click.option(
        "--date-format",
        "date_format",
        default=None,
        metavar="FMT",
        help="strptime format of --data timestamps, e.g. '%d/%m/%Y %H:%M' (needed when dates read both day- and month-first).",
    )(func)


def symbols_data_option(func):
    """Add ``--data`` (repeatable, as ``data_paths``): an OHLCV CSV, a folder of CSVs, or several files."""
    return click.option(
        "--data",
        "data_paths",
        required=True,
        multiple=True,
        type=click.Path(),
        help="OHLCV CSV (timestamp, open, high, low, close, volume); a folder of CSVs or a repeated --data for "
        "several symbols (a symbol is a file's stem).",
    )(func)


def model_options(func):
    """Add ``--model`` (repeatable) and ``--timeframes`` (``plugins.backtest.build_scorer`` takes them)."""
    func = click.option(
        "--timeframes",
        default=None,
        help="Comma-separated timeframes, one per --model, e.g. 5m,15m,1h (higher ones use closed bars only).",
    )(func)
    return click.option(
        "--model",
        "models",
        multiple=True,
        type=click.Path(file_okay=False),
        help="Model folder (model.onnx + card.json); repeat with --timeframes for an ensemble.",
    )(func)


def policy_options(func):
    """Add ``--threshold``, ``--hysteresis`` and ``--long-only`` (build the Policy with ``policy_from_options``)."""
    func = click.option("--long-only", is_flag=True, help="Sell signals close longs instead of going short.")(func)
    func = click.option(
        "--hysteresis",
        default=0.0,
        show_default=True,
        type=click.FloatRange(0, 1),
        help="Extra confidence needed to open or flip.",
    )(func)
    return click.option(
        "--threshold",
        default=0.5,
        show_default=True,
        type=click.FloatRange(0, 1),
        help="Minimum winning-class probability to act.",
    )(func)


def policy_from_options(threshold: float, hysteresis: float, long_only: bool):
    """The one ``Policy`` a command hands on whole."""
    from effnet_trading.strategies import Policy

    return Policy(threshold, hysteresis, long_only)


def cost_options(cash_help: str = "Starting cash."):
    """Add ``--fees``, ``--slippage`` and ``--cash`` with the same defaults and ranges in every command that
    trades (backtest, live); ``check_costs`` warns on values of 5 % or more where they are used."""

    def decorate(func):
        func = click.option(
            "--cash", default=10_000.0, show_default=True, type=click.FloatRange(min=0, min_open=True), help=cash_help
        )(func)
        func = click.option(
            "--slippage",
            default=0.0005,
            show_default=True,
            type=click.FloatRange(0, 1, max_open=True),
            help="Fill price moved against the trade, fraction of price.",
        )(func)
        return click.option(
            "--fees",
            default=0.001,
            show_default=True,
            type=click.FloatRange(0, 1, max_open=True),
            help="Fee per trade, fraction of notional.",
        )(func)

    return decorate


def explain_top_option(func):
    """Add ``--explain-top N`` (backtest, evaluate): a report gallery of the N most confident buy and sell bars."""
    return click.option(
        "--explain-top",
        default=0,
        show_default=True,
        type=click.IntRange(min=0),
        help="Add the N most confident buy and sell decisions with their maps (`explain`) to report.html.",
    )(func)


def select_by_option(func):
    """Add ``--select-by`` (train, evaluate): which validation score picks the epoch kept by early stopping."""
    return click.option(  # a plain string: TrainConfig checks it (importing model_zoo.train here would load torch)
        "--select-by",
        default="val_loss_T",
        show_default=True,
        help="Epoch kept and counted by early stopping: validation log-loss after a fitted temperature "
        "(val_loss_T), raw log-loss (val_loss) or accuracy (val_acc). docs/training.md, experiment 3.",
    )(func)
