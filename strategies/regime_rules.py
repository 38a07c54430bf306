"""Market regime rule labels: causal, torch-free definitions per bar (the signal engine's own layer,
so ``RegimeGate`` users, ``evaluation`` and ``applications.regimes`` share one definition).

**Regime definitions** (``RegimeRules``; every feature at bar t uses bars ``t-window+1 .. t`` and a
trailing baseline, never a later bar). With ``r`` the log returns of the close:

- ``vol``  = standard deviation of ``r`` over the window; ``vol_base`` = its rolling median over
  the last ``base`` bars. ``vratio`` = mean volume over the window / rolling median volume over
  ``base`` bars. ``er`` (Kaufman's efficiency ratio) = ``|log(c_t / c_{t-window})| / sum |r|``.
- ``high_vol``       if ``vol > vol_mult * vol_base``                         (checked first)
- ``low_liquidity``  if ``vratio < liq_mult`` (or, with order books, the ``liquidity`` flags of
  ``applications.orderbook.liquidity_flags``: spread wide or depth thin against their own trailing median)
- ``trend_up`` / ``trend_down`` if ``er >= er_min``, by the sign of the window's return
- ``ranging``        otherwise.

Warm-up bars (the first ``2 * window - 1``: a full window of returns, then ``window`` values of
``vol`` for its baseline) get label -1. ``ahead`` shifts the label so that
bar t is labelled with the regime of bar ``t + ahead``: a *training target* only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from effnet_trading.errors import DataError, SpecError
from effnet_trading.imaging import validate_ohlcv

__all__ = ["REGIMES", "TRENDING", "RegimeRules", "regime_features", "regime_labels"]

REGIMES = ("trend_up", "trend_down", "ranging", "high_vol", "low_liquidity")
TRENDING = ("trend_up", "trend_down")


@dataclass(frozen=True)
class RegimeRules:
    """Thresholds of the regime definitions (module docstring); JSON round-trip via ``asdict``."""

    window: int = 48
    base: int = 960
    vol_mult: float = 2.0
    liq_mult: float = 0.3
    er_min: float = 0.3

    def __post_init__(self) -> None:
        if self.window < 2 or self.base < self.window:
            raise SpecError(f"RegimeRules window={self.window} must be >= 2 and base={self.base} >= window.")
        if self.vol_mult <= 0 or self.liq_mult <= 0 or not 0 < self.er_min <= 1:
            raise SpecError(
                f"RegimeRules vol_mult={self.vol_mult}, liq_mult={self.liq_mult} must be > 0 and er_min={self.er_min} "
                "in (0, 1]."
            )


def regime_features(ohlcv, rules: RegimeRules = RegimeRules()) -> pd.DataFrame:
    """Causal features per bar: ``vol, vol_base, vratio, er, ret`` (NaN in warm-up)."""
    frame = validate_ohlcv(ohlcv)
    w = rules.window
    logc = np.log(frame["close"].astype(np.float64))
    r = logc.diff()
    vol = r.rolling(w, min_periods=w).std(ddof=0)
    vol_base = vol.rolling(rules.base, min_periods=w).median()
    volume = frame["volume"].astype(np.float64)
    vbase = volume.rolling(rules.base, min_periods=w).median()
    vratio = volume.rolling(w, min_periods=w).mean() / vbase.where(vbase > 0)
    ret = logc - logc.shift(w)
    path = r.abs().rolling(w, min_periods=w).sum()
    er = (ret.abs() / path.where(path > 0)).fillna(0.0).where(ret.notna())
    return pd.DataFrame({"vol": vol, "vol_base": vol_base, "vratio": vratio, "er": er, "ret": ret})


def regime_labels(
    ohlcv, rules: RegimeRules = RegimeRules(), *, liquidity: pd.Series | None = None, ahead: int = 0
) -> pd.Series:
    """Regime code per bar (index into ``REGIMES``; -1 = warm-up), by the module's definitions.

    liquidity: optional boolean Series (True = illiquid), e.g. ``liquidity_flags(book)["illiquid"]`` from
    order-book snapshots; each bar takes the last flag at or before its timestamp (never a later one);
    replaces the volume rule. Refused when it covers less than half of the bars. ahead: label bar t with bar t+ahead's regime (training targets only).
    """
    f = regime_features(ohlcv, rules)
    ready = f[["vol", "vol_base", "er", "ret"]].notna().all(axis=1).to_numpy()
    if liquidity is not None:
        flags = liquidity.sort_index().astype(float).reindex(f.index, method="ffill")
        if flags.notna().mean() < 0.5:
            raise DataError(
                f"liquidity flags cover {flags.notna().mean():.0%} of the bars ({liquidity.index.min()} .. "
                f"{liquidity.index.max()} vs bars {f.index[0]} .. {f.index[-1]}); pass flags over the same span "
                "(or leave liquidity=None for the volume rule)."
            )
        illiquid = flags.fillna(0.0).to_numpy() > 0.5
    else:
        illiquid = (f["vratio"] < rules.liq_mult).to_numpy()  # NaN (no volume at all) compares False
    high_vol = (f["vol"] > rules.vol_mult * f["vol_base"]).to_numpy()
    trend = (f["er"] >= rules.er_min).to_numpy()
    up = (f["ret"] > 0).to_numpy()
    code = np.select(
        [high_vol, illiquid, trend & up, trend & ~up],
        [REGIMES.index("high_vol"), REGIMES.index("low_liquidity"), REGIMES.index("trend_up"), 1],
        default=REGIMES.index("ranging"),
    )
    code = np.where(ready, code, -1)
    if ahead:
        if ahead < 0:
            raise SpecError(f"ahead={ahead} must be >= 0 (bars into the future, for training targets only).")
        code = np.r_[code[ahead:], np.full(ahead, -1)]
    return pd.Series(code.astype(np.int64), index=f.index, name="regime")
