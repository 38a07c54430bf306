"""backtrader adapter: an Indicator that scores market images, a ready Strategy, a probability feed.

``EfficientNetSignal`` scores the whole preloaded history in batches in ``once()`` (runonce
mode) and one closed bar at a time in ``next()`` (``runonce=False``, live); both give the same
lines. ``EfficientNetStrategy`` trades its ``signal`` line under the project's execution
contract: decide at the close of bar t, fill at the open of bar t+1 (see
``effnet_trading.strategies.execution``). ``run_backtrader`` wires a Cerebro that follows the
contract exactly (cheat-on-open sizing at the fill price), so its equity equals ``simulate``.

backtrader is imported on first use (``pip install "effnet-trading[backtrader]"``).
"""

from __future__ import annotations

import array
import copy
import datetime
import logging
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from effnet_trading.errors import SpecError, require
from effnet_trading.imaging import OHLCV_COLUMNS
from effnet_trading.strategies.execution import Fill, apply_ruin, check_costs, trades_from_orders
from effnet_trading.strategies.policy import Policy, class_directions
from effnet_trading.strategies.scorer import as_scorer, scorers_by_symbol
from effnet_trading.strategies.signal import require_history

__all__ = [
    "EfficientNetSignal",
    "EfficientNetStrategy",
    "EfficientNetPortfolioStrategy",
    "EffnetSizer",
    "ProbabilityData",
    "ArrayData",
    "BacktraderResult",
    "run_backtrader",
    "run_backtrader_many",
    "BacktraderManyResult",
    "num2timestamps",
    "LINE_NAMES",
]

bt = require("backtrader", "backtrader")
log = logging.getLogger(__name__)

LINE_NAMES = ("sell", "hold", "buy", "signal")
_UTC = datetime.timezone.utc
_EPOCH_ORDINAL = 719163  # datetime(1970, 1, 1).toordinal(): backtrader's float dates count days from 0001-01-01 (= 1.0)


def num2timestamps(nums) -> pd.DatetimeIndex:
    """backtrader float dates ``(T,)`` -> UTC DatetimeIndex; vectorised ``bt.num2date``, rounded to the
    millisecond (a float day number near 2026 resolves ~15 us, so sub-ms digits are noise)."""
    days = np.asarray(nums, dtype=np.float64) - _EPOCH_ORDINAL
    ms = np.round(days * 86_400_000.0).astype(np.int64)
    return pd.DatetimeIndex(pd.to_datetime(ms, unit="ms", utc=True), name="timestamp")


def _line_columns(class_names) -> list[str]:
    """Class name per line sell/hold/buy (by trading direction, so down/flat/up models work too)."""
    dirs = class_directions(class_names).tolist()
    missing = [d for d in (-1, 0, 1) if d not in dirs]
    if missing or len(dirs) != 3:
        raise SpecError(f"EfficientNetSignal needs a 3-class sell/hold/buy model; got classes {list(class_names)}.")
    return [class_names[dirs.index(d)] for d in (-1, 0, 1)]


def _warmup_bars(scorer) -> int:
    """Bars before the first score; 0 when it cannot be known before data arrives (timeframe specs)."""
    try:
        return int(scorer.warmup)
    except (SpecError, AttributeError):
        return 0


# params shared by the indicator and the strategy (which passes them through)
_SIGNAL_PARAMS = (
    ("model", None),
    ("policy", None),  # strategies.policy.Policy; None = Policy() (threshold 0.5, long/short)
    ("risk", None),
    ("chunk", 2048),
    ("sizer", None),  # strategies.sizing.Sizer (FixedFraction, ProbabilityWeighted, CappedKelly, VolTarget) or None
)


