"""Adapters to the outside world: backtrader, vectorbt, Bybit and the CLI. Each is thin and
imports its host framework only when used."""
