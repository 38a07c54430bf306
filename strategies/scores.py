"""Score files: class probabilities computed once (``effnet-trading predict``) and re-used by many
backtests, with what they were computed from, so a file is never read against another model or data.

A score file is Parquet (default; ``pyarrow``) or CSV (when the name ends in ``.csv``): columns
``timestamp``, then ``symbol`` when it holds several symbols, then one column per class name. Its
provenance (``SCORES_META_KEY``: the models' ONNX sha256, spec and calibration, the class names,
``calibration`` (None, or the temperature the probabilities were calibrated with), and per symbol
the sha256 of the OHLCV values it scored) is the Parquet file's schema metadata, or a sidecar
``<file>.json`` beside a CSV.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from effnet_trading.errors import DataError, ModelCardError

__all__ = [
    "SCORES_META_KEY",
    "SCORES_FORMAT",
    "ohlcv_sha256",
    "model_fingerprint",
    "scores_sidecar",
    "ScoresWriter",
    "read_scores",
    "check_scores_meta",
    "scores_calibration",
]

SCORES_META_KEY = "effnet_trading"
SCORES_FORMAT = "effnet-trading scores v1"


def ohlcv_sha256(ohlcv) -> str:
    """Hex sha256 of an OHLCV frame's values (UTC ns timestamps + open/high/low/close/volume as float64):
    the same bars give the same hash whether they came from a CSV, a Parquet file or a DataFrame."""
    from effnet_trading.strategies.signal import canonical_ohlcv

    frame = canonical_ohlcv(ohlcv)
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(frame.index.as_unit("ns").asi8).tobytes())
    h.update(np.ascontiguousarray(frame.iloc[:, :5].to_numpy(dtype=np.float64)).tobytes())
    return h.hexdigest()


def _member_fingerprint(model: Any) -> dict[str, Any]:
    """One model's identity: name, ONNX sha256 (from its card) and spec."""
    from effnet_trading.model_zoo.card import load_card

    if isinstance(model, (str, os.PathLike)):
        card = load_card(model)
    else:
        inner = getattr(model, "model", model)  # a SignalModel wraps a Predictor
        card = getattr(inner, "card", None) or getattr(model, "card", None)
    if card is None:
        spec = getattr(model, "spec", None)
        return {
            "name": str(getattr(model, "name", type(model).__name__)),
            "onnx_sha256": None,
            "spec": None if spec is None else spec.to_dict(),
            "calibration": None,
        }
    cal = card.calibration or None
    return {
        "name": card.name,
        "onnx_sha256": card.onnx_sha256,
        "spec": card.spec.to_dict(),
        # the Predictor applies the card's temperature: same graph, other temperature = other probabilities
        "calibration": None if cal is None else {"method": cal.get("method"), "temperature": cal.get("temperature")},
    }


def model_fingerprint(model: Any) -> dict[str, dict[str, Any]]:
    """``{timeframe or "model": {name, onnx_sha256, spec, calibration}}`` for a model folder, Predictor, SignalModel,
    TimeframeEnsemble or ``{timeframe: any of these}``: what a score file records and is checked against."""
    members = getattr(model, "members", model)
    if isinstance(members, Mapping):
        return {str(tf): _member_fingerprint(m) for tf, m in members.items()}
    return {"model": _member_fingerprint(model)}


def scores_calibration(models: Mapping[str, Mapping[str, Any]]) -> dict[str, Any] | None:
    """What a score file records as its probabilities' calibration, from ``model_fingerprint``: None when
    any model is uncalibrated; one model's ``{method, temperature}``; several: ``{method, members}``."""
    cals = {k: m.get("calibration") for k, m in models.items()}
    if not cals or any(c is None for c in cals.values()):
        return None
    if len(cals) == 1:
        (only,) = cals.values()
        assert only is not None  # every value was checked above
        return dict(only)
    return {"method": "temperature", "members": cals}


def scores_sidecar(path: str | os.PathLike) -> Path:
    """The JSON sidecar that carries a CSV score file's provenance (``probs.csv`` -> ``probs.csv.json``)."""
    path = Path(path)
    return path.with_name(path.name + ".json")


def _is_csv(path: Path) -> bool:
    return path.name.lower().endswith((".csv", ".csv.gz"))