class EfficientNetSignal(bt.Indicator):
    """Class probabilities (lines sell/hold/buy, NaN in warm-up) and the policy's target position
    (line ``signal`` in [-1, 1]) for each closed bar of ``data``.

    params: model (folder, Predictor, SignalModel, TimeframeEnsemble, {tf: model} or any ``Scorer``);
    policy (``strategies.policy.Policy``, default ``Policy()``); risk (``strategies.risk.Risk`` or
    None); chunk (images scored per batch in ``once``); sizer (``strategies.sizing`` object or None:
    scales the target by a size from the probabilities, after ``risk``).
    """

    lines = LINE_NAMES
    params = _SIGNAL_PARAMS
    plotinfo = dict(subplot=True, plotymargin=0.05)

    def __init__(self):
        self.scorer = as_scorer(self.p.model, chunk=self.p.chunk, what="EfficientNetSignal")
        self.scorer.reset()
        names = tuple(self.scorer.class_names)
        self.columns = _line_columns(names)
        self.policy = (self.p.policy if self.p.policy is not None else Policy()).replace(class_names=names)
        if self.p.risk is not None:
            self.p.risk.reset()
        if self.p.sizer is not None:
            self.p.sizer.check(self.scorer)
            self.p.sizer.reset()
        self._cache: np.ndarray | None = None  # (T, 4) once() results
        self._pos: list[int] | None = None  # positions of the sell/hold/buy columns in update()'s rows
        self._last: tuple[float, tuple[float, ...]] | None = None  # (bar date, line values) of the last step
        self.addminperiod(_warmup_bars(self.scorer) + 1)

    # -- batched: whole preloaded history -------------------------------------------------
    def history_frame(self) -> pd.DataFrame:
        """The preloaded data as a canonical OHLCV DataFrame (UTC index)."""
        d = self.data
        n = d.buflen()
        cols = {c: np.asarray(getattr(d, c).array[:n], dtype=np.float64) for c in OHLCV_COLUMNS}
        return pd.DataFrame(cols, index=num2timestamps(d.datetime.array[:n]))

    def _score_history(self) -> np.ndarray:
        frame = self.history_frame()
        probs = self.scorer.predict_proba(frame)
        target = self.policy.positions(probs)
        if self.p.risk is not None:
            target = self.p.risk.apply(frame, target)
        if self.p.sizer is not None:
            target = self.p.sizer.sizes(frame, probs, target)
        out = np.column_stack([probs[self.columns].to_numpy(), target.to_numpy()])
        self.policy.reset()
        return out

    def _fill(self, start: int, end: int) -> None:
        if self._cache is None:
            self._cache = self._score_history()
        for j, line in enumerate(self.lines):
            line.array[start:end] = array.array("d", self._cache[start:end, j].tobytes())

    def preonce(self, start: int, end: int) -> None:
        self._fill(start, end)

    def oncestart(self, start: int, end: int) -> None:
        self._fill(start, end)

    def once(self, start: int, end: int) -> None:
        self._fill(start, end)

    # -- one bar at a time (runonce=False, live) ----------------------------------------
    def _step(self) -> None:
        d = self.data
        when = float(d.datetime[0])
        if self._last is not None and self._last[0] == when:
            # backtrader calls next() again for a bar of ours when another feed (a resampled one, a
            # symbol with other bars) advanced the clock: rewrite the values, advance no state
            for line, v in zip(self.lines, self._last[1]):
                line[0] = v
            return
        ts = bt.num2date(when).replace(tzinfo=_UTC)  # naive UTC -> aware (cheaper than pandas per bar)
        bar = {
            "timestamp": ts,
            "open": d.open[0],
            "high": d.high[0],
            "low": d.low[0],
            "close": d.close[0],
            "volume": d.volume[0],
        }
        probs = self.scorer.update(bar)
        target = self.policy.step(probs)
        if self.p.risk is not None:
            target = self.p.risk.step(bar, target)
        if self.p.sizer is not None:
            target = self.p.sizer.step(bar, probs, target)
        if probs is None:
            values = [math.nan] * 3
        else:
            row = probs.to_numpy()
            values = [float(row[j]) for j in self._col_pos(probs)]
        self._last = (when, (*values, float(target)))
        for line, v in zip(self.lines, self._last[1]):
            line[0] = v

    def _col_pos(self, probs: pd.Series) -> list[int]:
        if self._pos is None:
            self._pos = [list(probs.index).index(c) for c in self.columns]
        return self._pos

    def prenext(self) -> None:
        self._step()

    def nextstart(self) -> None:
        self._step()

    def next(self) -> None:
        self._step()


def _date_nums(index: pd.DatetimeIndex) -> array.array:
    """``bt.date2num`` of every timestamp: the same floats ``PandasData`` stores (naive UTC)."""
    idx = index.tz_convert("UTC").tz_localize(None) if index.tz is not None else index
    return array.array("d", [bt.date2num(ts) for ts in idx.to_pydatetime()])


