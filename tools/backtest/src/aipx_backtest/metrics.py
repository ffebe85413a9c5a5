"""Performance metrics of an equity curve and a trade list, exact (Decimal) and documented.

Definitions (equity E_0..E_n sampled every `period_ns`, at candle closes of the first interval; trades are
closed round trips with PnL after fees):

- total_return = E_n / E_0 - 1
- cagr = (E_n / E_0) ^ (1 / years) - 1, years = (t_n - t_0) / 365.25 days (crypto trades every day);
  None for a span under one day (an annualised figure of hours says nothing) or a wiped-out account
- period returns r_i = E_i / E_{i-1} - 1; periods_per_year = 365.25 days / period
- sharpe = mean(r) / stdev(r) x sqrt(periods_per_year), stdev the sample deviation (n - 1), risk-free rate 0
- sortino = mean(r) / downside x sqrt(periods_per_year), downside = sqrt(sum(min(r, 0)^2) / n)
- max_drawdown = max over i of (peak_i - E_i) / peak_i, peak_i = max(E_0..E_i) (a fraction, 0.25 = 25 %)
- max_drawdown_duration_s = the longest time the equity spent below a previous peak (to the end if it never
  recovered), in seconds
- win_rate = winning trades / trades (PnL > 0 wins; 0 is not a win)
- profit_factor = gross profit / gross loss (None when there is no losing trade)
- expectancy = mean PnL per trade (money); avg_win / avg_loss = mean PnL of winners / losers (avg_loss <= 0)
- exposure = fraction of equity samples with a position open
- trades = number of closed round trips

Arithmetic runs in a 34-digit decimal context; every reported value is rounded half-even to 8 decimal places
(money and ratios alike). None (JSON null) where a value is undefined (no trades, no variance, ...).
"""

from __future__ import annotations

import decimal
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal

ZERO = Decimal(0)
ONE = Decimal(1)
NS_PER_S = 1_000_000_000
YEAR_NS = 36_525 * 864 * NS_PER_S  # 365.25 days
DAY_NS = 86_400 * NS_PER_S
PLACES = Decimal("1e-8")
_CONTEXT = decimal.Context(prec=34, rounding=ROUND_HALF_EVEN)


@dataclass(frozen=True, slots=True)
class Metrics:
    total_return: Decimal | None
    cagr: Decimal | None
    sharpe: Decimal | None
    sortino: Decimal | None
    max_drawdown: Decimal | None
    max_drawdown_duration_s: int
    win_rate: Decimal | None
    profit_factor: Decimal | None
    expectancy: Decimal | None
    avg_win: Decimal | None
    avg_loss: Decimal | None
    exposure: Decimal | None
    trades: int
    final_equity: Decimal | None
    net_pnl: Decimal | None


def _q(value: Decimal | None) -> Decimal | None:
    if value is None:
        return None
    # Wide enough for every integer digit plus the 8 places (an annualised figure of a few days can be huge).
    context = decimal.Context(prec=max(34, value.adjusted() + 10), rounding=ROUND_HALF_EVEN)
    rounded = value.quantize(PLACES, context=context)
    return rounded.normalize(context=context) if rounded else ZERO


def compute(
    times: Sequence[int],
    equity: Sequence[Decimal],
    pnls: Sequence[Decimal],
    exposed: Sequence[bool],
    *,
    period_ns: int,
) -> Metrics:
    """The metrics of one equity curve (with its sample times) and the PnLs of its closed trades."""
    with decimal.localcontext(_CONTEXT):
        return _compute(times, equity, pnls, exposed, period_ns)


def _compute(
    times: Sequence[int],
    equity: Sequence[Decimal],
    pnls: Sequence[Decimal],
    exposed: Sequence[bool],
    period_ns: int,
) -> Metrics:
    if len(times) != len(equity):
        raise ValueError("times and equity must have the same length")
    total = cagr = sharpe = sortino = max_dd = None
    duration_ns = 0
    first = equity[0] if equity else None
    last = equity[-1] if equity else None
    if first is not None and last is not None and first > 0:
        total = last / first - ONE
        span = times[-1] - times[0]
        if span >= DAY_NS and last > 0:
            cagr = (last / first) ** (Decimal(YEAR_NS) / Decimal(span)) - ONE
        returns = [b / a - ONE for a, b in itertools.pairwise(equity) if a != 0]
        periods = Decimal(YEAR_NS) / Decimal(period_ns)
        if len(returns) >= 2:
            n = Decimal(len(returns))
            mean = sum(returns, ZERO) / n
            variance = sum(((r - mean) ** 2 for r in returns), ZERO) / (n - 1)
            if variance > 0:
                sharpe = mean / variance.sqrt() * periods.sqrt()
            downside = sum((min(r, ZERO) ** 2 for r in returns), ZERO) / n
            if downside > 0:
                sortino = mean / downside.sqrt() * periods.sqrt()
        peak = equity[0]
        peak_time = times[0]
        max_dd = ZERO
        under_since: int | None = None
        for t, value in zip(times, equity, strict=True):
            if value >= peak:
                if under_since is not None:
                    duration_ns = max(duration_ns, t - under_since)
                    under_since = None
                peak, peak_time = value, t
            else:
                if under_since is None:
                    under_since = peak_time
                if peak > 0:
                    max_dd = max(max_dd, (peak - value) / peak)
        if under_since is not None:
            duration_ns = max(duration_ns, times[-1] - under_since)
    wins = [p for p in pnls if p > 0]
    losses = [p for p in pnls if p < 0]
    count = len(pnls)
    gross_loss = -sum(losses, ZERO)
    return Metrics(
        total_return=_q(total),
        cagr=_q(cagr),
        sharpe=_q(sharpe),
        sortino=_q(sortino),
        max_drawdown=_q(max_dd),
        max_drawdown_duration_s=duration_ns // NS_PER_S,
        win_rate=_q(Decimal(len(wins)) / Decimal(count)) if count else None,
        profit_factor=_q(sum(wins, ZERO) / gross_loss) if gross_loss > 0 else None,
        expectancy=_q(sum(pnls, ZERO) / Decimal(count)) if count else None,
        avg_win=_q(sum(wins, ZERO) / Decimal(len(wins))) if wins else None,
        avg_loss=_q(sum(losses, ZERO) / Decimal(len(losses))) if losses else None,
        exposure=_q(Decimal(sum(exposed)) / Decimal(len(exposed))) if exposed else None,
        trades=count,
        final_equity=_q(last),
        net_pnl=_q(last - first) if first is not None and last is not None else None,
    )
