"""Binance spot: signed REST order entry (http.py), the user-data stream (user_stream.py), the venue (execution.py)."""
