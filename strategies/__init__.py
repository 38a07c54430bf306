"""Framework-agnostic signal engine: the Scorer protocol, SignalModel, Policy, execution, performance, TimeframeEnsemble, Risk, Monitor.

Never imports backtrader, vectorbt or pybit.
"""

from effnet_trading.strategies.ensemble import TimeframeEnsemble, combine_probabilities
from effnet_trading.strategies.execution import Fill, SimResult, align_target, simulate
from effnet_trading.strategies.monitor import PSI_ALARM, Monitor, psi
from effnet_trading.strategies.performance import (
    YEAR,
    bars_per_year,
    buy_and_hold,
    drawdown,
    performance_summary,
    periods_per_year,
)
from effnet_trading.strategies.policy import Policy, class_directions
from effnet_trading.strategies.regime_gate import TREND_ONLY, RegimeGate, regime_weights
from effnet_trading.strategies.risk import Risk
from effnet_trading.strategies.scorer import PrecomputedScores, Scorer, as_scorer, is_scorer
from effnet_trading.strategies.signal import SignalModel, canonical_ohlcv, parse_bar
from effnet_trading.strategies.sizing import CappedKelly, FixedFraction, ProbabilityWeighted, Sizer, VolTarget

__all__ = [
    "Scorer",
    "as_scorer",
    "is_scorer",
    "PrecomputedScores",
    "SignalModel",
    "parse_bar",
    "canonical_ohlcv",
    "Policy",
    "class_directions",
    "RegimeGate",
    "regime_weights",
    "TREND_ONLY",
    "Fill",
    "SimResult",
    "simulate",
    "align_target",
    "bars_per_year",
    "periods_per_year",
    "drawdown",
    "performance_summary",
    "buy_and_hold",
    "YEAR",
    "TimeframeEnsemble",
    "combine_probabilities",
    "Risk",
    "Sizer",
    "FixedFraction",
    "ProbabilityWeighted",
    "CappedKelly",
    "VolTarget",
    "Monitor",
    "psi",
    "PSI_ALARM",
]
