"""``effnet-trading fetch``: download Bybit kline history into an OHLCV CSV (closed bars, resumable)."""

from __future__ import annotations

import click

from effnet_trading.plugins.bybit.bars import INTERVALS
from effnet_trading.plugins.bybit.endpoints import CATEGORIES


@click.command("fetch")
@click.option("--symbol", required=True, help="Bybit symbol, e.g. BTCUSDT.")
@click.option("--category", default="linear", show_default=True, type=click.Choice(CATEGORIES))
@click.option("--interval", required=True, type=click.Choice(list(INTERVALS)), help="Bar size in minutes, or D.")
@click.option("--start", required=True, help="First bar open time (UTC), e.g. 2024-01-01.")
@click.option("--end", required=True, help="End of the range (UTC, exclusive), e.g. 2024-02-01.")
@click.option(
    "--out",
    "out_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="CSV to write; an existing download of the same range is resumed.",
)
@click.option("--testnet", "network", flag_value="testnet", help="Use Bybit testnet.")
@click.option("--demo", "network", flag_value="demo", help="Use Bybit demo trading's REST host.")
@click.option("--rest-url", default=None, help="REST base, e.g. http://127.0.0.1:8080 (env EFFNET_BYBIT_REST_URL).")
@click.option(
    "--ws-url", default=None, hidden=True, help="Unused by fetch; accepted so one set of flags serves fetch and live."
)
@click.option(
    "--max-wait",
    default=120.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Total seconds one request may spend retrying rate limits and network errors.",
)
@click.option("--progress/--no-progress", default=True, show_default=True)
def fetch(symbol, category, interval, start, end, out_path, network, rest_url, ws_url, max_wait, progress) -> None:
    """Download closed klines [start, end) into CSV, judged closed by the exchange's clock."""
    from effnet_trading.plugins.bybit import BybitREST, RetryPolicy, fetch_klines, resolve_endpoints

    ep = resolve_endpoints(network or "mainnet", rest_url, ws_url)
    rest = BybitREST(ep, retry=RetryPolicy(total_s=max_wait))
    res = fetch_klines(rest, symbol, category, interval, start, end, out_path, progress=progress)
    how = f"resumed after {res.resumed_from}, " if res.resumed_from is not None else ""
    click.echo(
        f"{res.path}: {res.bars} bars ({how}{res.new_bars} new, {res.pages} page(s), {rest.retries} retried request(s)"
        f"{', still-open candle left out' if res.dropped_open else ''}) from {ep.rest}"
    )
