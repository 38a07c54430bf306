"""vectorbt adapter: an ``IndicatorFactory`` indicator that scores market images, and a portfolio
helper that follows the project's execution contract.

``EfficientNetIndicator.run(open, high, low, close, volume, model=..., threshold=[0.4, 0.5, 0.6])``
scores each input column once (probabilities are cached per column and reused for every
parameter combination) and applies ``Policy`` per combination; ``policy=Policy(...)`` sets the
rest of it (sizing, on_hold) and the threshold/hysteresis/long_only grids override its fields.
Outputs: sell/hold/buy (NaN in warm-up), signal (target position in [-1, 1], decided at each
bar's close) and boolean entries/exits/short_entries/short_exits derived from changes of the signal.

``portfolio_from_signals`` executes targets under the contract (decide at the close of bar t,
fill at the open of bar t+1): the target is shifted by one bar, kept only where it changes, and
passed to ``Portfolio.from_orders(size_type="targetpercent", price=open)``. ``from_orders`` and
not ``from_signals``: a target fraction maps one-to-one onto a target-percent order, sized from
the equity valued at the fill price, which is exactly ``strategies.execution.simulate`` (parity
is tested); ``from_signals`` sizes entries as a share of cash and cannot express a fractional
or flipped target in one order. Only with ``sl_stop``/``tp_stop`` is ``from_signals`` used,
because vectorbt's stops live there (they trigger intrabar on high/low, unlike ``Risk``'s
close-checked stops; use ``Risk`` for engine parity).

vectorbt is imported on first use (``pip install "effnet-trading[vectorbt]"``); its first import
compiles numba kernels (tens of seconds).
"""

from __future__ import annotations

import functools
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from effnet_trading.errors import DataError, SpecError, require
from effnet_trading.imaging import infer_interval
from effnet_trading.strategies.policy import Policy, class_directions
from effnet_trading.strategies.scorer import as_scorer

__all__ = [
    "EfficientNetIndicator",
    "portfolio_from_signals",
    "policy_grid",
    "signal_events",
    "contract_orders",
    "portfolio_fills",
    "RuinWarning",
    "ruin_bars",
]

_OUTPUTS = ["sell", "hold", "buy", "signal", "entries", "exits", "short_entries", "short_exits"]


def _vbt():
    return require("vectorbt", "vectorbt")


