"""ImageSpec / StackSpec: what an image is, as frozen, JSON round-trippable data."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Union, cast

from effnet_trading.errors import SpecError

__all__ = ["KINDS", "ImageSpec", "StackSpec", "AnySpec", "spec_from_dict", "spec_from_json", "spec_from_options"]

MAX_SIZE = 4096  # pixels a side: beyond it one rendered image alone takes 64+ MiB per channel

KINDS = ("candles", "ohlc_bars", "gasf", "gadf", "recurrence", "lob_heatmap")
_PRICE_FIELDS = ("open", "high", "low", "close", "volume", "typical")


@dataclass(frozen=True)
class ImageSpec:
    """One image encoding of a window of bars.

    kind: one of ``KINDS``. window: bars per image. size: (H, W) pixels.
    timeframe: None renders the input bars; e.g. ``"15m"`` resamples first and uses only
    15m bars that have **closed** at the decision time.
    Per-kind options: ``volume`` (volume panel in the bottom fifth; candles/ohlc_bars),
    ``ma`` (moving-average length drawn as a line; 0 = none), ``color`` ("rgb"|"grey"; candles),
    ``fields`` (price series for gasf/gadf/recurrence; one channel each), ``returns``
    (use log-returns instead of levels), ``threshold`` (recurrence: binary plot at this
    distance; None = grey-level distances), ``levels`` (lob_heatmap depth per side),
    ``bucket_bps`` (lob_heatmap: height of one price row in basis points of the mid price).

    ``history`` is how many bars one image needs: ``window`` plus ``ma - 1`` for the moving
    average of candles/ohlc_bars, plus one for ``returns`` (the return of the first bar).
    """

    kind: str
    window: int = 32
    size: tuple[int, int] = (64, 64)
    timeframe: str | None = None
    volume: bool = True
    ma: int = 0
    color: str = "rgb"
    fields: tuple[str, ...] = ("close",)
    returns: bool = False
    threshold: float | None = None
    levels: int = 20
    bucket_bps: float = 0.1

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise SpecError(f"ImageSpec kind {self.kind!r} is unknown; choose one of {list(KINDS)}.")
        size = tuple(int(s) for s in (self.size if not isinstance(self.size, int) else (self.size, self.size)))
        object.__setattr__(self, "size", size)
        object.__setattr__(self, "fields", tuple(self.fields) if not isinstance(self.fields, str) else (self.fields,))
        if len(size) != 2 or min(size) < 4:
            raise SpecError(f"ImageSpec size {self.size!r} must be (H, W) with both >= 4 pixels, e.g. (64, 64).")
        if max(size) > MAX_SIZE:
            raise SpecError(
                f"ImageSpec size {size} is larger than {MAX_SIZE} pixels a side (one image would need "
                f"{size[0] * size[1] * 4 / 2**20:,.0f} MiB per channel); models read 16-256, e.g. (64, 64)."
            )
        if int(self.window) < 2:
            raise SpecError(f"ImageSpec window {self.window!r} must be >= 2 bars.")
        object.__setattr__(self, "window", int(self.window))
        if self.color not in ("rgb", "grey"):
            raise SpecError(f"ImageSpec color {self.color!r} must be 'rgb' or 'grey'.")
        bad = [f for f in self.fields if f not in _PRICE_FIELDS]
        if bad or not self.fields:
            raise SpecError(
                f"ImageSpec fields {list(self.fields)} must be a non-empty subset of {list(_PRICE_FIELDS)}."
            )
        if self.ma < 0:
            raise SpecError(f"ImageSpec ma={self.ma} must be >= 0 (0 draws no moving average).")
        if self.kind == "ohlc_bars" and size[1] < 3 * self.window:
            raise SpecError(
                f"ohlc_bars needs 3 pixels per bar: width {size[1]} < 3 x window {self.window}; "
                f"use size=(H, {3 * self.window}) (JKX: 20 bars -> (64, 60))."
            )
        if self.kind == "candles" and size[1] < self.window:
            raise SpecError(
                f"candles needs at least 1 pixel column per bar: width {size[1]} < window {self.window}; "
                f"use size=(H, W) with W >= {self.window} (2-3 columns per bar read best)."
            )
        if int(self.levels) < 1:
            raise SpecError(f"ImageSpec levels={self.levels} must be >= 1 (order-book depth per side).")
        object.__setattr__(self, "levels", int(self.levels))
        if not float(self.bucket_bps) > 0:
            raise SpecError(f"ImageSpec bucket_bps={self.bucket_bps} must be > 0 (basis points per price row).")
        object.__setattr__(self, "bucket_bps", float(self.bucket_bps))
        if self.threshold is not None and not float(self.threshold) > 0:
            raise SpecError(f"ImageSpec threshold={self.threshold} must be > 0 or None (grey-level recurrence).")
        if self.timeframe is not None:
            from effnet_trading.imaging.data import parse_timeframe

            try:
                parse_timeframe(self.timeframe)
            except Exception as exc:
                raise SpecError(f"ImageSpec timeframe {self.timeframe!r}: {exc}") from exc

    @property
    def channels(self) -> int:
        """Number of image channels this spec renders."""
        if self.kind == "candles":
            return 3 if self.color == "rgb" else 1
        if self.kind == "ohlc_bars":
            return 1
        if self.kind == "lob_heatmap":
            return 2
        return len(self.fields)

    @property
    def history(self) -> int:
        """Bars (or order-book snapshots) one image reads, ending at the decision bar."""
        extra = self.ma - 1 if self.kind in ("candles", "ohlc_bars") and self.ma > 0 else 0
        if self.returns and self.kind in ("gasf", "gadf", "recurrence"):
            extra += 1
        return self.window + extra

    @property
    def specs(self) -> tuple[ImageSpec, ...]:
        return (self,)

    def replace(self, **changes: Any) -> ImageSpec:
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["size"] = list(self.size)
        d["fields"] = list(self.fields)
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)


@dataclass(frozen=True)
class StackSpec:
    """Several ImageSpecs concatenated along channels (same (H, W)), e.g. candles+GASF+GADF
    or one kind on several timeframes."""

    specs: tuple[ImageSpec, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        specs = tuple(self.specs)
        object.__setattr__(self, "specs", specs)
        if not specs:
            raise SpecError("StackSpec needs at least one ImageSpec.")
        if not all(isinstance(s, ImageSpec) for s in specs):
            raise SpecError(
                "StackSpec members must be ImageSpec (nested stacks are flattened by passing their .specs)."
            )
        sizes = {s.size for s in specs}
        if len(sizes) != 1:
            raise SpecError(
                f"StackSpec members must share one (H, W) size, got {sorted(sizes)}; set the same size on each."
            )

    kind = "stack"

    @property
    def size(self) -> tuple[int, int]:
        return self.specs[0].size

    @property
    def channels(self) -> int:
        return sum(s.channels for s in self.specs)

    @property
    def window(self) -> int:
        """Largest member window, in each member's own bars."""
        return max(s.window for s in self.specs)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "stack", "specs": [s.to_dict() for s in self.specs]}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)


