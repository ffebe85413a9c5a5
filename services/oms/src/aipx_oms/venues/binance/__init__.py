"""Binance spot: signed REST (http.py), the user-data stream (user_stream.py), the venue (execution.py)."""