def signal_events(target: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(T, ...)`` targets -> boolean (entries, exits, short_entries, short_exits) at the decision bar:
    a long opens / closes, a short opens / closes (a flip is an exit and an entry on the same bar)."""
    t = np.nan_to_num(np.asarray(target, dtype=np.float64))
    prev = np.concatenate([np.zeros_like(t[:1]), t[:-1]])
    long_now, long_before = t > 0, prev > 0
    short_now, short_before = t < 0, prev < 0
    return long_now & ~long_before, long_before & ~long_now, short_now & ~short_before, short_before & ~short_now


def _custom_func(
    open_, high, low, close, volume, threshold, hysteresis, long_only, *, model=None, chunk=2048, policy=None
):
    """Probabilities once per input column, then the policy per parameter combination (param-major columns).
    ``policy``: the base ``Policy`` (sizing, on_hold); the threshold/hysteresis/long_only grids override it."""
    scorer = as_scorer(
        model, chunk=chunk, load=lambda path: _cached_signal_model(path, chunk), what="EfficientNetIndicator.run"
    )
    names = tuple(scorer.class_names)
    dirs = class_directions(names).tolist()
    if sorted(dirs) != [-1, 0, 1]:
        raise SpecError(f"EfficientNetIndicator needs a 3-class sell/hold/buy model; got classes {list(names)}.")
    order = [names[dirs.index(d)] for d in (-1, 0, 1)]
    base = policy if policy is not None else Policy()
    probs = []
    for j in range(close.shape[1]):
        frame = pd.DataFrame(
            {
                "open": open_.iloc[:, j],
                "high": high.iloc[:, j],
                "low": low.iloc[:, j],
                "close": close.iloc[:, j],
                "volume": volume.iloc[:, j],
            }
        )
        probs.append(_score_valid_span(scorer, frame, close.columns[j]))
    outs = {name: [] for name in _OUTPUTS}
    for th, hy, lo in zip(threshold, hysteresis, long_only):
        policy = base.replace(threshold=float(th), hysteresis=float(hy), long_only=bool(lo), class_names=names)
        for p in probs:
            target = policy.positions(p).to_numpy()
            policy.reset()
            for k, col in enumerate(order):
                outs[("sell", "hold", "buy")[k]].append(p[col].to_numpy())
            outs["signal"].append(target)
            for name, ev in zip(_OUTPUTS[4:], signal_events(target)):
                outs[name].append(ev)
    return tuple(np.column_stack(outs[name]) for name in _OUTPUTS)


def _score_valid_span(scorer, frame: pd.DataFrame, column) -> pd.DataFrame:
    """Probabilities of one column over its own valid span (symbols listed on different dates are
    NaN-padded in a wide frame); NaN outside it. A NaN bar inside the span is refused, not bridged."""
    ok = frame.notna().all(axis=1).to_numpy()
    if ok.all() or not ok.any():
        return scorer.predict_proba(frame)
    first, last = np.flatnonzero(ok)[[0, -1]]
    holes = np.flatnonzero(~ok[first : last + 1]) + first
    if len(holes):
        shown = ", ".join(str(frame.index[i]) for i in holes[:3]) + (
            f" and {len(holes) - 3} more" if len(holes) > 3 else ""
        )
        raise DataError(
            f"column {column!r} has NaN bars inside its data ({shown}); only leading/trailing NaN (a symbol listed "
            "later or delisted) is skipped. Fill or drop those bars explicitly before scoring."
        )
    part = scorer.predict_proba(frame.iloc[first : last + 1])
    return part.reindex(frame.index)


def _cached_signal_model(path, chunk: int):
    """One onnxruntime session per exported model: keyed by the card's ONNX sha256 and the file's
    size/mtime, so a re-export to the same folder loads (and hash-checks) the new model."""
    from effnet_trading.strategies.signal import SignalModel

    folder = Path(path).resolve()
    try:
        sha = json.loads((folder / "card.json").read_text())["onnx_sha256"]
        st = (folder / "model.onnx").stat()
    except (OSError, ValueError, KeyError):
        return SignalModel(path, chunk=chunk)  # not a complete model folder: SignalModel says what is wrong
    return _load_signal_model(str(folder), sha, st.st_size, st.st_mtime_ns, chunk)


@functools.lru_cache(maxsize=8)
def _load_signal_model(folder: str, sha256: str, size: int, mtime_ns: int, chunk: int):
    from effnet_trading.strategies.signal import SignalModel

    return SignalModel(folder, chunk=chunk)  # loading checks the file against the card's sha256


@functools.lru_cache(maxsize=1)
def _indicator_class():
    vbt = _vbt()
    return vbt.IndicatorFactory(
        class_name="EfficientNetIndicator",
        short_name="effnet",
        input_names=["open", "high", "low", "close", "volume"],
        param_names=["threshold", "hysteresis", "long_only"],
        output_names=_OUTPUTS,
    ).from_custom_func(
        _custom_func,
        keep_pd=True,
        hysteresis=0.0,
        long_only=False,
        model=None,
        chunk=2048,
        policy=None,
    )


class _LazyIndicator:
    """``EfficientNetIndicator`` builds the vectorbt class on first attribute access (no import-time numba)."""

    def __getattr__(self, name: str):
        return getattr(_indicator_class(), name)

    def __call__(self, *args, **kwargs):
        return _indicator_class()(*args, **kwargs)

    def __repr__(self) -> str:
        return "<EfficientNetIndicator (vectorbt IndicatorFactory; built on first use)>"


EfficientNetIndicator = _LazyIndicator()


def _frame(ohlcv):
    from effnet_trading.strategies.signal import canonical_ohlcv

    return canonical_ohlcv(ohlcv)


def _symbol_level(target) -> pd.Index | None:
    """The symbols of a multi-symbol target (its last column level, named by the input columns), or None."""
    if not isinstance(target, pd.DataFrame):
        return None
    cols = target.columns
    name = cols.names[-1]
    values = cols.get_level_values(-1)
    if (
        (name is None and not isinstance(cols, pd.MultiIndex))
        or str(name).startswith("effnet_")
        or values.nunique() < 2
    ):
        return None  # a plain frame of several targets for one symbol, or a parameter level
    return values


def _wide(ohlcv: dict, target) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DatetimeIndex]:
    """{symbol: OHLCV} -> open, high, low, close frames with the target's columns (each column at its symbol's prices)."""
    frames = {sym: _frame(f) for sym, f in ohlcv.items()}
    if not isinstance(target, pd.DataFrame):
        raise DataError(
            f"{len(frames)} symbols {sorted(frames)} but one target Series: pass a DataFrame with one column per symbol."
        )
    symbols = target.columns.get_level_values(-1)
    missing = sorted(set(map(str, symbols)) - set(map(str, frames)))
    if missing:
        raise DataError(
            f"targets for symbol(s) {missing} have no OHLCV frame (given: {sorted(frames)}); "
            "pass one frame per target column, keyed by the column's symbol."
        )
    index = frames[next(iter(frames))].index
    for f in frames.values():
        index = index.union(f.index)
    by_name = {str(k): v for k, v in frames.items()}
    out = []
    for field in ("open", "high", "low", "close"):
        wide = pd.DataFrame({i: by_name[str(s)][field].reindex(index) for i, s in enumerate(symbols)})
        wide.index = index
        wide.columns = target.columns
        out.append(wide)
    return (*out, index)


def contract_orders(target) -> pd.DataFrame | pd.Series:
    """Targets decided at bar closes -> target-percent order sizes on the fill bars: shifted one bar,
    NaN (no order) where the target did not change. Keeps Series/DataFrame shape and index."""
    t = target.fillna(0.0).astype(np.float64)
    shifted = t.shift(1, fill_value=0.0)
    changed = shifted.ne(shifted.shift(1, fill_value=0.0))
    return shifted.where(changed)


def _contract_orders_per_symbol(target: pd.DataFrame, open_w: pd.DataFrame) -> pd.DataFrame:
    """``contract_orders`` per column on that symbol's own bars (where it has a price), placed on the joint
    index: a symbol missing some bars of the others still fills at its own next bar, never at a bar where
    it has no price (where vectorbt would drop the order)."""
    out = pd.DataFrame(np.nan, index=target.index, columns=target.columns)
    for j in range(target.shape[1]):
        own = np.flatnonzero(open_w.iloc[:, j].notna().to_numpy())
        out.iloc[own, j] = contract_orders(target.iloc[own, j]).to_numpy()
    return out


def portfolio_from_signals(
    ohlcv,
    signal_or_target,
    *,
    fees: float = 0.001,
    slippage: float = 0.0,
    sl_stop: float | None = None,
    tp_stop: float | None = None,
    allow_short: bool = True,
    init_cash: float = 10_000.0,
    freq=None,
    cash_sharing: bool = False,
):
    """A ``vbt.Portfolio`` trading targets (Series on the ohlcv index, a DataFrame of several
    targets, or an ``EfficientNetIndicator`` result: its ``signal``) under the execution contract.

    ohlcv: one OHLCV frame, or ``{symbol: frame}`` for targets with one column per symbol (the last
    column level, as ``EfficientNetIndicator.run`` on wide frames gives): each column then trades at
    its own symbol's open/close. Targets for several symbols with one frame are refused.
    cash_sharing (several symbols): one cash pool for all columns (``group_by=True``, sells before buys
    in a bar); each target is then a fraction of the whole portfolio's equity, so keep their sum within [-1, 1]."""
    pf, index, prices = _build_portfolio(
        ohlcv,
        signal_or_target,
        fees=fees,
        slippage=slippage,
        sl_stop=sl_stop,
        tp_stop=tp_stop,
        allow_short=allow_short,
        init_cash=init_cash,
        freq=freq,
        cash_sharing=cash_sharing,
    )
    _warn_if_ruined(pf, prices, init_cash, index)
    return _with_index(pf, index)


