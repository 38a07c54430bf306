"""Framework-agnostic signal engine: SignalModel, Policy, TimeframeEnsemble, Risk, Monitor.

Never imports backtrader, vectorbt or pybit.
"""
