"""Options shared by several commands: how to read ``--data`` timestamps, and the trading ``Policy``."""

from __future__ import annotations

import click

__all__ = ["data_read_options", "policy_options", "policy_from_options", "explain_top_option"]


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


def explain_top_option(func):
    """Add ``--explain-top N`` (backtest, evaluate): a report gallery of the N most confident buy and sell bars."""
    return click.option(
        "--explain-top",
        default=0,
        show_default=True,
        type=click.IntRange(min=0),
        help="Add the N most confident buy and sell decisions with their maps (`explain`) to report.html.",
    )(func)
