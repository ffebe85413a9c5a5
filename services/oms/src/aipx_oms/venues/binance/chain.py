"""The Binance orders behind one OMS order. Pure: no I/O.

A ReplaceOrder is Binance's cancelReplace: it cancels the Binance order and places a new one (a new orderId)
for the rest, and Binance counts executions per Binance order (the stream's z/Z, executedQty and
cummulativeQuoteQty when queried, the trades of myTrades), so they restart from 0 on the new one. Each Binance
order of the chain has a base: the quantity and quote value the earlier ones executed in all (the canceled
order's final executedQty / cummulativeQuoteQty from cancelReplace's cancelResponse). base + Binance's figure
is the OMS order's cumulative figure, for the current Binance order and for a replaced one whose late fills
are still being reported.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from decimal import Decimal

from aipx_oms.venues.base import ExecutionReport

ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class Leg:
    """One Binance order of the chain; base_*: what the earlier Binance orders executed in all."""

    venue_order_id: str
    base_quantity: Decimal = ZERO
    base_quote: Decimal = ZERO


class Chain:
    """The Binance orders of one OMS order, oldest first; the last one is the current (working) one."""

    def __init__(self, first: Leg) -> None:
        self.legs = [first]

    @property
    def current(self) -> Leg:
        return self.legs[-1]

    def leg(self, venue_order_id: str) -> Leg | None:
        return next((leg for leg in self.legs if leg.venue_order_id == venue_order_id), None)

    def replaced(
        self, canceled: Leg, executed: Decimal, executed_quote: Decimal, new_venue_order_id: str
    ) -> Leg:
        """cancelReplace canceled `canceled` (its final executedQty and cummulativeQuoteQty) and placed
        `new_venue_order_id`, which becomes the current Binance order."""
        new = Leg(new_venue_order_id, canceled.base_quantity + executed, canceled.base_quote + executed_quote)
        self.legs.append(new)
        return new

    def earlier(self, leg: Leg) -> list[tuple[Leg, Decimal]]:
        """The Binance orders before `leg`, each with the OMS order's cumulative quantity at its end."""
        if leg not in self.legs:
            return []
        index = self.legs.index(leg)
        return [(self.legs[i], self.legs[i + 1].base_quantity) for i in range(index)]


def in_order_terms(report: ExecutionReport, leg: Leg) -> ExecutionReport:
    """A fill report of the Binance order `leg` with its cumulative figures made the OMS order's."""
    if report.cumulative_quantity is None:
        return report
    quote = report.cumulative_quote
    return dataclasses.replace(
        report,
        cumulative_quantity=leg.base_quantity + report.cumulative_quantity,
        cumulative_quote=None if quote is None else leg.base_quote + quote,
    )