def _naive(x):
    """``x`` on its index without the time zone (the UTC wall times; the frames here are UTC)."""
    return x.set_axis(x.index.tz_localize(None)) if getattr(x.index, "tz", None) is not None else x


def _with_index(pf, index: pd.Index):
    """``pf`` (built on a tz-naive index) with ``index`` (tz-aware) in every result it wraps."""
    return pf if pf.wrapper.index.equals(index) else pf.replace(wrapper=pf.wrapper.replace(index=index))


def _build_portfolio(
    ohlcv,
    signal_or_target,
    *,
    fees: float,
    slippage: float,
    init_cash: float,
    sl_stop: float | None = None,
    tp_stop: float | None = None,
    allow_short: bool = True,
    freq=None,
    cash_sharing: bool = False,
):
    """``portfolio_from_signals``'s portfolio on the tz-naive UTC index, with the input's index and the
    (open, high, low, close) prices (naive) for the ruin check. vectorbt turns a tz-aware index into an
    array of Timestamp objects each time it wraps a result (``pf.value()`` wraps several): about 1.8 s
    against 0.03 s per 100,000 bars (vectorbt 1.2); ``run_backtest`` reads the naive one directly."""
    from effnet_trading.strategies.execution import check_costs

    check_costs(fees, slippage, init_cash)
    vbt = _vbt()
    target = getattr(signal_or_target, "signal", signal_or_target)
    if isinstance(ohlcv, dict):  # several symbols: each target column trades at its own symbol's prices
        open_w, high_w, low_w, close_w, index = _wide(ohlcv, target)
        aligned = target.reindex(index)
        if aligned.isna().all().all() and target.notna().any().any():
            raise DataError(
                "targets share no timestamps with the ohlcv index (is one tz-naive?); build them on the same index."
            )
        target = _naive(aligned)
        open_w, high_w, low_w, close_w = (_naive(x) for x in (open_w, high_w, low_w, close_w))
        if (target.abs() > 1.0 + 1e-12).to_numpy().any():
            raise DataError(
                "targets must be fractions of equity in [-1, 1]; clip or rescale them (e.g. Risk(max_exposure=...))."
            )
        if not allow_short:
            target = target.clip(lower=0.0)
        if sl_stop is not None or tp_stop is not None:
            raise SpecError("sl_stop/tp_stop are for one OHLCV frame; with several symbols use Risk(stop_loss=...).")
        shared = {"group_by": True, "cash_sharing": True, "call_seq": "auto"} if cash_sharing else {}
        pf = vbt.Portfolio.from_orders(
            # a symbol's last close carried over the bars it lacks: vectorbt values positions at it anyway
            # (ffill_val_price), and a trade still open when its symbol's frame ends exits there, not at NaN
            close_w.ffill(),
            size=_contract_orders_per_symbol(target, open_w),
            size_type="targetpercent",
            price=open_w,
            fees=fees,
            slippage=slippage,
            init_cash=init_cash,
            freq=freq or infer_interval(index),
            **shared,
        )
        return pf, index, (open_w, high_w, low_w, close_w)
    frame = _frame(ohlcv)
    symbols = _symbol_level(target)
    if symbols is not None:
        raise DataError(
            f"targets for {symbols.nunique()} symbols ({', '.join(map(str, symbols.unique()[:5]))}) but one OHLCV frame: "
            "every symbol would trade at that frame's prices. Pass {symbol: ohlcv_frame} as ohlcv."
        )
    if isinstance(target, np.ndarray):
        target = pd.Series(target, index=frame.index) if target.ndim == 1 else pd.DataFrame(target, index=frame.index)
    if not isinstance(target, (pd.Series, pd.DataFrame)):
        raise DataError(
            f"signal_or_target must be a Series/DataFrame of targets in [-1, 1], got {type(target).__name__}."
        )
    if not target.index.equals(frame.index):
        target = target.reindex(frame.index)
        if target.isna().all().all() if isinstance(target, pd.DataFrame) else target.isna().all():
            raise DataError(
                "targets share no timestamps with the ohlcv index (is one tz-naive?); build them on the same index."
            )
    target = target.fillna(0.0)
    target.index = frame.index  # equal stamps; vectorbt also wants the same index name
    if (target.abs() > 1.0 + 1e-12).to_numpy().any():
        raise DataError(
            "targets must be fractions of equity in [-1, 1]; clip or rescale them (e.g. Risk(max_exposure=...))."
        )
    if not allow_short:
        target = target.clip(lower=0.0)
    freq = freq or infer_interval(frame.index)
    index, target = frame.index, _naive(target)
    open_, high, low, close = (_naive(frame[k]) for k in ("open", "high", "low", "close"))
    if sl_stop is None and tp_stop is None:
        size = contract_orders(target)
        pf = vbt.Portfolio.from_orders(
            close,
            size=size,
            size_type="targetpercent",
            price=open_,
            fees=fees,
            slippage=slippage,
            init_cash=init_cash,
            freq=freq,
        )
        return pf, index, (open_, high, low, close)
    values = target.to_numpy()
    if not np.isin(values, (-1.0, 0.0, 1.0)).all():
        raise SpecError(
            "sl_stop/tp_stop use vectorbt's from_signals, which here trades all-in positions only: targets must be "
            "-1, 0 or +1 (Policy(sizing='fixed'), no Risk sizing). For fractional targets use Risk(stop_loss=...) instead."
        )
    events = [_like(target, ev) for ev in signal_events(values)]
    # decided at close t, entered at open t+1: shift the events one bar and fill at the open
    entries, exits, short_entries, short_exits = (e.shift(1, fill_value=False).astype(bool) for e in events)
    pf = vbt.Portfolio.from_signals(
        close,
        entries=entries,
        exits=exits,
        short_entries=short_entries,
        short_exits=short_exits,
        size=np.inf,
        size_type="amount",
        price=open_,
        open=open_,
        high=high,
        low=low,
        fees=fees,
        slippage=slippage,
        sl_stop=sl_stop,
        tp_stop=tp_stop,
        init_cash=init_cash,
        freq=freq,
    )
    return pf, index, (open_, high, low, close)


