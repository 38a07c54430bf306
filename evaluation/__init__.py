"""Honest evaluation: walk-forward ``evaluate``, baselines, surrogate nulls, statistics and reports.

Trains models (torch) where a run needs it; import the submodules by their full names
(``effnet_trading.evaluation.evaluate``). Importing this package imports no torch.
"""
