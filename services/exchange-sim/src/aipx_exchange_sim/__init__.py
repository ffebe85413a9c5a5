"""AIPX exchange simulator: Binance and Bybit v5 public market-data feeds with fault injection."""
