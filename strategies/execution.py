"""The reference execution simulator: the one execution contract every engine follows.

Execution contract
------------------
* A decision is made at the **close of bar t** from bars <= t only. Its result is a target
  position ``target[t]``: a fraction of equity in [-1, 1] (+ long, - short, 0 flat).
* The target is **filled at the open of bar t+1**. The target of the last bar is never filled.
* An order is sent only when the target **changes** (``target[t] != target[t-1]``; the
  target before the first bar is 0). Between changes the number of units is held constant:
  no rebalancing as prices drift.
* Order size: with ``E = cash + units * open[t+1]`` (equity marked at the open), the new
  units are ``target[t] * E / open[t+1]``; the difference to the current units is traded.
* Slippage moves the fill price against the trade by a fraction: buys fill at
  ``open * (1 + slippage)``, sells at ``open * (1 - slippage)``.
* Fees are a fraction of traded notional, ``fees * |units traded| * fill price``, paid from cash.
* A buy never spends more than the cash on hand: if ``units * fill * (1 + fees)`` exceeds the
  cash, the buy is reduced to ``cash / (fill * (1 + fees))`` units (so a 100 % long after fees
  holds slightly less than ``equity / open`` units; vectorbt's ``from_orders`` does the same).
* Equity is marked to the **close** of each bar: ``cash + units * close[t]``.
* **Ruin.** Equity cannot go below zero (a margin account loses at most what it holds; the exchange
  closes the position first). The account is ruined at the first bar where the position's mark
  reaches <= 0: at the open before that bar's fill (a gap), or at the bar's worst price after it
  (the high for a short, the low for a long). The position is then closed at the bankruptcy price
  (where equity is exactly 0) without fee or slippage; equity, cash, units and position are 0 from
  that bar on, no later order fills, the trade's status is ``liquidated`` and the result's
  ``ruined_at`` is that bar. Only a short can get there under these targets (|target| <= 1, buys
  capped by cash): a 1x short is ruined when the price doubles. A real exchange liquidates earlier
  (at its maintenance margin), so an account that survives here may not have survived there; one
  ruined here was ruined there too. ``apply_ruin`` applies the rule to any engine's fills: the
  backtrader and vectorbt backtests (``run_backtrader``, ``plugins.backtest.run_backtest``) do, as
  neither engine liquidates. A shared-cash portfolio (``cash_sharing=True``) is one account: ``pooled_ruin``
  finds its ruin bar (the pool's cash plus every position, each at its worst price of the bar at once);
  ``run_backtest_many`` then sets its equity to 0 from that bar and reports it as ``ruined_at``, in both
  engines, but does not rewrite the engine's fills (its trades after that bar are the engine's, not the
  account's). vectorbt's ``portfolio_from_signals`` warns at that bar.

The backtrader and vectorbt plugins are configured to match this, and parity is tested
against ``simulate``. For vectorbt, ``Portfolio.from_orders(close, size=s,
size_type="targetpercent", price=open, fees=fees, slippage=slippage, init_cash=cash)`` with
``s = target.shift(1)`` kept only where it changes (NaN elsewhere) gives the same equity to
~1e-15 relative (checked with vectorbt 1.2 on long/short/fractional targets).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

import numpy as np
import pandas as pd

from effnet_trading.errors import DataError, SpecError
from effnet_trading.strategies.signal import canonical_ohlcv

__all__ = [
    "TRADE_COLUMNS",
    "Fill",
    "FILL_ROW_COLUMNS",
    "SimResult",
    "simulate",
    "align_target",
    "trades_from_orders",
    "check_costs",
    "HIGH_COST",
    "apply_ruin",
    "pooled_ruin",
    "pooled_ruin_hits",
    "equity_returns",
]


class Fill(NamedTuple):
    """One executed order, as every engine (``simulate``, backtrader, vectorbt) and the live brokers
    (paper and exchange) report it. The last three fields are filled where the engine knows them
    (the live session: time, ``orderLinkId`` and how it filled)."""

    bar: int  # position of the fill bar in the ohlcv index (live: in the session's bar stream; -1 before any)
    units: float  # units traded: + bought, - sold
    price: float  # fill price (slippage included)
    fee: float  # fee paid, in cash units
    target: float  # target fraction the order fills (NaN where the engine does not know it)
    units_after: float  # position in units after the fill
    cash_after: float  # cash after the fill (NaN where the engine does not know it)
    time: Any = None  # fill time (UTC Timestamp) where known
    order_link_id: str = ""  # the client order id (live), unique per decision
    via: str = "next_open"  # next_open (the backtests' contract) | book | exchange | kill | liquidation

    @property
    def side(self) -> str:
        return "buy" if self.units > 0 else "sell"

    @property
    def size(self) -> float:
        return abs(self.units)

    def as_row(self) -> dict:
        """The ``fills.csv`` row of a live session (``FILL_ROW_COLUMNS``): ``units``/``cash`` there are the
        position and cash *after* the fill."""
        return dict(
            zip(
                FILL_ROW_COLUMNS,
                (
                    self.time,
                    self.side,
                    self.size,
                    self.price,
                    self.fee,
                    self.target,
                    self.order_link_id,
                    self.units_after,
                    self.cash_after,
                    self.via,
                ),
            )
        )


FILL_ROW_COLUMNS = ["time", "side", "size", "price", "fee", "target", "order_link_id", "units", "cash", "via"]


@dataclass
class SimResult:
    """Output of ``simulate``: per-bar series on the ohlcv index plus orders and trades."""

    equity: pd.Series  # marked to close each bar, in cash units (0 from a ruin on)
    returns: pd.Series  # equity.pct_change() with the first bar against init_cash; -1 at a ruin, 0 after it
    position: pd.Series  # target fraction in effect during each bar (filled at that bar's open)
    units: pd.Series  # units held during each bar (after the open fill)
    cash: pd.Series  # cash at each bar's close
    orders: pd.DataFrame  # time, side, size, price, fee, target, via (next_open | liquidation)
    trades: pd.DataFrame  # entry_time, exit_time, direction, entry_price, exit_price, size, pnl, return, fees, status
    init_cash: float = 10_000.0
    config: dict = field(default_factory=dict)
    fills: list[Fill] = field(default_factory=list)  # the orders as Fill records
    ruined_at: pd.Timestamp | None = None  # the bar where equity reached 0 (see "Ruin" in the module docstring)

    @property
    def final_equity(self) -> float:
        return float(self.equity.iloc[-1])


def align_target(ohlcv: pd.DataFrame, target) -> np.ndarray:
    """Targets -> ``(T,)`` float64 aligned to the ohlcv index (Series reindexed; NaN -> 0), checked in [-1, 1]."""
    if isinstance(target, pd.Series):
        if target.index.equals(ohlcv.index):
            values = target.to_numpy(dtype=np.float64)
        else:
            values = target.reindex(ohlcv.index).to_numpy(dtype=np.float64)
            if np.isnan(values).all() and target.notna().any():
                raise DataError(
                    "target Series shares no timestamps with the ohlcv index (is one tz-naive or shifted?); "
                    "build targets on the same index, e.g. policy.positions(model.predict_proba(ohlcv))."
                )
    else:
        values = np.asarray(target, dtype=np.float64).reshape(-1)
        if len(values) != len(ohlcv):
            raise DataError(
                f"target has {len(values)} values but ohlcv has {len(ohlcv)} bars; pass one target per bar."
            )
    values = np.where(np.isnan(values), 0.0, values)
    bad = np.flatnonzero(~np.isfinite(values) | (np.abs(values) > 1.0 + 1e-12))
    if len(bad):
        raise DataError(
            f"target must be a fraction of equity in [-1, 1]; bars {bad[:5].tolist()} hold {values[bad[:5]].tolist()}. "
            "Clip it (Risk(max_exposure=...)) or rescale it."
        )
    return values


def _orders(open_: np.ndarray, tgt: np.ndarray, fees: float, slippage: float, init_cash: float) -> list[Fill]:
    """Walk the target changes only: one ``Fill`` per order."""
    prev = np.concatenate([[0.0], tgt[:-1]])
    change = np.flatnonzero(tgt[:-1] != prev[:-1])  # decision bars whose target changed (last bar never fills)
    cash, units = init_cash, 0.0
    fills = []
    for t in change:
        s = t + 1
        equity = cash + units * open_[s]
        new_units = tgt[t] * equity / open_[s]
        delta = new_units - units
        price = open_[s] * (1.0 + slippage * np.sign(delta))
        if delta > 0.0 and delta * price * (1.0 + fees) > cash:
            delta = max(cash, 0.0) / (price * (1.0 + fees))  # a buy spends at most the cash on hand
            new_units = units + delta
        if delta == 0.0:
            continue
        fee = fees * abs(delta) * price
        cash -= delta * price + fee
        units = new_units
        fills.append(Fill(int(s), float(delta), float(price), float(fee), float(tgt[t]), float(units), float(cash)))
    return fills


def _state(
    fills: list[Fill], init_cash: float, n: int, side: Literal["left", "right"]
) -> tuple[np.ndarray, np.ndarray]:
    """(units, cash) at each of ``n`` bars after the fills at or before it (``side='right'``) or only those
    before it (``'left'``: the state at the open, before that bar's fill). Cash is recomputed from the
    fills' units, prices and fees (backtrader logs no cash)."""
    bars = np.array([f.bar for f in fills], dtype=np.int64)
    last = np.searchsorted(bars, np.arange(n), side=side)  # fills counted at each bar
    units = np.concatenate([[0.0], [f.units_after for f in fills]])[last]
    flows = np.array([f.units * f.price + f.fee for f in fills], dtype=np.float64)
    cash = float(init_cash) - np.concatenate([[0.0], np.cumsum(flows)])[last]
    return units, cash


def apply_ruin(ohlcv: pd.DataFrame, fills: list[Fill], init_cash: float) -> tuple[list[Fill], int | None]:
    """The contract's ruin rule (module docstring) on an engine's fills: ``(fills, ruin bar)``. Without a ruin,
    the fills unchanged and None. With one, the fills before it (and the ruin bar's own fill when the
    account survived that bar's open), then a ``via='liquidation'`` fill closing the position at the
    bankruptcy price; the caller sets equity to 0 from the returned bar on."""
    if not fills:
        return fills, None  # never in the market: cash stays init_cash > 0
    n = len(ohlcv)
    open_, close = ohlcv["open"].to_numpy(np.float64), ohlcv["close"].to_numpy(np.float64)
    high = np.maximum.reduce([ohlcv["high"].to_numpy(np.float64), open_, close])
    low = np.minimum.reduce([ohlcv["low"].to_numpy(np.float64), open_, close])
    units_pre, cash_pre = _state(fills, init_cash, n, "left")
    units, cash = _state(fills, init_cash, n, "right")
    at_open = cash_pre + units_pre * open_ <= 0.0
    in_bar = cash + units * np.where(units < 0.0, high, low) <= 0.0
    hit = np.flatnonzero(at_open | in_bar)
    if not len(hit):
        return fills, None
    r = int(hit[0])
    kept = [f for f in fills if f.bar < r or (f.bar == r and not at_open[r])]
    held, cash_r = (units_pre[r], cash_pre[r]) if at_open[r] else (units[r], cash[r])
    if held != 0.0:
        # the price at which cash + held * price == 0; at 0 when costs left the account insolvent with a
        # sliver of a short (a cover capped by cash): the remainder is written off
        bankrupt = max(-cash_r / held, 0.0)
        kept.append(Fill(r, float(-held), float(bankrupt), 0.0, 0.0, 0.0, 0.0, via="liquidation"))
    return kept, r


def pooled_ruin(frames: dict[str, pd.DataFrame], fills: dict[str, list[Fill]], init_cash: float) -> pd.Timestamp | None:
    """The ruin rule for one cash pool over several symbols (a shared-cash portfolio): the first timestamp, on
    the union of the frames' indexes, where the pool's cash plus every symbol's units marked at its open
    (before that bar's fills) or at its worst price of the bar (the high for a short, the low for a long, all
    at once: stricter than any one moment's mark for a hedged book) is <= 0; None if never. A symbol without
    that bar is marked at its last close. ``frames``: canonical OHLCV per symbol; ``fills``: each symbol's
    fills, ``bar`` a position in that symbol's own frame."""
    index = next(iter(frames.values())).index
    for f in frames.values():
        index = index.union(f.index)
    n, k = len(index), len(frames)
    prices = {col: np.full((n, k), np.nan) for col in ("open", "high", "low", "close")}
    bought, flow = np.zeros((n, k)), np.zeros(n)
    for j, (sym, f) in enumerate(frames.items()):
        pos = index.get_indexer(f.index)
        for col, wide in prices.items():
            wide[pos, j] = f[col].to_numpy(np.float64)
        for x in fills.get(sym, []):
            if not 0 <= x.bar < len(pos):
                raise SpecError(f"pooled_ruin: a fill of {sym!r} at bar {x.bar}, outside its {len(pos)} bars.")
            bought[pos[x.bar], j] += x.units
            flow[pos[x.bar]] += x.units * x.price + x.fee
    units, cash = np.cumsum(bought, axis=0), float(init_cash) - np.cumsum(flow)
    units_pre = np.vstack([np.zeros((1, k)), units[:-1]])
    cash_pre = np.concatenate([[float(init_cash)], cash[:-1]])
    hit = np.flatnonzero(pooled_ruin_hits(cash_pre, units_pre, cash, units, *prices.values()))
    return index[hit[0]] if len(hit) else None


def pooled_ruin_hits(cash_pre, units_pre, cash, units, open_, high, low, close) -> np.ndarray:
    """Per bar, whether one cash pool is ruined there (``pooled_ruin``'s rule): ``cash_pre`` / ``units_pre``
    the pool's cash ``(T,)`` and units ``(T, k)`` before the bar's fills, ``cash`` / ``units`` after them;
    prices ``(T, k)``, NaN where a symbol has no bar (marked at its last close, 0 before its first)."""
    hi, lo = np.fmax(np.fmax(high, open_), close), np.fmin(np.fmin(low, open_), close)
    last = pd.DataFrame(close).ffill().fillna(0.0).to_numpy()
    o, hi, lo = (np.where(np.isnan(x), last, x) for x in (open_, hi, lo))
    at_open = cash_pre + (units_pre * o).sum(axis=1) <= 0.0
    return at_open | (cash + (units * np.where(units < 0.0, hi, lo)).sum(axis=1) <= 0.0)


HIGH_COST = 0.05  # fees or slippage at or above 5 % per trade are almost always a units mistake (5 for 0.05 %?)


def check_costs(fees: float, slippage: float, init_cash: float) -> None:
    """Refuse impossible costs/cash (SpecError, one line each); warn loudly at fees or slippage >= 5 %."""
    for name, v in (("fees", fees), ("slippage", slippage)):
        if not (isinstance(v, (int, float, np.floating, np.integer)) and math.isfinite(v) and 0.0 <= v < 1.0):
            raise SpecError(f"{name}={v!r} must be a fraction of the traded notional in [0, 1), e.g. 0.001 for 0.1 %.")
        if v >= HIGH_COST:
            warnings.warn(
                f"{name}={v:g} is {v:.1%} of every trade's notional: far above any real market "
                f"(0.001 = 0.1 % is typical). Did you mean {v / 100:g}?",
                UserWarning,
                stacklevel=3,
            )
    if not (
        isinstance(init_cash, (int, float, np.floating, np.integer)) and math.isfinite(init_cash) and init_cash > 0
    ):
        raise SpecError(f"cash={init_cash!r} must be a finite amount > 0, e.g. 10000.")


def simulate(ohlcv, target, *, fees: float = 0.001, slippage: float = 0.0, init_cash: float = 10_000.0) -> SimResult:
    """Backtest targets under the execution contract (module docstring). ``target``: Series on the
    ohlcv index (or array, one per bar) of equity fractions in [-1, 1]; NaN -> 0."""
    frame = canonical_ohlcv(ohlcv)
    check_costs(fees, slippage, init_cash)
    tgt = align_target(frame, target)
    open_ = frame["open"].to_numpy()
    close = frame["close"].to_numpy()
    n = len(frame)
    fills, ruin = apply_ruin(frame, _orders(open_, tgt, fees, slippage, float(init_cash)), float(init_cash))

    # piecewise-constant state: each bar takes the state after the last order filled at or before it
    fill_bar = np.array([f.bar for f in fills], dtype=np.int64)
    last = np.searchsorted(fill_bar, np.arange(n), side="right") - 1  # -1: before the first order

    def pick(name: str, start: float) -> np.ndarray:
        return np.concatenate([[start], [getattr(f, name) for f in fills]])[last + 1]

    units, cash, position = pick("units_after", 0.0), pick("cash_after", float(init_cash)), pick("target", 0.0)
    equity = cash + units * close
    if ruin is not None:  # nothing is left from the ruin on (also when no position remained to liquidate)
        for series in (units, cash, position, equity):
            series[ruin:] = 0.0
    idx = frame.index
    returns = equity_returns(equity, float(init_cash))

    orders = pd.DataFrame(
        {
            "time": idx[[f.bar for f in fills]],
            "side": ["buy" if f.units > 0 else "sell" for f in fills],
            "size": [abs(f.units) for f in fills],
            "price": [f.price for f in fills],
            "fee": [f.fee for f in fills],
            "target": [f.target for f in fills],
            "via": [f.via for f in fills],
        }
    )
    trades = trades_from_orders(fills, idx, close[-1])
    return SimResult(
        equity=pd.Series(equity, index=idx, name="equity"),
        returns=pd.Series(returns, index=idx, name="returns"),
        position=pd.Series(position, index=idx, name="position"),
        units=pd.Series(units, index=idx, name="units"),
        cash=pd.Series(cash, index=idx, name="cash"),
        orders=orders,
        trades=trades,
        init_cash=float(init_cash),
        config={"fees": fees, "slippage": slippage, "init_cash": float(init_cash)},
        fills=fills,
        ruined_at=None if ruin is None else idx[ruin],
    )


def equity_returns(equity: np.ndarray, init_cash: float) -> np.ndarray:
    """Per-bar returns of an equity curve, the first bar against ``init_cash``; 0 once equity is 0 (ruined)."""
    before = np.concatenate([[init_cash], equity[:-1]])
    out = np.zeros(len(equity))
    np.divide(equity, before, out=out, where=before != 0.0)
    return np.where(before != 0.0, out - 1.0, 0.0)


TRADE_COLUMNS = [
    "entry_time",
    "exit_time",
    "direction",
    "entry_price",
    "exit_price",
    "size",
    "pnl",
    "return",
    "fees",
    "status",
]


def trades_from_orders(fills: list[Fill], idx: pd.DatetimeIndex, last_close: float) -> pd.DataFrame:
    """``Fill`` records -> round trips. A trade is a run of same-sign position; a flip closes one and opens
    the next (the order and its fee are split pro rata). Entry/exit prices are unit-weighted
    averages of the adds/reductions; pnl is the trade's net cash flow after fees."""
    rows = []
    cur = None  # open trade accumulator
    units = 0.0

    def _open(time, sign):
        return {
            "entry_time": time,
            "sign": sign,
            "in_units": 0.0,
            "in_value": 0.0,
            "out_units": 0.0,
            "out_value": 0.0,
            "flow": 0.0,
            "fees": 0.0,
        }

    def _fill(tr, d, price, fee):
        tr["flow"] += -d * price - fee
        tr["fees"] += fee
        if np.sign(d) == tr["sign"]:
            tr["in_units"] += abs(d)
            tr["in_value"] += abs(d) * price
        else:
            tr["out_units"] += abs(d)
            tr["out_value"] += abs(d) * price

    def _close(tr, time, status, mark_units=0.0):
        pnl = tr["flow"] + mark_units * last_close
        out_units = tr["out_units"] + abs(mark_units)
        out_value = tr["out_value"] + abs(mark_units) * last_close
        rows.append(
            {
                "entry_time": tr["entry_time"],
                "exit_time": time,
                "direction": "long" if tr["sign"] > 0 else "short",
                "entry_price": tr["in_value"] / tr["in_units"],
                "exit_price": out_value / out_units if out_units else np.nan,
                "size": tr["in_units"],
                "pnl": pnl,
                "return": pnl / tr["in_value"],
                "fees": tr["fees"],
                "status": status,
            }
        )

    for fill in fills:
        time, d, price, fee, after = fill.bar, fill.units, fill.price, fill.fee, fill.units_after
        # time: bar position, converted to timestamps once at the end
        before = units
        if before != 0.0 and (after == 0.0 or np.sign(after) != np.sign(before)):
            closing = -before  # the part of the order that closes the open trade
            share = abs(closing) / abs(d)
            _fill(cur, closing, price, fee * share)
            _close(cur, time, "liquidated" if fill.via == "liquidation" else "closed")
            cur = None
            d, fee = d - closing, fee * (1.0 - share)
        if after != 0.0:
            if cur is None:
                cur = _open(time, np.sign(after))
            if d != 0.0:
                _fill(cur, d, price, fee)
        units = after
    if cur is not None:
        _close(cur, len(idx) - 1, "open", mark_units=units)
    out = pd.DataFrame(rows, columns=TRADE_COLUMNS)
    for col in ("entry_time", "exit_time"):
        out[col] = idx[out[col].to_numpy(dtype=np.int64)]
    return out
