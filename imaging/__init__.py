"""Imaging: OHLCV (and order-book) windows -> image tensors, vectorised numpy, causal."""

from effnet_trading.imaging.data import (
    OHLCV_COLUMNS,
    infer_interval,
    last_closed_index,
    load_ohlcv,
    load_symbols,
    ohlcv_array,
    parse_timeframe,
    resample_ohlcv,
    symbol_paths,
    time_gaps,
    validate_ohlcv,
)
from effnet_trading.imaging.lob import (
    OrderBook,
    as_order_book,
    lob_valid_ends,
    read_binance_depth,
    read_books,
    read_hftbacktest,
    read_hyperliquid_l2,
    render_lob,
)
from effnet_trading.imaging.lob_bars import capture_bars
from effnet_trading.imaging.png import channel_grid, to_png
from effnet_trading.imaging.render import MODEL_INPUT_DTYPE, iter_render, render, valid_ends, warmup
from effnet_trading.imaging.spec import (
    KINDS,
    AnySpec,
    ImageSpec,
    StackSpec,
    spec_from_dict,
    spec_from_json,
    spec_from_options,
)

__all__ = [
    "MODEL_INPUT_DTYPE",
    "OHLCV_COLUMNS",
    "load_symbols",
    "symbol_paths",
    "KINDS",
    "AnySpec",
    "ImageSpec",
    "StackSpec",
    "spec_from_dict",
    "spec_from_json",
    "spec_from_options",
    "load_ohlcv",
    "validate_ohlcv",
    "ohlcv_array",
    "infer_interval",
    "parse_timeframe",
    "resample_ohlcv",
    "last_closed_index",
    "time_gaps",
    "render",
    "iter_render",
    "valid_ends",
    "warmup",
    "OrderBook",
    "as_order_book",
    "render_lob",
    "lob_valid_ends",
    "read_binance_depth",
    "read_hyperliquid_l2",
    "read_hftbacktest",
    "read_books",
    "capture_bars",
    "to_png",
    "channel_grid",
]
