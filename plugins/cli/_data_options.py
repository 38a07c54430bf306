"""Options shared by every command that reads ``--data``: how to read its timestamps."""

from __future__ import annotations

import click

__all__ = ["data_read_options"]


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
