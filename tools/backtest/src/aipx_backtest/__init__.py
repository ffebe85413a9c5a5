"""AIPX backtester: replay market data through the production strategy, ensemble, risk and fill-model code.

from aipx_backtest import BacktestConfig, demo_dataset, run_backtest
result = run_backtest(demo_dataset(), BacktestConfig(strategies=("ema_cross",)))
result.metrics["combined"].sharpe
"""

from aipx_backtest.config import BacktestConfig, RiskConfig
from aipx_backtest.data import DataError, Dataset, demo_dataset, load_csv, load_jsonl, load_lake
from aipx_backtest.result import BacktestResult, run_backtest

__all__ = [
    "BacktestConfig",
    "BacktestResult",
    "DataError",
    "Dataset",
    "RiskConfig",
    "demo_dataset",
    "load_csv",
    "load_jsonl",
    "load_lake",
    "run_backtest",
]
