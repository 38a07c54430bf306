"""Score once, backtest many: class probabilities per bar (and per symbol) into a score file
(``strategies.scores``), with the models' sha256 and spec and the data's sha256 as provenance.
The ``predict`` command calls ``predict_to_file``; ``PrecomputedScores.from_file`` reads the file back."""

from __future__ import annotations

import datetime
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from effnet_trading.plugins.backtest import images_expected, scoring_progress
from effnet_trading.strategies.scores import (
    SCORES_FORMAT,
    ScoresWriter,
    model_fingerprint,
    ohlcv_sha256,
    scores_calibration,
)

__all__ = ["predict_to_file"]


def _frames(data, load_kwargs: dict):
    """(symbol, frame) pairs, loading a CSV only when its turn comes (one symbol in memory at a time)."""
    from effnet_trading.imaging import load_ohlcv, symbol_paths

    if isinstance(data, Mapping):
        for symbol, frame in data.items():
            yield str(symbol), None, load_ohlcv(frame, **load_kwargs)
        return
    for symbol, path in symbol_paths(data).items():
        yield symbol, str(Path(path).resolve()), load_ohlcv(path, **load_kwargs)


def _count(data) -> int:
    from effnet_trading.imaging import symbol_paths

    return len(data) if isinstance(data, Mapping) else len(symbol_paths(data))


def predict_to_file(
    data: Any,
    scorer: Any,
    out: str | os.PathLike,
    *,
    progress: bool = False,
    date_format: str | None = None,
    tz: str | None = None,
) -> Path:
    """Score ``data`` (a CSV path, a folder of CSVs, a list of either, or ``{symbol: OHLCV frame}``) with
    ``scorer`` (anything ``as_scorer`` takes) into the score file ``out`` (Parquet, or CSV when it ends in
    ``.csv``), one symbol at a time; the file appears only when complete. Returns its path."""
    from effnet_trading import __version__
    from effnet_trading.strategies.scorer import as_scorer
    from effnet_trading.strategies.signal import require_history

    scorer = as_scorer(scorer, what="predict")
    n_symbols = _count(data)
    meta: dict[str, Any] = {
        "format": SCORES_FORMAT,
        "class_names": list(scorer.class_names),
        "models": model_fingerprint(scorer),
        "calibration": None,  # filled below: None, or the temperature the cards' probabilities carry
        "symbols": [],
        "data": {},
        "execution": "probabilities of each bar from bars up to and including it (decide at its close)",
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "effnet_trading": __version__,
    }
    meta["calibration"] = scores_calibration(meta["models"])
    writer = ScoresWriter(out, scorer.class_names, symbols=n_symbols > 1, meta=meta)
    try:
        for symbol, source, frame in _frames(data, {"date_format": date_format, "tz": tz}):
            require_history(scorer, frame, what=f"symbol {symbol!r}")
            scorer.reset()
            total = images_expected(scorer, frame) if progress else 0
            with scoring_progress(scorer, total, f"scoring {symbol}", enabled=progress):
                probs = scorer.predict_proba(frame)
            writer.write(probs, symbol)
            meta["symbols"].append(symbol)
            meta["data"][symbol] = {
                "sha256": ohlcv_sha256(frame),
                "bars": len(frame),
                "span": [str(frame.index[0]), str(frame.index[-1])],
                "scored": int(probs.notna().all(axis=1).sum()),
                "source": source,
            }
            del frame, probs
        return writer.close()
    except BaseException:
        writer.abort()
        raise