class RuinWarning(UserWarning):
    """A vectorbt portfolio's equity reached 0: vectorbt does not liquidate, so its figures after that bar
    are not an account's (see "Ruin" in ``strategies.execution``)."""


def portfolio_fills(pf, index: pd.DatetimeIndex, column: int | None = None) -> list:
    """A ``vbt.Portfolio``'s orders as ``Fill`` records (bar, signed units, price, fee, position after): all of
    a one-column portfolio's, or those of column position ``column``."""
    from effnet_trading.strategies.execution import Fill

    r = pf.orders.records
    if column is not None:
        r = r[r["col"] == column]
    units = np.where(r["side"] == 0, r["size"], -r["size"]).astype(np.float64)
    after = np.cumsum(units)
    return [
        Fill(int(b), float(u), float(px), float(fee), np.nan, float(a), np.nan)
        for b, u, px, fee, a in zip(r["idx"], units, r["price"], r["fees"], after)
    ]


def ruin_bars(pf, open_, high, low, close, init_cash: float) -> np.ndarray:
    """The bar (position) where each column's account is ruined under the contract's rule ("Ruin" in
    ``strategies.execution``), -1 where it is not: vectorised over the columns from vectorbt's cash and
    assets after each bar's order (before it: the previous bar's). Prices: ``(T,)`` or ``(T, C)``.

    A shared-cash portfolio is one account per group: one bar per group, where the group's cash plus every
    position of its columns marked at the column's open (before the orders), or at its worst price of the bar
    (the high for a short, the low for a long, all at once) reaches <= 0 (``strategies.execution.pooled_ruin_hits``,
    the rule ``pooled_ruin`` applies to fills). A column without a bar is marked at its last close."""
    assets, cash = np.asarray(pf.assets(), np.float64), np.asarray(pf.cash(), np.float64)
    if assets.ndim == 1:
        assets = assets[:, None]
    cash = cash.reshape(len(assets), -1)
    o, h, lo, c = (  # (T,) prices: the same for every column
        np.broadcast_to(np.asarray(x, np.float64).reshape(len(assets), -1), assets.shape)
        for x in (open_, high, low, close)
    )
    before_a = np.vstack([np.zeros((1, assets.shape[1])), assets[:-1]])
    before_c = np.vstack([np.full((1, cash.shape[1]), float(init_cash)), cash[:-1]])
    if bool(getattr(pf, "cash_sharing", False)):
        from effnet_trading.strategies.execution import pooled_ruin_hits

        lens = np.asarray(pf.wrapper.grouper.get_group_lens())
        hit = np.zeros((len(assets), len(lens)), bool)
        for g, (a, k) in enumerate(zip(np.cumsum(lens) - lens, lens)):
            cols = slice(a, a + k)
            prices = (x[:, cols] for x in (o, h, lo, c))
            hit[:, g] = pooled_ruin_hits(before_c[:, g], before_a[:, cols], cash[:, g], assets[:, cols], *prices)
    else:
        hi, lo = np.fmax(np.fmax(h, o), c), np.fmin(np.fmin(lo, o), c)
        with np.errstate(invalid="ignore"):  # NaN prices (a symbol without that bar) never mark a ruin
            hit = (before_c + before_a * o <= 0.0) | (cash + assets * np.where(assets < 0.0, hi, lo) <= 0.0)
    return np.where(hit.any(axis=0), hit.argmax(axis=0), -1)