class ScoresWriter:
    """Writes a score file block by block (one symbol or chunk at a time, so memory stays bounded) into a
    temporary sibling, renamed into place by ``close()`` (readers never see a half-written file).

    columns: the class names; symbols: True to write a ``symbol`` column; meta: the provenance dict
    (``data`` per symbol may be filled in while writing, via ``meta["data"][symbol] = ...``)."""

    def __init__(self, path: str | os.PathLike, class_names, *, symbols: bool, meta: dict[str, Any]):
        self.path = Path(path)
        self.csv = _is_csv(self.path)
        self.class_names = [str(c) for c in class_names]
        self.symbols = bool(symbols)
        self.meta = meta
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = self.path.with_name(f".{self.path.name}.tmp")
        self._writer: Any = None  # pyarrow.parquet.ParquetWriter, opened by the first write()
        self._started = False
        if not self.csv:
            from effnet_trading.errors import require

            self._pa = require("pyarrow", "parquet")
            import pyarrow.parquet as pq

            self._pq = pq

    def _table_frame(self, probs: pd.DataFrame, symbol: str | None) -> pd.DataFrame:
        out = pd.DataFrame({"timestamp": probs.index})
        if self.symbols:
            out["symbol"] = str(symbol)
        for c in self.class_names:
            out[c] = probs[c].to_numpy(dtype=np.float64)
        return out

    def write(self, probs: pd.DataFrame, symbol: str | None = None) -> None:
        """Append one block of probabilities (index = UTC timestamps, one column per class)."""
        frame = self._table_frame(probs, symbol)
        if self.csv:
            frame.to_csv(self._tmp, mode="a" if self._started else "w", header=not self._started, index=False)
        else:
            table = self._pa.Table.from_pandas(frame, preserve_index=False)
            if self._writer is None:
                self._schema = table.schema.remove_metadata()
                self._writer = self._pq.ParquetWriter(self._tmp, self._schema)
            self._writer.write_table(table.cast(self._schema))
        self._started = True

    def close(self) -> Path:
        """Finish the file (provenance in the Parquet footer or the CSV sidecar) and move it into place."""
        if not self._started:
            self.write(pd.DataFrame(columns=self.class_names, index=pd.DatetimeIndex([], tz="UTC")))
        text = json.dumps(self.meta, sort_keys=True, default=str)
        if self.csv:
            from effnet_trading.outputs import file_sha256

            # the sidecar names the CSV's own hash: a crash between the two renames leaves a pair that
            # read_scores refuses, never new scores under old provenance
            text = json.dumps(self.meta | {"csv_sha256": file_sha256(self._tmp)}, sort_keys=True, default=str)
            side = scores_sidecar(self.path)
            tmp_side = side.with_name(f".{side.name}.tmp")
            tmp_side.write_text(text + "\n")
            self._tmp.replace(self.path)
            tmp_side.replace(side)
        else:
            assert self._writer is not None  # the write() above (or an earlier one) opened it
            self._writer.add_key_value_metadata({SCORES_META_KEY: text})
            self._writer.close()
            self._tmp.replace(self.path)
        return self.path

    def abort(self) -> None:
        """Drop the temporary file (a failed run leaves nothing behind)."""
        if self._writer is not None:
            self._writer.close()
        self._tmp.unlink(missing_ok=True)


def read_scores(path: str | os.PathLike) -> tuple[pd.DataFrame, dict[str, Any]]:
    """A score file -> (frame with a UTC ``timestamp`` column, [``symbol``], class columns; its provenance)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"score file {path} does not exist; write one with `effnet-trading predict --out {path}`.")
    if _is_csv(path):
        side = scores_sidecar(path)
        if not side.is_file():
            raise DataError(
                f"score file {path} has no provenance sidecar {side.name}: it was not written by "
                "`effnet-trading predict` (or the sidecar was lost); re-run predict."
            )
        from effnet_trading.outputs import file_sha256

        try:
            meta = json.loads(side.read_text())
        except ValueError as exc:
            raise DataError(f"the sidecar {side} of {path} is not valid JSON ({exc}); re-run predict.") from exc
        if meta.get("csv_sha256") not in (None, file_sha256(path)):
            raise DataError(
                f"score file {path} does not match its sidecar {side.name} (sha256 differs: one of the two was "
                "replaced or edited); re-run `effnet-trading predict`."
            )
        frame = pd.read_csv(path, dtype={"symbol": str})
        frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
    else:
        from effnet_trading.errors import require

        require("pyarrow", "parquet")
        import pyarrow.parquet as pq

        # the provenance is known only when the last block is written: it is the footer's key-value metadata
        raw = (pq.ParquetFile(path).metadata.metadata or {}).get(SCORES_META_KEY.encode())
        if raw is None:
            raise DataError(
                f"{path} carries no effnet-trading provenance ({SCORES_META_KEY!r} metadata): it was not written by "
                "`effnet-trading predict`; re-run predict."
            )
        meta = json.loads(raw)
        frame = pq.read_table(path).to_pandas()
        ts = pd.DatetimeIndex(frame["timestamp"])
        frame["timestamp"] = ts.tz_localize("UTC") if ts.tz is None else ts.tz_convert("UTC")
    if meta.get("format") != SCORES_FORMAT:
        raise DataError(f"{path} has format {meta.get('format')!r}; this version reads {SCORES_FORMAT!r}.")
    return frame, meta


def _differences(stored: dict, given: dict) -> list[str]:
    out = []
    for key in sorted(set(stored) | set(given)):
        a, b = stored.get(key), given.get(key)
        if a is None or b is None:
            out.append(f"{key}: in the file {'yes' if a else 'no'}, given {'yes' if b else 'no'}")
            continue
        for field in ("onnx_sha256", "spec", "calibration"):
            if a.get(field) != b.get(field):
                shown = (
                    (str(a.get(field))[:12], str(b.get(field))[:12])
                    if field == "onnx_sha256"
                    else (a.get(field), b.get(field))
                )
                out.append(f"{key}.{field}: file {shown[0]} vs given {shown[1]}")
    return out


def check_scores_meta(meta: dict[str, Any], *, path, model: Any = None, data: Mapping[str, Any] | None = None) -> None:
    """Refuse a score file whose models (``model``: anything ``model_fingerprint`` takes) or data
    (``{symbol: OHLCV frame}``) differ from what it was computed from."""
    if model is not None:
        diff = _differences(meta.get("models", {}), model_fingerprint(model))
        if diff:
            raise ModelCardError(
                f"score file {path} was computed with another model than the one given ({'; '.join(diff)}); "
                "re-run `effnet-trading predict` with this model, or pass the model the file was made with."
            )
    if data is not None:
        stored = meta.get("data", {})
        for symbol, frame in data.items():
            if str(symbol) not in stored:
                raise DataError(
                    f"score file {path} holds no scores for symbol {symbol!r} (it has {sorted(stored)}); "
                    "pass symbol=... or re-run predict on this data."
                )
            got = ohlcv_sha256(frame)
            want = stored[str(symbol)].get("sha256")
            if got != want:
                raise DataError(
                    f"score file {path} was computed on other bars for {symbol!r} (data sha256 {str(want)[:12]}… in the "
                    f"file, {got[:12]}… given): re-run `effnet-trading predict` on this data."
                )
