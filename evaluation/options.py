"""``evaluate``'s option names mapped onto ``EvalConfig``, in one place: the ``evaluate`` command
(its flags and ``--config``) and sweep configs (``sweep``) both build a run's configuration here.

An option name is the command-line flag without dashes, dashes as underscores (``--max-train-bars``
-> ``max_train_bars``). ``data``, ``timeframe``, ``start``, ``end``, ``last_bars``, ``date_format`` and
``tz`` say which bars a run reads (``load_eval_data``); the others set ``EvalConfig`` fields.
"""

from __future__ import annotations

import datetime
import json
import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from effnet_trading.errors import SpecError

__all__ = [
    "OPTION_PATHS",
    "SPEC_OPTIONS",
    "DATA_OPTIONS",
    "option_names",
    "eval_config_dict",
    "load_eval_data",
    "date_window",
]

# option -> (section, key) in EvalConfig.to_dict(); None = top level
OPTION_PATHS: dict[str, tuple[str | None, str]] = {
    "models": (None, "models"),
    "baselines": (None, "baselines"),
    "folds": (None, "folds"),
    "embargo": (None, "embargo"),
    "max_train_bars": (None, "max_train_bars"),
    "fees": (None, "fees"),
    "slippage": (None, "slippage"),
    "null": (None, "null"),
    "null_kind": (None, "null_kind"),
    "null_block": (None, "null_block"),
    "null_models": (None, "null_models"),
    "extra_trials": (None, "extra_trials"),
    "bootstrap": (None, "bootstrap"),
    "model_kwargs": (None, "model_kwargs"),
    "split": (None, "split"),
    "horizon": ("train", "horizon"),
    "label_k": ("train", "label_k"),
    "epochs": ("train", "epochs"),
    "patience": ("train", "patience"),
    "select_by": ("train", "select_by"),
    "batch_size": ("train", "batch_size"),
    "lr": ("train", "lr"),
    "seed": ("train", "seed"),
    "threads": ("train", "num_threads"),
    "threshold": ("policy", "threshold"),
    "long_only": ("policy", "long_only"),
    "ablations": (None, "ablations"),
    "ablation_timeframes": (None, "ablation_timeframes"),
    "books": (None, "books"),
}
# the image-encoding options and their defaults (evaluate's); given together they replace the spec whole
SPEC_OPTIONS: dict[str, Any] = {"spec": "candles", "window": 32, "size": 64, "returns": False}
DATA_OPTIONS = ("data", "timeframe", "last_bars", "date_format", "tz", "start", "end")
MIN_WINDOW_BARS = 100  # fewest bars a --start/--end window may hold (as --last-bars)


def option_names() -> list[str]:
    """Every option name a run configuration may hold."""
    return sorted(set(OPTION_PATHS) | set(SPEC_OPTIONS) | set(DATA_OPTIONS))


def _csv(value) -> list[str]:
    if isinstance(value, str):
        return [s.strip() for s in value.split(",") if s.strip()]
    return [str(s) for s in value]


def _value(name: str, value):
    """An option's value as EvalConfig holds it: comma lists split, ``model_kwargs`` JSON read."""
    if name in ("models", "baselines"):
        return _csv(value or "")
    if name in ("ablations", "ablation_timeframes"):  # a comma list, or several (--ablation a --ablation b,c)
        return [s for v in ([value] if isinstance(value, str) else value or []) for s in _csv(v)]
    if name == "split":
        from effnet_trading.evaluation.evaluate import parse_split

        return None if value in (None, "") else list(parse_split(value))
    if name == "null_models":
        return None if value is None else _csv(value)
    if name == "model_kwargs":
        if isinstance(value, str):
            try:
                value = json.loads(value) if value else {}
            except json.JSONDecodeError as exc:
                raise SpecError(
                    f'model_kwargs is not valid JSON ({exc}); e.g. \'{{"small_cnn": {{"widths": [16, 32, 64]}}}}\'.'
                ) from exc
        return dict(value or {})
    return value


