"""Framework-agnostic signal engine: SignalModel, Policy, execution, performance, TimeframeEnsemble, Risk, Monitor.

Never imports backtrader, vectorbt or pybit.
"""
from effnet_trading.strategies.ensemble import TimeframeEnsemble, combine_probabilities
from effnet_trading.strategies.execution import SimResult, align_target, simulate
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
from effnet_trading.strategies.risk import Risk
from effnet_trading.strategies.signal import SignalModel, parse_bar

__all__ = [
    "SignalModel",
    "parse_bar",
    "Policy",
    "class_directions",
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
    "Monitor",
    "psi",
    "PSI_ALARM",
]
