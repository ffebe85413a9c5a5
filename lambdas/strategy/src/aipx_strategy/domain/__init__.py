"""Strategy domain: candles from trades, indicators, the six strategies, the engine (no I/O)."""