def _warn_if_ruined(pf, prices: tuple, init_cash: float, index: pd.Index) -> None:
    """Warn (``RuinWarning``) when a column's equity, or a shared-cash portfolio's, reaches 0. ``prices``: open,
    high, low, close, each ``(T,)`` or ``(T, C)``; ``index``: the timestamps the warning names."""
    bars = ruin_bars(pf, *prices, init_cash)
    if bool(getattr(pf, "cash_sharing", False)):
        groups = list(pf.wrapper.get_columns())
        columns = ["the shared-cash account "] if len(groups) == 1 else [f"group {g!r} " for g in groups]
    else:
        columns = [""] if pf.wrapper.ndim == 1 else [f"column {col!r} " for col in pf.wrapper.columns]
    ruined = [f"{col}at {index[b]}" for col, b in zip(columns, bars) if b >= 0]
    if ruined:
        closes = (
            "run_backtest_many(cash_sharing=True) sets the account's equity to 0 from that bar and reports it as "
            "ruined_at"
            if bool(getattr(pf, "cash_sharing", False))
            else "effnet_trading's backtest (run_backtest, the backtest command) and simulate() close the position "
            "there and report the account as ruined"
        )
        warnings.warn(
            f"equity reaches 0 ({'; '.join(ruined[:5])}{' ...' if len(ruined) > 5 else ''}): a short held through a "
            "rally that doubled its entry price, or more. vectorbt does not liquidate, so the value after that bar is "
            f"below zero and the statistics are not an account's. {closes}; or cap the exposure "
            "(Risk(max_exposure=...)).",
            RuinWarning,
            stacklevel=3,
        )


