"""``effnet-trading live``: trade confirmed Bybit candles with an exported model (paper by default)."""

from __future__ import annotations

from pathlib import Path

import click

from effnet_trading.plugins.bybit.bars import INTERVALS
from effnet_trading.plugins.bybit.endpoints import CATEGORIES
from effnet_trading.plugins.cli._data_options import cost_options, policy_from_options, policy_options


@click.command("live")
@click.option("--symbol", required=True, help="Bybit symbol, e.g. BTCUSDT.")
@click.option("--category", default="linear", show_default=True, type=click.Choice(CATEGORIES))
@click.option("--interval", required=True, type=click.Choice(list(INTERVALS)), help="Bar size in minutes, or D.")
@click.option(
    "--model",
    "model_dir",
    required=True,
    type=click.Path(file_okay=False, exists=True),
    help="Model folder (model.onnx + card.json).",
)
@click.option("--paper", "mode", flag_value="paper", default=True, help="Paper trading on live data (default).")
@click.option("--testnet", "mode", flag_value="testnet", help="Trade on Bybit testnet (needs BYBIT_API_KEY/SECRET).")
@click.option("--demo", "mode", flag_value="demo", help="Trade on Bybit demo trading (needs demo keys).")
@click.option("--live", "mode", flag_value="live", help="Trade real money on mainnet (asks for confirmation).")
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False),
    help="Folder for decisions.csv, orders.csv, fills.csv, status.json.",
)
@click.option("--max-bars", default=None, type=click.IntRange(min=0), help="Stop after this many live bars.")
@click.option("--duration", default=None, type=click.FloatRange(min=0), help="Stop after this many seconds.")
@click.option("--rest-url", default=None, help="REST base, e.g. http://127.0.0.1:8080 (env EFFNET_BYBIT_REST_URL).")
@click.option("--ws-url", default=None, help="WebSocket base, e.g. ws://127.0.0.1:8081 (env EFFNET_BYBIT_WS_URL).")
@policy_options
@click.option(
    "--max-exposure",
    default=1.0,
    show_default=True,
    type=click.FloatRange(0, 1, min_open=True),
    help="Largest |position| as a fraction of equity.",
)
@cost_options(cash_help="Paper starting cash (the paper broker's account).")
@click.option(
    "--fill",
    default="next_open",
    show_default=True,
    type=click.Choice(["next_open", "book"]),
    help="Paper fills at the next bar's open (as the backtests) or as a taker against the live order book.",
)
@click.option(
    "--fallback/--no-fallback", default=True, show_default=True, help="Fall back to a momentum rule if the model fails."
)
@click.option(
    "--stale-after",
    default=None,
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds without a kline message before reconnecting (default 2 bars).",
)
@click.option(
    "--key-file",
    default=None,
    type=click.Path(dir_okay=False),
    help="File with the API key and secret (JSON or two lines); default: env BYBIT_API_KEY / BYBIT_API_SECRET.",
)
@click.option(
    "--confirm-live",
    default=None,
    metavar="SYMBOL",
    help="With --live: the symbol again, to confirm real-money trading without the interactive prompt.",
)
@click.option(
    "--max-position",
    default=None,
    type=click.FloatRange(min=0, min_open=True),
    help="Kill switch: max |position value| / capital.",
)
@click.option(
    "--max-daily-loss",
    default=None,
    type=click.FloatRange(min=0, min_open=True),
    help="Kill switch: max loss in a UTC day, fraction of capital.",
)
@click.option(
    "--max-orders-per-hour",
    default=None,
    type=click.IntRange(min=1),
    help="Kill switch: max orders in a rolling hour of bar time.",
)
@click.option(
    "--max-stale",
    default=None,
    type=click.FloatRange(min=0, min_open=True),
    help="Kill switch: seconds without a bar before stopping.",
)
@click.option(
    "--threads", default=1, show_default=True, type=click.IntRange(min=1), help="onnxruntime intra-op threads."
)
def live(
    symbol,
    category,
    interval,
    model_dir,
    mode,
    out_dir,
    max_bars,
    duration,
    rest_url,
    ws_url,
    threshold,
    hysteresis,
    long_only,
    max_exposure,
    fees,
    slippage,
    cash,
    fill,
    fallback,
    stale_after,
    key_file,
    confirm_live,
    max_position,
    max_daily_loss,
    max_orders_per_hour,
    max_stale,
    threads,
) -> None:
    """Decide on each confirmed candle (update -> Policy -> Risk -> order) and log it; Ctrl-C stops safely."""
    from effnet_trading.plugins.bybit import build_live_session
    from effnet_trading.plugins.bybit.killswitch import KillSwitch

    if mode != "paper":  # a category the exchange broker cannot trade fails before the confirmation and the keys
        from effnet_trading.plugins.bybit.broker import check_traded_category

        check_traded_category(category)
    if mode == "live" and confirm_live != symbol:
        if confirm_live is not None:
            raise click.ClickException(
                f"--confirm-live {confirm_live!r} does not match --symbol {symbol!r}; nothing was traded."
            )
        typed = click.prompt(
            f"REAL MONEY on Bybit mainnet. Type the symbol ({symbol}) to confirm", default="", show_default=False
        )
        if typed.strip() != symbol:
            raise click.ClickException("not confirmed; nothing was traded. Try --paper, --testnet or --demo first.")
    kill = None
    if any(v is not None for v in (max_position, max_daily_loss, max_orders_per_hour, max_stale)):
        kill = KillSwitch(max_position, max_daily_loss, max_orders_per_hour, max_stale)
    session = build_live_session(
        model_dir,
        symbol=symbol,
        category=category,
        interval=interval,
        out_dir=out_dir,
        mode=mode,
        key_file=key_file,
        kill_switch=kill,
        rest_url=rest_url,
        ws_url=ws_url,
        policy=policy_from_options(threshold, hysteresis, long_only),
        max_exposure=max_exposure,
        fees=fees,
        slippage=slippage,
        cash=cash,
        fallback=fallback,
        stale_after_s=stale_after,
        threads=threads,
        fill=fill,
    )
    click.echo(
        f"live ({mode}) {symbol} {interval} on {session.endpoints.rest} / {session.endpoints.ws}; "
        f"writing {Path(out_dir) / 'status.json'}"
    )
    try:
        status = session.run_sync(max_bars=max_bars, duration_s=duration)
    except KeyboardInterrupt:
        click.echo(
            "stopped by Ctrl-C; the position is left as it is (see status.json); flatten it on the exchange if needed"
        )
        return
    pos = status["position"]
    click.echo(
        f"{status['state']}: {status['live_bars']} live bars, last {status['last_bar']}, position {pos['target']:+.2f} "
        f"({pos['units']:.6g} units), equity {pos['equity']:.2f}, latency p50/p99 "
        f"{_ms(status['latency_ms']['p50'])}/{_ms(status['latency_ms']['p99'])} ms"
    )


def _ms(v) -> str:
    return "-" if v is None else f"{v:.2f}"
