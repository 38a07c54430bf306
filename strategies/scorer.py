"""The ``Scorer`` protocol: anything that turns OHLCV bars into class probabilities, in batch
(``predict_proba``) and one closed bar at a time (``update``).

``SignalModel``, ``TimeframeEnsemble`` and ``PrecomputedScores`` implement it, and so can any
user class. ``as_scorer`` is the one place that turns what a user hands an adapter (a model
folder, a ``Predictor``, a ``SignalModel``, ``{timeframe: model}``) into a scorer; every adapter
calls it once instead of checking attributes itself.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Mapping
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from effnet_trading.errors import DataError, SpecError

__all__ = ["Scorer", "as_scorer", "is_scorer", "scorers_by_symbol", "PrecomputedScores", "SCORER_MEMBERS"]

SCORER_MEMBERS = ("predict_proba", "update", "reset", "class_names", "warmup")


@runtime_checkable
class Scorer(Protocol):
    """Bars -> class probabilities. ``predict_proba(frame)``: DataFrame on the frame's index, one
    column per class (NaN in warm-up); ``update(bar)``: the same numbers for one new closed bar
    (None in warm-up); ``reset()``: forget live state; ``class_names``; ``warmup``: bars before
    the first score."""

    class_names: tuple[str, ...]

    @property
    def warmup(self) -> int: ...

    def predict_proba(self, ohlcv: pd.DataFrame) -> pd.DataFrame: ...

    def update(self, bar: Any) -> pd.Series | None: ...

    def reset(self) -> None: ...


_MISSING = object()


def _missing_members(obj: Any) -> list[str]:
    # getattr_static: reading ``warmup`` may raise before data is seen (timeframe specs), so the
    # check looks the members up without evaluating properties (isinstance does on Python < 3.12)
    return [name for name in SCORER_MEMBERS if inspect.getattr_static(obj, name, _MISSING) is _MISSING]


def is_scorer(obj: Any) -> bool:
    """True when ``obj`` has every ``Scorer`` member (checked without calling anything)."""
    return not _missing_members(obj)


def _is_model_path(obj: Any) -> bool:
    return isinstance(obj, (str, os.PathLike))


def as_scorer(
    model: Any, *, chunk: int = 2048, load: Callable[[Any], Any] | None = None, what: str = "the adapter"
) -> Scorer:
    """A ``Scorer`` from what a user passes an adapter: a Scorer (returned as is), a model folder
    (model.onnx + card.json), a ``Predictor`` (or any object with ``predict``/``spec``/``class_names``),
    or ``{timeframe: any of these}`` for a ``TimeframeEnsemble``.

    what: who asks (named in error messages). load: how a model folder becomes a scorer (default ``SignalModel(path, chunk=chunk)``); the
    vectorbt adapter passes its session cache here.
    """
    from effnet_trading.strategies.signal import SignalModel

    if model is None:
        raise SpecError(
            f"{what} needs model=...: a model folder (model.onnx + card.json), a Predictor, a SignalModel, a "
            "TimeframeEnsemble, any Scorer (predict_proba, update, reset, class_names, warmup) or a dict "
            "{'5m': folder, '1h': folder}."
        )
    if isinstance(model, Mapping):
        from effnet_trading.strategies.ensemble import TimeframeEnsemble

        return TimeframeEnsemble(
            {tf: as_scorer(m, chunk=chunk, load=load, what=f"{what} ({tf!r})") for tf, m in model.items()}
        )
    if is_scorer(model):
        return model
    if _is_model_path(model):
        return load(model) if load is not None else SignalModel(model, chunk=chunk)
    if inspect.getattr_static(model, "predict", _MISSING) is not _MISSING:
        return SignalModel(model, chunk=chunk)
    raise SpecError(
        f"{what}: model of type {type(model).__name__} is not a Scorer: it lacks {_missing_members(model)} and has no "
        "predict(images); pass a model folder, a Predictor, a SignalModel or an object with "
        f"{list(SCORER_MEMBERS)}."
    )


def scorers_by_symbol(model: Any, symbols: list[str], *, chunk: int = 2048, what: str = "the adapter") -> dict:
    """``{symbol: Scorer}`` for a multi-symbol run: one model for every symbol, or a mapping with exactly
    the symbols as keys (e.g. ``PrecomputedScores.by_symbol(path)``). Scores bound to one symbol
    (``.symbol``) are refused for any other symbol; a mapping whose keys name some of the symbols but not
    exactly them is refused with the missing and extra keys (rather than read as timeframes)."""
    if isinstance(model, Mapping):
        keys = {str(k) for k in model}
        if keys == set(symbols):
            by_key = {str(k): m for k, m in model.items()}
            out = {s: as_scorer(by_key[s], chunk=chunk, what=what) for s in symbols}
            for s, sc in out.items():
                bound = getattr(sc, "symbol", None)
                if bound is not None and bound != s:
                    raise DataError(
                        f"{what}: the scores given for symbol {s!r} belong to symbol {bound!r}; key the mapping by "
                        "the symbols the scores were computed on (PrecomputedScores.by_symbol does)."
                    )
            return out
        if keys & set(symbols):
            raise DataError(
                f"{what}: the {{symbol: model}} mapping must have exactly the symbols {sorted(symbols)} as keys; "
                f"missing {sorted(set(symbols) - keys)}, extra {sorted(keys - set(symbols))}."
            )
    one = as_scorer(model, chunk=chunk, what=what)
    bound = getattr(one, "symbol", None)
    if bound is not None and len(symbols) > 1:
        raise DataError(
            f"{what}: these precomputed scores belong to symbol {bound!r} but the run trades {sorted(symbols)}: "
            "they would score another symbol with its probabilities. Backtest that symbol alone, or pass "
            "PrecomputedScores.by_symbol(path) ({symbol: scores}) as the scorer."
        )
    return dict.fromkeys(symbols, one)


class PrecomputedScores:
    """A ``Scorer`` over probabilities computed elsewhere (a DataFrame: UTC index, one column per
    class, NaN where there is no score yet): lets precomputed or third-party predictions drive
    the same ``Policy`` / adapters as a live model. calibration: how they were calibrated (score
    files carry it; ``CappedKelly`` sizes only calibrated probabilities)."""

    symbol: str | None = None  # set when loaded from a score file: the symbol these scores belong to
    meta: dict[str, Any] | None = None  # set when loaded from a score file: its provenance

    def __init__(self, probs: pd.DataFrame, *, calibration: dict | None = None):
        if not isinstance(probs, pd.DataFrame) or not isinstance(probs.index, pd.DatetimeIndex):
            raise DataError(
                "PrecomputedScores needs a DataFrame of probabilities on a DatetimeIndex "
                "(one column per class, e.g. sell/hold/buy)."
            )
        index = probs.index.tz_localize("UTC") if probs.index.tz is None else probs.index.tz_convert("UTC")
        self.probs = probs.set_axis(index).astype(np.float64)
        self.class_names = tuple(str(c) for c in probs.columns)
        scored = np.flatnonzero(self.probs.notna().all(axis=1).to_numpy())
        self._warmup = int(scored[0]) if len(scored) else len(self.probs)
        # how the probabilities were calibrated (a score file's record, e.g. {"method": "temperature",
        # "temperature": 1.3}); None = uncalibrated or unknown, which CappedKelly refuses
        self.calibration = calibration

    @classmethod
    def from_file(cls, path, *, model: Any = None, data: Any = None, symbol: str | None = None) -> PrecomputedScores:
        """One symbol's scores from an ``effnet-trading predict`` file, refused when ``model`` (folder,
        Predictor, SignalModel, ensemble) or ``data`` (the OHLCV frame, or ``{symbol: frame}``) differ from
        what the file was computed from. symbol: which one, when the file holds several."""
        return next(iter(cls._load(path, model, data, None if symbol is None else [str(symbol)]).values()))

    @classmethod
    def by_symbol(
        cls, path, *, model: Any = None, data: Mapping[str, Any] | None = None
    ) -> dict[str, PrecomputedScores]:
        """``{symbol: PrecomputedScores}`` for every symbol of a score file (checked as ``from_file``)."""
        return cls._load(path, model, data, "all")

    @classmethod
    def _load(cls, path, model, data, symbols) -> dict[str, PrecomputedScores]:
        from effnet_trading.strategies.scores import check_scores_meta, read_scores

        frame, meta = read_scores(path)
        stored = [str(s) for s in meta.get("symbols", [])]
        if symbols == "all":
            symbols = stored
        elif symbols is None:
            if len(stored) != 1:
                raise DataError(
                    f"score file {path} holds {len(stored)} symbols {stored}: pass symbol=... (one of them)."
                )
            symbols = stored
        unknown = [s for s in symbols if s not in stored]
        if unknown:
            raise DataError(f"score file {path} has no symbol(s) {unknown}; it holds {stored}.")
        if data is not None and not isinstance(data, Mapping):
            if len(symbols) != 1:
                raise DataError("data= for several symbols must be {symbol: OHLCV frame}.")
            data = {symbols[0]: data}
        check_scores_meta(meta, path=path, model=model, data=data)
        out = {}
        for s in symbols:
            part = frame[frame["symbol"] == s] if "symbol" in frame.columns else frame
            probs = part.set_index(pd.DatetimeIndex(part["timestamp"], name="timestamp"))[list(meta["class_names"])]
            out[s] = cls(probs, calibration=meta.get("calibration"))
            out[s].meta = meta
            out[s].symbol = s  # bound to one symbol's bars: a multi-symbol backtest refuses it
        return out

    @property
    def warmup(self) -> int:
        return self._warmup

    def predict_proba(self, ohlcv: pd.DataFrame) -> pd.DataFrame:
        """The stored probabilities on ``ohlcv``'s index (NaN for bars without a score)."""
        from effnet_trading.strategies.signal import canonical_ohlcv

        return self.probs.reindex(canonical_ohlcv(ohlcv).index)

    def update(self, bar: Any) -> pd.Series | None:
        from effnet_trading.strategies.signal import parse_bar

        ts, _ = parse_bar(bar)
        if ts not in self.probs.index:
            return None
        row = self.probs.loc[ts]
        return None if row.isna().any() else row.rename(ts)

    def reset(self) -> None:
        """Stateless: nothing to forget."""

    def __repr__(self) -> str:
        return f"PrecomputedScores({len(self.probs)} bars, classes={list(self.class_names)})"