def _like(target, values: np.ndarray):
    if isinstance(target, pd.DataFrame):
        return pd.DataFrame(values, index=target.index, columns=target.columns)
    return pd.Series(values, index=target.index)


def _grid_probs(ohlcv: pd.DataFrame, scores) -> pd.DataFrame:
    """Class probabilities on ``ohlcv``'s index: a probability DataFrame as given, or one scoring pass of a scorer."""
    if isinstance(scores, pd.DataFrame):
        return scores.reindex(ohlcv.index)
    return as_scorer(scores, what="policy_grid").predict_proba(ohlcv)


def policy_grid(
    ohlcv,
    scores,
    *,
    threshold=(0.5,),
    hysteresis=(0.0,),
    long_only=(False,),
    sizing=("fixed",),
    policy: Policy | None = None,
    fees: float = 0.001,
    slippage: float = 0.0,
    init_cash: float = 10_000.0,
    freq=None,
):
    """One ``vbt.Portfolio`` with a column per combination of threshold x hysteresis x long_only x sizing
    (column levels ``effnet_threshold`` ... ``effnet_sizing``), all from **one** scoring pass: ``scores`` is a
    scorer / model (scored once, e.g. ``PrecomputedScores.from_file``) or a probability DataFrame; each
    combination is only a ``Policy`` pass over it. ``policy`` sets the other Policy fields (on_hold).
    sizing: Policy sizings ("fixed", "prob") and/or ``strategies.sizing`` objects (labelled by their repr)."""
    import itertools

    frame = _frame(ohlcv)
    probs = _grid_probs(frame, scores)
    base = (policy if policy is not None else Policy()).replace(class_names=tuple(probs.columns))
    combos = list(itertools.product(threshold, hysteresis, long_only, sizing))
    labels = [(*c[:3], c[3] if isinstance(c[3], str) else repr(c[3])) for c in combos]
    targets = np.empty((len(frame), len(combos)))
    for si in set(c[3] for c in combos):
        if not isinstance(si, str):
            si.check(scores)  # e.g. CappedKelly refuses uncalibrated probabilities, as in backtrader
    for j, (th, hy, lo, si) in enumerate(combos):
        sizer = None if isinstance(si, str) else si  # a strategies.sizing object sizes the fixed-size decisions
        rule = base.replace(
            threshold=float(th), hysteresis=float(hy), long_only=bool(lo), sizing=si if sizer is None else "fixed"
        )
        target = rule.positions(probs)
        targets[:, j] = (target if sizer is None else sizer.sizes(frame, probs, target)).to_numpy()
    columns = pd.MultiIndex.from_tuples(
        labels, names=["effnet_threshold", "effnet_hysteresis", "effnet_long_only", "effnet_sizing"]
    )
    return portfolio_from_signals(
        frame,
        pd.DataFrame(targets, index=frame.index, columns=columns),
        fees=fees,
        slippage=slippage,
        init_cash=init_cash,
        freq=freq,
    )