class ArrayData(bt.feeds.PandasData):
    """``PandasData`` whose ``preload()`` writes each line's whole column at once from numpy, instead of
    backtrader's bar-by-bar ``_load`` (a pandas ``iloc`` per value: most of a runonce backtest's time on a
    fast model). Same lines, same values; feeds with filters, a time zone or from/to dates load as usual."""

    def preload(self):
        if (
            self._tzinput
            or self._filters
            or self._ffilters
            or self.p.fromdate is not None
            or self.p.todate is not None
            or self._colmapping.get("datetime") is not None
        ):
            return super().preload()
        frame = self.p.dataname
        n = len(frame)
        for name in self.getlinealiases():
            line = getattr(self.lines, name)
            col = None if name == "datetime" else self._colmapping[name]
            if name == "datetime":
                values = _date_nums(frame.index)
            elif col is None:
                values = array.array("d", np.full(n, np.nan).tobytes())
            else:
                values = array.array("d", np.ascontiguousarray(frame.iloc[:, col].to_numpy(np.float64)).tobytes())
            line.array.extend(values)
            line.advance(n)
        self._idx = n - 1
        self._last()
        self.home()


class ProbabilityData(ArrayData):
    """PandasData with extra lines sell/hold/buy/signal for precomputed probabilities (columns of
    the same names; missing ones stay NaN). E.g. ``ProbabilityData(dataname=ohlcv.join(probs))``."""

    lines = LINE_NAMES
    params = tuple((name, -1) for name in LINE_NAMES)

    @classmethod
    def from_scores(cls, ohlcv: pd.DataFrame, scores: Any, policy: Policy | None = None, **kwargs) -> ProbabilityData:
        """A feed of ``ohlcv`` with lines sell/hold/buy from ``scores`` (a ``PrecomputedScores``, any scorer,
        or a probability DataFrame) and ``signal`` = ``policy``'s target (default ``Policy()``) at each close."""
        from effnet_trading.strategies.signal import canonical_ohlcv

        frame = canonical_ohlcv(ohlcv)
        if isinstance(scores, pd.DataFrame):
            probs = scores.reindex(frame.index)
        else:
            probs = as_scorer(scores, what="ProbabilityData.from_scores").predict_proba(frame)
        names = tuple(str(c) for c in probs.columns)
        target = (policy if policy is not None else Policy()).replace(class_names=names).positions(probs)
        lines = probs[_line_columns(names)].set_axis(["sell", "hold", "buy"], axis=1)
        data = frame.iloc[:, :5].join(lines).assign(signal=target.to_numpy())
        return cls(dataname=data, **kwargs)


