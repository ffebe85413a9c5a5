"""The fill model: per-symbol order books in price-time priority over a quote/trade stream (pure, no I/O).

One home for the matching rules the paper venue (`aipx_oms.venues.paper`) and the backtester
(`aipx_backtest`) both run. See `aipx.matching.book` for the rules.
"""

from aipx.matching.book import (
    Canceled,
    Event,
    Expired,
    FeeSchedule,
    Fill,
    Kind,
    Liquidity,
    MatchingEngine,
    RejectCode,
    Rejected,
    RestingOrder,
    Side,
    TimeInForce,
)

__all__ = [
    "Canceled",
    "Event",
    "Expired",
    "FeeSchedule",
    "Fill",
    "Kind",
    "Liquidity",
    "MatchingEngine",
    "RejectCode",
    "Rejected",
    "RestingOrder",
    "Side",
    "TimeInForce",
]