AnySpec = Union[ImageSpec, StackSpec]


def spec_from_dict(d: dict[str, Any]) -> AnySpec:
    """Inverse of ``to_dict`` for both ImageSpec and StackSpec."""
    if not isinstance(d, dict) or "kind" not in d:
        raise SpecError(f"spec dict must have a 'kind' key, got {d!r}.")
    if d["kind"] == "stack":
        # A nested stack is refused by StackSpec.__post_init__ (members must be ImageSpec).
        return StackSpec(tuple(cast(ImageSpec, spec_from_dict(s)) for s in d["specs"]))
    known = {f.name for f in fields(ImageSpec)}
    unknown = set(d) - known
    if unknown:
        raise SpecError(f"unknown ImageSpec option(s) {sorted(unknown)}; known: {sorted(known)}.")
    kw = dict(d)
    if "size" in kw:
        kw["size"] = tuple(kw["size"])
    if "fields" in kw:
        kw["fields"] = tuple(kw["fields"])
    return ImageSpec(**kw)


def spec_from_json(text: str) -> AnySpec:
    return spec_from_dict(json.loads(text))


_FIELD_KINDS = ("gasf", "gadf", "recurrence")


def spec_from_options(
    kind: str,
    *,
    window: int,
    size,
    returns: bool = False,
    fields=None,
    color: str | None = None,
    ma: int | None = None,
    volume: bool | None = None,
    timeframe: str | None = None,
) -> AnySpec:
    """The spec that command-line options describe (the one builder every command uses).

    kind: an ImageSpec kind, or ``"stack"`` = grey candles + GASF + GADF (3 channels). size: N,
    ``"N"``, ``"HxW"`` or (H, W). fields: ``"close,volume"`` or a sequence (field kinds).
    ``returns`` applies to the field kinds only; options left None keep ImageSpec's defaults.
    """
    if isinstance(size, str):
        h, _, w = size.lower().partition("x")
        try:
            size = (int(h), int(w or h))
        except ValueError as exc:
            raise SpecError(f"size {size!r} is not N or HxW pixels, e.g. 64 or 64x60.") from exc
    elif isinstance(size, int):
        size = (size, size)
    if kind == "stack":
        return StackSpec(
            (
                ImageSpec("candles", window=window, size=size, color="grey", timeframe=timeframe),
                ImageSpec("gasf", window=window, size=size, returns=returns, timeframe=timeframe),
                ImageSpec("gadf", window=window, size=size, returns=returns, timeframe=timeframe),
            )
        )
    if isinstance(fields, str):
        fields = tuple(f.strip() for f in fields.split(",") if f.strip())
    options: dict[str, Any] = {
        "fields": fields or None,
        "color": color,
        "ma": ma,
        "volume": volume,
        "timeframe": timeframe,
        "returns": returns if kind in _FIELD_KINDS else None,
    }
    return ImageSpec(kind, window=window, size=size, **{k: v for k, v in options.items() if v is not None})