class EfficientNetStrategy(bt.Strategy):
    """Trades ``data0`` on an ``EfficientNetSignal``: target = signal x stake (fraction of equity).

    exact=True (default, when the strategy scores itself): at ``start`` it turns on cheat-on-open (``cerebro.p.cheat_on_open``
    and ``broker.set_coo(True)``, what ``run_backtrader`` sets), so each order is sized in fractional
    units at the fill price, the open of bar t+1: exactly the execution contract and the same
    trades as ``run_backtrader`` on a plain ``Cerebro``. exact=False: orders are sized in
    fractional units from the close of bar t and fill at the next open (the held fraction then
    drifts by the close-to-open gap; keep ``stake`` below 1 so a gap up does not exceed the cash).
    Orders go out only when the target changes; an order the broker rejects (Margin/Rejected)
    is logged and retried at the next bar. backtrader's simulated broker does not liquidate: once its
    value at a close is <= 0 (a short held through a rally) the strategy sends no more orders and sets ``ruined``
    to that bar's time (``run_backtrader`` reports the contract's liquidation, see "Ruin" in
    ``strategies.execution``).

    params: model, policy, risk, chunk (see EfficientNetSignal);
    stake (fraction of equity for |signal| = 1); signal (use an existing line, e.g. a
    ``ProbabilityData`` feed's ``signal``, instead of scoring); exact (see above).
    """

    params = _SIGNAL_PARAMS + (
        ("stake", 1.0),
        ("signal", None),
        ("exact", True),
    )

    def start(self) -> None:
        # a signal line from a data feed (ProbabilityData) already holds bar t+1 at the open of t+1:
        # reading it there would look ahead, so such a line trades from the close (exact=False sizing)
        if self.p.exact and self.p.signal is None and not self.cerebro.p.cheat_on_open:
            # the contract sizes at the fill price (the next open): that is backtrader's cheat-on-open
            self.cerebro.p.cheat_on_open = True
            if hasattr(self.broker, "set_coo"):
                self.broker.set_coo(True)

    def __init__(self):
        if self.p.signal is not None:
            self.signal = self.p.signal
        else:
            self.indicator = EfficientNetSignal(
                self.data,
                model=self.p.model,
                **{name: getattr(self.p, name) for name, _ in _SIGNAL_PARAMS if name != "model"},
            )
            self.signal = self.indicator.signal
        self.held_target = 0.0
        self.order_log: list[tuple] = []  # (fill bar as a backtrader float date, units traded, fill price, fee)
        self.equity_log: list[float] = []
        self._fills: dict[int, tuple[float, float, float]] = {}  # order ref -> logged (size, value, commission)
        self.ruined: datetime.datetime | None = None  # the close at which the broker's value was <= 0

    def _decision(self, ago: int) -> float:
        value = float(self.signal[ago]) if len(self.signal) > -ago else 0.0
        return 0.0 if value != value else value * float(self.p.stake)

    def _exact_order(self, target: float) -> None:
        """Units from equity at this bar's open (= fill price), clipped to the cash like ``simulate``."""
        d = self.data
        open_ = float(d.open[0])
        cash = self.broker.getcash()
        units = self.getposition(d).size
        new_units = target * (cash + units * open_) / open_
        delta = new_units - units
        comm = self.broker.getcommissioninfo(d).p.commission
        slip = float(self.broker.p.slip_perc or 0.0)
        price = open_ * (1.0 + slip * np.sign(delta))
        if delta > 0:
            # a buy spends at most the cash (as in simulate); the 1e-12 margin keeps backtrader's own
            # cash check from nullifying a buy that spends exactly all cash on a last-digit rounding
            delta = min(delta, max(cash, 0.0) / (price * (1.0 + comm)) * (1.0 - 1e-12))
        if delta != 0.0:
            (self.buy if delta > 0 else self.sell)(data=d, size=abs(delta))

    def next_open(self) -> None:
        if self.ruined is not None:
            return
        # before this bar's lines are computed: signal[0] still holds the previous bar's decision
        target = self._decision(0)
        if target != self.held_target:
            self._exact_order(target)
            self.held_target = target

    def nextstart_open(self) -> None:
        self.next_open()

    def next(self) -> None:
        value = self.broker.getvalue()
        self.equity_log.append(value)
        if self.ruined is None and value <= 0.0 and isinstance(self.broker, bt.brokers.BackBroker):  # simulated
            self.ruined = self.data.datetime.datetime(0)
            log.warning(
                "%s: the broker's value is %.2f <= 0 at the close of %s (the account is ruined); no more orders",
                type(self).__name__,
                value,
                self.ruined,
            )
        if self.cerebro.p.cheat_on_open or self.ruined is not None:
            return
        target = self._decision(0)
        if target != self.held_target:
            # fractional units (order_target_percent would round down to whole units: nothing at BTC prices)
            units = target * self.broker.getvalue() / float(self.data.close[0])
            self.order_target_size(data=self.data, target=units)
            self.held_target = target

    def prenext(self) -> None:
        self.equity_log.append(self.broker.getvalue())

    def nextstart(self) -> None:
        self.next()

    def notify_order(self, order) -> None:
        record = _order_event(self, order, self._fills)
        if record is not None:
            self.order_log.append(record)
            if record[1] == 0.0:
                self.held_target = math.nan  # not reached: decide again (and retry) at the next bar


def _order_event(strategy, order, fills: dict) -> tuple | None:
    """What an order notification adds to a strategy's order log: ``(fill bar as a backtrader float date,
    units, price, fee)`` for a (partial) fill, ``(date, 0.0, nan, 0.0)`` for a rejection, else None.
    ``fills`` (order ref -> logged cumulative size, value, commission) is updated in place."""
    ex = order.executed
    if order.status in (order.Partial, order.Completed):
        size0, value0, comm0 = fills.get(order.ref, (0.0, 0.0, 0.0))
        fills[order.ref] = (ex.size, ex.price * ex.size, ex.comm)
        size = ex.size - size0
        record = (
            None
            if size == 0.0
            else (order.data.datetime[0], size, (ex.price * ex.size - value0) / size, ex.comm - comm0)
        )
        if order.status == order.Partial and abs(ex.remsize) <= 1e-9 * abs(order.size):
            strategy.broker.cancel(order)  # float dust left by backtrader's position arithmetic: the order is filled
        return record
    if order.status in (order.Margin, order.Rejected):
        return (order.data.datetime[0], 0.0, math.nan, 0.0)
    return None


