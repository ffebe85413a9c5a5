"""Each metric against values computed by hand (and by the statistics module) on small series."""

from __future__ import annotations

import math
import statistics
from decimal import Decimal

import pytest
from aipx_backtest.metrics import compute

DAY_NS = 86_400 * 1_000_000_000
D = Decimal


def test_every_metric_on_a_four_point_series() -> None:
    times = [i * DAY_NS for i in range(4)]
    equity = [D(100), D(110), D(99), D(121)]
    pnls = [D(5), D(-2), D(3), D(0)]
    m = compute(times, equity, pnls, [False, True, True, False], period_ns=DAY_NS)

    assert m.total_return == D("0.21")  # 121 / 100 - 1
    assert m.final_equity == D(121) and m.net_pnl == D(21)
    returns = [0.1, -0.1, 121 / 99 - 1]
    per_year = 365.25  # daily samples, crypto trades every day
    sharpe = statistics.mean(returns) / statistics.stdev(returns) * math.sqrt(per_year)
    assert float(m.sharpe) == pytest.approx(sharpe, abs=1e-7)  # type: ignore[arg-type]
    downside = math.sqrt((0.1**2) / 3)  # only the -10 % period is below zero; divided by all 3 periods
    sortino = statistics.mean(returns) / downside * math.sqrt(per_year)
    assert float(m.sortino) == pytest.approx(sortino, abs=1e-7)  # type: ignore[arg-type]
    cagr = 1.21 ** (365.25 / 3) - 1
    assert float(m.cagr) == pytest.approx(cagr, rel=1e-9)  # type: ignore[arg-type]
    assert m.max_drawdown == D("0.1")  # 110 -> 99
    assert m.max_drawdown_duration_s == 2 * 86_400  # below the 110 peak from day 1 until 121 on day 3
    assert m.win_rate == D("0.5")  # 5 and 3 win; -2 loses; 0 is not a win
    assert m.profit_factor == D(4)  # 8 / 2
    assert m.expectancy == D("1.5")  # 6 / 4
    assert m.avg_win == D(4) and m.avg_loss == D(-2)
    assert m.exposure == D("0.5")
    assert m.trades == 4


def test_an_unrecovered_drawdown_lasts_to_the_end_and_undefined_values_are_none() -> None:
    times = [i * 3600 * 1_000_000_000 for i in range(4)]
    m = compute(times, [D(100), D(120), D(90), D(100)], [], [False] * 4, period_ns=3600 * 1_000_000_000)
    assert m.max_drawdown == D("0.25")  # 120 -> 90
    assert m.max_drawdown_duration_s == 2 * 3600
    assert m.cagr is None, "no annualised figure for a span under a day"
    assert (m.win_rate, m.profit_factor, m.expectancy, m.avg_win, m.avg_loss) == (None,) * 5
    assert m.trades == 0


def test_rounding_is_half_even_at_eight_places() -> None:
    times = [0, DAY_NS]
    m = compute(times, [D(3), D(4)], [D(1), D(1), D(-1)], [True, True], period_ns=DAY_NS)
    assert m.total_return == D("0.33333333")
    assert m.win_rate == D("0.66666667")
    assert m.sharpe is None, "one period has no deviation"
