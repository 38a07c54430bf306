"""Bybit v5 (pybit): kline history, live feeds, paper trading and a loopback fake exchange.

Importing this package needs no extra; pybit and websockets load when a REST session or a feed
starts (``pip install "effnet-trading[live]"``). The backtrader store/data live in
``effnet_trading.plugins.bybit.bt_store`` (imported on demand: it needs backtrader).
"""

from effnet_trading.plugins.bybit.bars import INTERVALS, Bar, interval_ms
from effnet_trading.plugins.bybit.book import BookFeed, OrderBook, walk_book
from effnet_trading.plugins.bybit.broker import BybitBroker, round_to_step
from effnet_trading.plugins.bybit.credentials import Credentials, load_credentials
from effnet_trading.plugins.bybit.endpoints import Endpoints, resolve_endpoints
from effnet_trading.plugins.bybit.feed import DELAYED, DISCONNECTED, LIVE, FeedStats, KlineFeed
from effnet_trading.plugins.bybit.history import FetchResult, fetch_klines
from effnet_trading.plugins.bybit.killswitch import KillSwitch
from effnet_trading.plugins.bybit.live import LiveSession, build_live_session
from effnet_trading.plugins.bybit.paper import LiveOrder, PaperBroker, order_link_id
from effnet_trading.plugins.bybit.rest import BybitREST, RetryPolicy, translate_error

__all__ = [
    "INTERVALS",
    "Bar",
    "interval_ms",
    "Endpoints",
    "resolve_endpoints",
    "FetchResult",
    "fetch_klines",
    "BybitREST",
    "RetryPolicy",
    "translate_error",
    "KlineFeed",
    "FeedStats",
    "DELAYED",
    "LIVE",
    "DISCONNECTED",
    "OrderBook",
    "BookFeed",
    "walk_book",
    "LiveSession",
    "build_live_session",
    "BybitBroker",
    "round_to_step",
    "Credentials",
    "load_credentials",
    "KillSwitch",
    "PaperBroker",
    "LiveOrder",
    "order_link_id",
]