def _own_state(scorer):
    """A copy of ``scorer`` with its own live state (buffers, policy memory) sharing the loaded model:
    one per symbol, so symbols scored one bar at a time do not feed one another's buffers. Scorers held
    inside it (a ``TimeframeEnsemble``'s members, a wrapper's inner scorer) get their own copies too."""
    from effnet_trading.strategies.scorer import is_scorer

    twin = copy.copy(scorer)
    for name, value in list(getattr(scorer, "__dict__", {}).items()):
        if isinstance(value, dict) and value and all(is_scorer(v) for v in value.values()):
            setattr(twin, name, {k: _own_state(v) for k, v in value.items()})
        elif is_scorer(value):
            setattr(twin, name, _own_state(value))
    twin.reset()
    return twin


class EfficientNetPortfolioStrategy(bt.Strategy):
    """Trades every data feed (one per symbol) on its own ``EfficientNetSignal`` with one broker: the
    symbols share the cash. Same execution contract as ``EfficientNetStrategy`` (cheat-on-open: orders
    sized at the next open, the fill price): at each bar the portfolio equity is valued at the opens,
    each symbol whose target changed gets ``target x stake`` of that equity, and the orders go out
    sells first, then buys in increasing order value (what vectorbt's ``cash_sharing`` with
    ``call_seq='auto'`` does), each buy clipped to the cash left by the orders before it, so no
    order spends cash the portfolio does not have.

    params: model (one scorer for every feed, each feed getting a copy with its own live state, or a
    list with one per feed in ``datas`` order); policy, risk, sizer (copied per feed), chunk (see
    ``EfficientNetSignal``); stake (fraction of the portfolio equity per symbol at |target| = 1;
    default 1 / number of feeds).
    """

    params = _SIGNAL_PARAMS + (("stake", None),)

    def start(self) -> None:
        if not self.cerebro.p.cheat_on_open:
            self.cerebro.p.cheat_on_open = True
            if hasattr(self.broker, "set_coo"):
                self.broker.set_coo(True)

    def __init__(self):
        n = len(self.datas)
        models = self.p.model
        if isinstance(models, (list, tuple)):
            if len(models) != n:
                raise SpecError(f"{len(models)} models for {n} data feeds: pass one model, or one per feed.")
            scorers = [
                _own_state(as_scorer(m, chunk=self.p.chunk, what="EfficientNetPortfolioStrategy")) for m in models
            ]
        else:
            shared = as_scorer(models, chunk=self.p.chunk, what="EfficientNetPortfolioStrategy")
            scorers = [_own_state(shared) for _ in range(n)]
        self.indicators = [
            EfficientNetSignal(
                d,
                model=sc,
                policy=self.p.policy,
                risk=copy.deepcopy(self.p.risk),
                sizer=copy.deepcopy(self.p.sizer),
                chunk=self.p.chunk,
            )
            for d, sc in zip(self.datas, scorers)
        ]
        self.stake = 1.0 / n if self.p.stake is None else float(self.p.stake)
        self.held = [0.0] * n
        self._seen = [0] * n  # bars of each feed already decided on (a feed without a new bar is not traded)
        self._feed = {id(d): i for i, d in enumerate(self.datas)}
        self.order_log: list[tuple] = []  # (feed index, fill bar as a backtrader float date, units, price, fee)
        self.equity_log: list[float] = []
        self._fills: dict[int, tuple[float, float, float]] = {}

    def next_open(self) -> None:
        cash = self.broker.getcash()
        value = cash
        changed = []
        for i, d in enumerate(self.datas):
            if not len(d):
                continue  # this symbol's bars have not started
            units = self.getposition(d).size
            if units:
                value += units * float(d.open[0])  # the open of its newest bar (its last one, when it has none now)
            if len(d) == self._seen[i]:
                continue
            self._seen[i] = len(d)
            sig = self.indicators[i].signal
            decision = float(sig[0]) if len(sig) else 0.0  # before this bar's lines: the previous bar's decision
            target = 0.0 if decision != decision else decision * self.stake
            if target != self.held[i]:
                changed.append((i, target, units))
        plan = []
        for i, target, units in changed:
            open_ = float(self.datas[i].open[0])
            # order value as vectorbt approximates it (its auto call sequence sorts by it; ties keep feed order)
            plan.append((target * value - units * open_, i, target * value / open_ - units, target))
        plan.sort(key=lambda x: x[0])  # sells first (they free cash), then buys from the smallest
        slip = float(self.broker.p.slip_perc or 0.0)
        for _, i, delta, target in plan:
            d = self.datas[i]
            comm = self.broker.getcommissioninfo(d).p.commission
            price = float(d.open[0]) * (1.0 + slip * np.sign(delta))
            if delta > 0:
                # at most the cash left after this bar's earlier orders (1e-12: backtrader's own check on rounding)
                delta = min(delta, max(cash, 0.0) / (price * (1.0 + comm)) * (1.0 - 1e-12))
                if delta * price < 1e-9 * value:
                    delta = 0.0  # no cash left: the buy is dropped (vectorbt: NoCashLong), not retried later
                cash -= delta * price * (1.0 + comm)
            else:
                cash += -delta * price * (1.0 - comm)
            if delta != 0.0:
                (self.buy if delta > 0 else self.sell)(data=d, size=abs(delta))
            self.held[i] = target

    def prenext_open(self) -> None:
        self.next_open()  # a symbol trades from its own warm-up, not from the slowest symbol's

    def nextstart_open(self) -> None:
        self.next_open()

    def next(self) -> None:
        self.equity_log.append(self.broker.getvalue())

    def prenext(self) -> None:
        self.next()

    def nextstart(self) -> None:
        self.next()

    def notify_order(self, order) -> None:
        record = _order_event(self, order, self._fills)
        if record is not None:
            i = self._feed[id(order.data)]
            self.order_log.append((i, *record))
            if record[1] == 0.0:
                self.held[i] = math.nan  # not reached: decide again (and retry) at its next bar


