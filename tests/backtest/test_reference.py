"""The reference check: EMA cross and Bollinger through AIPX's backtest (the production strategy engine on
candles built from the klines, the OMS risk check, the shared fill model) and through backtesting.py, an
established library, with the same bars and the same entry/exit rules (indicators from TA-Lib), give the same
trade list and the same returns within fee rounding."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd  # type: ignore[import-untyped]
import pytest
import talib
from aipx_backtest import BacktestConfig, load_csv, run_backtest
from backtesting import Backtest, Strategy
from talib._ta_lib import MA_Type

from tests.backtest.bars import klines, write_csv

pytestmark = pytest.mark.filterwarnings(
    "ignore:Some trades remain open", "ignore:DatetimeIndex.dayofweek is deprecated"
)
SYMBOL = "TEST-USDT"
FEE = Decimal("0.001")


def crossed_above(a: Any, b: Any) -> bool:
    """a crossed above b on the last bar (at or below it on the bar before) - the same rule as AIPX's."""
    return bool(a[-2] <= b[-2] and a[-1] > b[-1])


class _Reverse(Strategy):  # type: ignore[misc]
    """Stop and reverse with one unit: LONG -> long 1, SHORT -> short 1 (closing the other side first)."""

    def go(self, long: bool) -> None:
        if long and not self.position.is_long:
            self.position.close()
            self.buy(size=1)
        elif not long and not self.position.is_short:
            self.position.close()
            self.sell(size=1)


class EmaCrossReference(_Reverse):
    fast = 9
    slow = 21

    def init(self) -> None:
        close = np.asarray(self.data.Close, dtype=float)
        self.f = self.I(talib.EMA, close, self.fast)
        self.s = self.I(talib.EMA, close, self.slow)

    def next(self) -> None:
        f, s = self.f, self.s
        if len(f) < 2 or np.isnan(f[-2]) or np.isnan(s[-2]):
            return
        if crossed_above(f, s):
            self.go(True)
        elif crossed_above(s, f):
            self.go(False)


class BollingerReference(_Reverse):
    period = 20
    k = 2.0

    def init(self) -> None:
        close = np.asarray(self.data.Close, dtype=float)
        upper, middle, lower = talib.BBANDS(close, self.period, self.k, self.k, MA_Type.SMA)
        self.upper = self.I(lambda: upper)
        self.middle = self.I(lambda: middle)
        self.lower = self.I(lambda: lower)

    def next(self) -> None:
        c, lo, mid, up = self.data.Close, self.lower, self.middle, self.upper
        if len(c) < 2 or np.isnan(lo[-2]):
            return
        if c[-2] < lo[-2] and lo[-1] < c[-1] < mid[-1]:
            self.go(True)
        elif c[-2] > up[-2] and mid[-1] < c[-1] < up[-1]:
            self.go(False)


def reference_trades(strategy: type[Strategy]) -> pd.DataFrame:
    bars = klines()
    frame = pd.DataFrame(
        {
            "Open": [float(b[1]) for b in bars],
            "High": [float(b[2]) for b in bars],
            "Low": [float(b[3]) for b in bars],
            "Close": [float(b[4]) for b in bars],
            "Volume": [float(b[5]) for b in bars],
        },
        index=pd.to_datetime([b[0] for b in bars], unit="s", utc=True),
    )
    bt = Backtest(frame, strategy, cash=1_000_000, commission=float(FEE), finalize_trades=False)
    stats = bt.run()
    trades: pd.DataFrame = stats["_trades"]
    return trades


@pytest.mark.parametrize(
    ("strategy_id", "reference"),
    [("ema_cross", EmaCrossReference), ("bollinger", BollingerReference)],
)
def test_same_trades_and_returns_as_backtesting_py(
    tmp_path: Path, strategy_id: str, reference: Callable[[], Any]
) -> None:
    data = load_csv(write_csv(tmp_path / "bars.csv", klines()), symbol=SYMBOL)
    config = BacktestConfig(
        strategies=(strategy_id,),
        quantities={SYMBOL: Decimal(1)},
        maker_fee_rate=FEE,
        taker_fee_rate=FEE,
        balance=Decimal(1_000_000),
    )
    ours = run_backtest(data, config).trades
    theirs = reference_trades(reference)  # type: ignore[arg-type]
    assert len(theirs) >= 8, "the bars should make the strategy trade several times"
    assert len(ours) == len(theirs)
    for mine, row in zip(ours, theirs.itertuples(), strict=True):
        assert mine.direction == ("LONG" if row.Size > 0 else "SHORT")
        assert mine.quantity == abs(row.Size)
        assert mine.entry_time_ns == int(row.EntryTime.value)
        assert mine.exit_time_ns == int(row.ExitTime.value)
        assert float(mine.entry_price) == pytest.approx(row.EntryPrice, abs=1e-9)
        assert float(mine.exit_price) == pytest.approx(row.ExitPrice, abs=1e-9)
        # PnL after fees on both legs: equal up to float rounding of the library's commission.
        assert float(mine.pnl) == pytest.approx(row.PnL, abs=1e-6)
        assert float(mine.return_pct) / 100 == pytest.approx(row.ReturnPct, abs=1e-8)
    total_ours = sum(t.pnl for t in ours)
    assert float(total_ours) == pytest.approx(float(theirs["PnL"].sum()), abs=1e-5)
