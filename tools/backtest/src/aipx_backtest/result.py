"""The result of a backtest: trades, curves, metrics per strategy and combined, and its JSON form."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from aipx.v1.market_data_pb2 import MarketDataEnvelope
from aipx_strategy.domain.candles import Interval

from aipx_backtest.config import BacktestConfig
from aipx_backtest.data import Dataset, iso
from aipx_backtest.engine import Backtester, FillRecord, RunOutput, Trade
from aipx_backtest.metrics import Metrics, compute

COMBINED = "combined"


@dataclass(frozen=True, slots=True)
class Curve:
    """Equity and drawdown (a fraction of the running peak) at each sample time."""

    times: list[int]
    equity: list[Decimal]
    drawdown: list[Decimal]


@dataclass(frozen=True, slots=True)
class BacktestResult:
    config: BacktestConfig
    symbols: list[str]
    start_ns: int
    end_ns: int
    trades_replayed: int
    signals: dict[str, int]
    approved: dict[str, int]
    denied: dict[str, int]
    metrics: dict[str, Metrics]  # per strategy and "combined"
    curves: dict[str, Curve]
    trades: list[Trade]
    fills: list[FillRecord]
    prices: dict[str, list[tuple[int, Decimal]]]  # closes per symbol (for the chart)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able, with exact decimal strings and ISO times beside the ns."""
        return {
            "config": self.config.model_dump(mode="json"),
            "symbols": self.symbols,
            "start": iso(self.start_ns),
            "end": iso(self.end_ns),
            "trades_replayed": self.trades_replayed,
            "signals": self.signals,
            "approved": self.approved,
            "denied": self.denied,
            "metrics": {name: dataclasses.asdict(m) for name, m in self.metrics.items()},
            "trades": [
                {
                    **dataclasses.asdict(t),
                    "entry_time": iso(t.entry_time_ns),
                    "exit_time": iso(t.exit_time_ns),
                }
                for t in self.trades
            ],
            "curves": {
                name: {"times": c.times, "equity": c.equity, "drawdown": c.drawdown}
                for name, c in self.curves.items()
            },
        }

    def to_json(self) -> bytes:
        """Deterministic JSON: sorted keys, Decimals as exact strings, no wall-clock time anywhere."""
        return (
            json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), default=_default) + "\n"
        ).encode()


def _default(value: object) -> object:
    if isinstance(value, Decimal):
        return format(value, "f")  # positional: '10000', never '1E+4'
    raise TypeError(f"{type(value).__name__} is not JSON-serializable")


def _drawdown(equity: list[Decimal]) -> list[Decimal]:
    peak = Decimal(0)
    out = []
    for value in equity:
        peak = max(peak, value)
        dd = (peak - value) / peak if peak > 0 else Decimal(0)
        out.append(dd.quantize(Decimal("1e-8")).normalize() if dd else Decimal(0))
    return out


def summarize(output: RunOutput) -> BacktestResult:
    """Metrics and curves from a replay's output."""
    period = Interval.parse(output.config.intervals[0]).ns
    metrics: dict[str, Metrics] = {}
    curves: dict[str, Curve] = {}
    trades: list[Trade] = []
    fills: list[FillRecord] = []
    times = output.times
    combined = [Decimal(0)] * len(times)
    combined_exposed = [False] * len(times)
    for sid, account in output.accounts.items():
        pnls = [t.pnl for t in account.trades]
        metrics[sid] = compute(times, account.equity, pnls, account.exposed, period_ns=period)
        curves[sid] = Curve(times, account.equity, _drawdown(account.equity))
        combined = [a + b for a, b in zip(combined, account.equity, strict=True)]
        combined_exposed = [a or b for a, b in zip(combined_exposed, account.exposed, strict=True)]
        trades.extend(account.trades)
        fills.extend(account.fills)
    trades.sort(key=lambda t: (t.exit_time_ns, t.strategy, t.symbol))
    fills.sort(key=lambda f: (f.time_ns, f.strategy, f.symbol))
    metrics[COMBINED] = compute(times, combined, [t.pnl for t in trades], combined_exposed, period_ns=period)
    curves[COMBINED] = Curve(times, combined, _drawdown(combined))
    return BacktestResult(
        output.config, output.symbols, output.start_ns, output.end_ns, output.trades_replayed, output.signals,
        output.approved, output.denied, metrics, curves, trades, fills, output.prices,
    )  # fmt: skip


def run_backtest(
    data: Dataset | Iterable[MarketDataEnvelope],
    config: BacktestConfig | None = None,
    *,
    on_progress: Callable[[int], None] | None = None,
) -> BacktestResult:
    """Replay `data` (a Dataset, or a time-ordered stream of envelopes) under `config` (defaults: every
    registered strategy, 1m candles) and return the result."""
    return summarize(Backtester(config or BacktestConfig(), on_progress=on_progress).run(data))