class EffnetSizer(bt.Sizer):
    """A backtrader ``Sizer`` from a ``strategies.sizing`` object: ``cerebro.addsizer(EffnetSizer,
    rule=ProbabilityWeighted(0.8))`` (``rule``, not ``sizer``: ``addsizer`` takes the class as
    ``sizer``) makes a plain ``self.buy()`` / ``self.sell()`` in your own
    strategy open a long / short of ``size x broker value / close`` units, the size the built-in
    ``EfficientNetStrategy`` (``exact=False``) takes at that bar: the sizer's size for the order's
    direction from the probabilities of the bar's close. Exit with ``self.close()`` (it passes the
    position's own size).

    The probabilities come from the strategy's ``EfficientNetSignal`` on the order's data, or from
    the data's own sell/hold/buy lines (a ``ProbabilityData`` feed).
    """

    params = (("rule", None),)  # a strategies.sizing object

    def _probabilities(self, data) -> tuple[Any, list[str], Any]:
        """(line owner, class names of its sell/hold/buy lines, scorer or None) for ``data``."""
        for ind in self.strategy.getindicators():
            if isinstance(ind, EfficientNetSignal) and ind.data is data:
                return ind, list(ind.columns), ind.scorer
        if all(hasattr(data.lines, name) for name in ("sell", "hold", "buy")):
            return data, ["sell", "hold", "buy"], None
        raise SpecError(
            "EffnetSizer found no probabilities for this data: add an EfficientNetSignal on it in your strategy's "
            "__init__, or feed a ProbabilityData (lines sell/hold/buy)."
        )

    def _getsizing(self, comminfo, cash, data, isbuy) -> float:
        from effnet_trading.strategies.sizing import Sizer

        if not isinstance(self.p.rule, Sizer):
            raise SpecError(
                "EffnetSizer needs rule=<a strategies.sizing object>, e.g. "
                "cerebro.addsizer(EffnetSizer, rule=ProbabilityWeighted(0.8))."
            )
        owner, names, scorer = self._probabilities(data)
        checked = self.__dict__.setdefault("_checked", set())
        if id(scorer) not in checked:  # each feed's scorer (Kelly: calibrated probabilities only)
            self.p.rule.check(scorer)
            checked.add(id(scorer))
        n = len(data)
        frame = pd.DataFrame(
            {c: np.asarray(getattr(data, c).get(size=n), dtype=np.float64) for c in OHLCV_COLUMNS},
            index=num2timestamps(data.datetime.get(size=n)),
        )
        lines = ("sell", "hold", "buy")
        m = min(n, len(owner))
        probs = pd.DataFrame(np.nan, index=frame.index, columns=names)
        for c, line in zip(names, lines):
            probs.iloc[n - m :, probs.columns.get_loc(c)] = np.asarray(getattr(owner.lines, line).get(size=m))
        target = np.zeros(n)
        target[-1] = 1.0 if isbuy else -1.0  # the direction changes here: the sizer takes its size at this bar
        size = float(self.p.rule.sizes(frame, probs, target).iloc[-1])
        return abs(size) * self.broker.getvalue() / float(data.close[0])