def eval_config_dict(options: Mapping[str, Any], base: Mapping[str, Any] | None = None) -> dict:
    """EvalConfig as a dict (``EvalConfig.from_dict`` reads it): ``base`` (a config.json-layout dict,
    e.g. a ``--config`` file) with ``options`` laid over it. Data options are ignored here; an
    unknown option is a ``SpecError`` listing the known ones."""
    unknown = sorted(set(options) - set(option_names()))
    if unknown:
        raise SpecError(f"unknown option(s) {unknown}; evaluate's options are {option_names()}.")
    d = json.loads(json.dumps(dict(base or {})))
    for name in sorted(set(options) & set(OPTION_PATHS)):
        section, key = OPTION_PATHS[name]
        (d.setdefault(section, {}) if section else d)[key] = _value(name, options[name])
    if set(options) & set(SPEC_OPTIONS):  # the spec options replace the base's spec as a whole
        from effnet_trading.imaging import spec_from_options

        o = {k: options.get(k, v) for k, v in SPEC_OPTIONS.items()}
        spec = spec_from_options(o["spec"], window=int(o["window"]), size=o["size"], returns=bool(o["returns"]))
        d.setdefault("train", {})["spec"] = spec.to_dict()
    if "data" in options:
        d["data"] = str(options["data"])
    if "timeframe" in options:
        d["timeframe"] = options["timeframe"]
    return d


def load_eval_data(
    path: str | os.PathLike,
    *,
    timeframe: str | None = None,
    last_bars: int | None = None,
    date_format: str | None = None,
    tz: str | None = None,
    start: str | None = None,
    end: str | None = None,
):
    """The bars a run evaluates: ``path`` loaded and validated, resampled to ``timeframe`` (closed bars
    only), cut to the ``start``..``end`` window (see ``date_window``), then the most recent ``last_bars``."""
    from effnet_trading.imaging import load_ohlcv, resample_ohlcv

    frame = load_ohlcv(path, date_format=date_format, tz=tz)
    if timeframe:
        frame = resample_ohlcv(frame, timeframe)
    if start is not None or end is not None:
        frame = date_window(frame, start, end, tz=tz)
    if last_bars:
        frame = frame.iloc[-int(last_bars) :]
    return frame


def _bound(value, tz: str | None, name: str) -> tuple[pd.Timestamp, bool]:
    """A window bound as a timestamp in the data's zone, and whether it was a bare date (a whole day)."""
    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError) as exc:
        raise SpecError(f"--{name} {value!r} is not a date; give e.g. 2022-01-01 or '2022-01-01 12:00'.") from exc
    if ts is pd.NaT:
        raise SpecError(f"--{name} {value!r} is not a date; give e.g. 2022-01-01 or '2022-01-01 12:00'.")
    if isinstance(value, str):
        whole_day = ts == ts.normalize() and ":" not in value and "T" not in value
    else:  # a TOML date (``end = 2024-12-31``) is a whole day; a TOML date-time is not
        whole_day = isinstance(value, datetime.date) and not isinstance(value, datetime.datetime)
    if ts.tzinfo is None:  # naive bounds are read like naive data timestamps: in --tz, else UTC
        ts = ts.tz_localize(tz or "UTC")
    return ts, whole_day


def date_window(frame, start=None, end=None, *, tz: str | None = None, min_bars: int = MIN_WINDOW_BARS):
    """The bars of ``frame`` timestamped in ``start``..``end``, both inclusive; a bare date as ``end``
    includes its whole day. Naive bounds are in ``tz`` (UTC when None), as naive data timestamps are.
    A ``SpecError`` when the window is reversed or holds fewer than ``min_bars`` bars."""
    index = frame.index
    lo, _ = _bound(start, tz, "start") if start is not None else (None, False)
    hi, day = _bound(end, tz, "end") if end is not None else (None, False)
    if lo is not None and hi is not None and hi < lo:
        raise SpecError(
            f"--end {end} is before --start {start}; give a window like --start 2022-01-01 --end 2024-12-31."
        )
    keep = np.ones(len(index), bool)
    if lo is not None:
        keep &= index >= lo
    if hi is not None:
        keep &= (index < hi + pd.DateOffset(days=1)) if day else (index <= hi)  # a calendar day (23-25 h on DST days)
    n = int(keep.sum())
    if n < min_bars:
        span = f"{index[0]} .. {index[-1]}" if len(index) else "no bars"
        raise SpecError(
            f"the window --start {start} --end {end} holds {n} bar(s) (need >= {min_bars}); the data spans {span}. "
            "Widen the window or drop --start/--end."
        )
    return frame.loc[keep]