@dataclass
class BacktraderResult:
    """``run_backtrader`` output on the ohlcv index: probabilities, targets, equity, orders, trades."""

    probs: pd.DataFrame  # sell, hold, buy (NaN in warm-up)
    target: pd.Series  # decided at each bar's close
    equity: pd.Series  # broker value at each bar's close (0 from a ruin on)
    orders: pd.DataFrame  # time, side, size, price, fee, via
    trades: pd.DataFrame  # as strategies.execution.simulate
    init_cash: float
    rejected: int = 0
    config: dict = field(default_factory=dict)
    fills: list[Fill] = field(default_factory=list)  # the orders as Fill records
    ruined_at: pd.Timestamp | None = None  # where equity reached 0 (see "Ruin" in strategies.execution)

    @property
    def final_equity(self) -> float:
        return float(self.equity.iloc[-1])


def _indicator_frames(ind, idx: pd.DatetimeIndex) -> tuple[pd.DataFrame, pd.Series]:
    """An ``EfficientNetSignal``'s lines after a run: (class probabilities, target at each close) on ``idx``."""
    n = len(idx)
    lines = np.column_stack([np.asarray(line.array[:n], dtype=np.float64) for line in ind.lines])
    probs = pd.DataFrame(lines[:, :3], index=idx, columns=list(ind.columns))
    return probs, pd.Series(np.nan_to_num(lines[:, 3]), index=idx, name="target")


def _fills_from_log(log: list[tuple], idx: pd.DatetimeIndex) -> list[Fill]:
    """``Fill`` records from an order log of ``(backtrader float date, units, price, fee)`` rows (as
    ``_order_event`` writes them); rejections (units 0) are left out, the position is cumulated."""
    filled = [r for r in log if r[1] != 0.0]
    pos = idx.get_indexer(num2timestamps([r[0] for r in filled]))
    units = np.cumsum([r[1] for r in filled]) if filled else np.array([])
    return [
        Fill(int(p), float(r[1]), float(r[2]), float(r[3]), math.nan, float(u), math.nan)
        for p, r, u in zip(pos, filled, units)
    ]


def _contract_cerebro(runonce: bool, fees: float, slippage: float, init_cash: float):
    """A Cerebro under the execution contract: cheat-on-open (orders sized and filled at the next open),
    percentage fees, slippage on the open."""
    cerebro = bt.Cerebro(runonce=runonce, cheat_on_open=True, stdstats=False)
    cerebro.broker.set_coo(True)
    cerebro.broker.setcash(float(init_cash))
    cerebro.broker.setcommission(commission=float(fees))
    if slippage:
        cerebro.broker.set_slippage_perc(float(slippage), slip_open=True, slip_match=True, slip_out=True)
    return cerebro


def run_backtrader(
    ohlcv: pd.DataFrame,
    model: Any,
    *,
    policy: Policy | None = None,
    risk=None,
    fees: float = 0.001,
    slippage: float = 0.0,
    init_cash: float = 10_000.0,
    runonce: bool = True,
    chunk: int = 2048,
    sizer=None,
) -> BacktraderResult:
    """Backtest ``model`` (see ``strategies.scorer.as_scorer``) with ``policy`` (default ``Policy()``)
    on ``ohlcv`` in backtrader under the execution contract (cheat-on-open sizing at the fill price,
    market orders at the next open, percentage fees, slippage on the open)."""
    from effnet_trading.strategies.signal import canonical_ohlcv

    check_costs(fees, slippage, init_cash)
    frame = canonical_ohlcv(ohlcv)
    model = as_scorer(
        model, chunk=chunk, what="run_backtrader"
    )  # loaded once: the strategy's indicator uses this object
    require_history(model, frame)
    cerebro = _contract_cerebro(runonce, fees, slippage, init_cash)
    cerebro.adddata(ArrayData(dataname=frame))
    policy = policy if policy is not None else Policy()
    cerebro.addstrategy(EfficientNetStrategy, model=model, policy=policy, risk=risk, chunk=chunk, sizer=sizer)
    strat = cerebro.run()[0]
    idx, n = frame.index, len(frame)
    probs, target = _indicator_frames(strat.indicator, idx)
    logged = _fills_from_log(strat.order_log, idx)
    # backtrader has no liquidation: the contract's ruin rule is applied to its fills (the orders before a
    # ruin are the same in every engine; the broker's value after it, below zero, is not an account's)
    fills, ruin = apply_ruin(frame, logged, float(init_cash))
    orders = pd.DataFrame(
        {
            "time": idx[[f.bar for f in fills]],
            "side": [f.side for f in fills],
            "size": [f.size for f in fills],
            "price": [f.price for f in fills],
            "fee": [f.fee for f in fills],
            "via": [f.via for f in fills],
        }
    )
    trades = trades_from_orders(fills, idx, float(frame["close"].iloc[-1]))
    equity = pd.Series(strat.equity_log[:n], index=idx, name="equity")
    if ruin is not None:
        equity.iloc[ruin:] = 0.0
    config = {
        "engine": "backtrader",
        "runonce": runonce,
        "policy": policy.to_dict(),
        "fees": fees,
        "slippage": slippage,
        "init_cash": init_cash,
        "risk": None if risk is None else risk.to_dict(),
        "sizer": None if sizer is None else sizer.to_dict(),
    }
    return BacktraderResult(
        probs,
        target,
        equity,
        orders,
        trades,
        float(init_cash),
        rejected=len(strat.order_log) - len(logged),
        config=config,
        fills=fills,
        ruined_at=None if ruin is None else idx[ruin],
    )


@dataclass
class BacktraderManyResult:
    """``run_backtrader_many`` output: per symbol (on its own index) probabilities, targets, fills and
    trades; the portfolio equity (broker value at each close, on the union of the symbols' indexes)."""

    probs: dict[str, pd.DataFrame]
    target: dict[str, pd.Series]  # the policy's target at each close (before the stake)
    fills: dict[str, list[Fill]]
    trades: dict[str, pd.DataFrame]
    equity: pd.Series
    init_cash: float
    stake: float
    rejected: int = 0


def run_backtrader_many(
    frames: dict[str, pd.DataFrame],
    model: Any,
    *,
    policy: Policy | None = None,
    risk=None,
    sizer=None,
    fees: float = 0.001,
    slippage: float = 0.0,
    init_cash: float = 10_000.0,
    stake: float | None = None,
    runonce: bool = True,
    chunk: int = 2048,
) -> BacktraderManyResult:
    """Several symbols in one Cerebro with one broker (shared cash): one ``ArrayData`` feed per symbol,
    traded by ``EfficientNetPortfolioStrategy`` (each symbol ``target x stake`` of the portfolio equity,
    stake default 1 / number of symbols). model: one for every symbol, or ``{symbol: model}``
    (e.g. ``PrecomputedScores.by_symbol(path)``)."""
    from effnet_trading.strategies.signal import canonical_ohlcv

    check_costs(fees, slippage, init_cash)
    names = list(frames)
    canon = {s: canonical_ohlcv(f) for s, f in frames.items()}
    by_symbol = scorers_by_symbol(model, names, chunk=chunk, what="run_backtrader_many")
    scorers = [by_symbol[s] for s in names]  # one object for several symbols: the strategy copies its state
    for sc, s in zip(scorers, names):
        require_history(sc, canon[s])
    cerebro = _contract_cerebro(runonce, fees, slippage, init_cash)
    for s in names:
        cerebro.adddata(ArrayData(dataname=canon[s]), name=s)
    policy = policy if policy is not None else Policy()
    cerebro.addstrategy(
        EfficientNetPortfolioStrategy, model=scorers, policy=policy, risk=risk, sizer=sizer, chunk=chunk, stake=stake
    )
    strat = cerebro.run()[0]
    probs, targets, fills, trades = {}, {}, {}, {}
    for i, s in enumerate(names):
        idx = canon[s].index
        probs[s], targets[s] = _indicator_frames(strat.indicators[i], idx)
        fills[s] = _fills_from_log([r[1:] for r in strat.order_log if r[0] == i], idx)
        trades[s] = trades_from_orders(fills[s], idx, float(canon[s]["close"].iloc[-1]))
    union = canon[names[0]].index
    for s in names[1:]:
        union = union.union(canon[s].index)
    equity = pd.Series(strat.equity_log[: len(union)], index=union, name="equity")
    return BacktraderManyResult(
        probs,
        targets,
        fills,
        trades,
        equity,
        float(init_cash),
        strat.stake,
        rejected=sum(1 for r in strat.order_log if r[2] == 0.0),
    )
