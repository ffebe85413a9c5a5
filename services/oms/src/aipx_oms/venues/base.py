"""The ExecutionVenue interface and the execution reports a venue sends back.

A venue receives orders the OMS has already committed (ACCEPTED) and reports what happens to them through
the `on_report` callback: acknowledgements, fills, cancels, expiries, rejections. A new venue implements
this Protocol in its own module and is registered in `venues.registry`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Protocol

from aipx_oms.domain.model import Liquidity, Order, RejectReason


class ReportKind(StrEnum):
    ACKNOWLEDGED = "ACKNOWLEDGED"  # the venue has the order (venue_order_id known)
    FILL = "FILL"
    CANCELED = "CANCELED"
    CANCEL_REJECTED = "CANCEL_REJECTED"
    EXPIRED = "EXPIRED"
    REJECTED = "REJECTED"


@dataclass(frozen=True, slots=True)
class ExecutionReport:
    """Something a venue says about one of our orders (order_id is the OMS's id)."""

    kind: ReportKind
    order_id: str
    venue: str
    venue_order_id: str = ""
    reason: RejectReason | None = None
    message: str = ""
    # FILL only
    quantity: Decimal | None = None
    price: Decimal | None = None
    fee: Decimal = Decimal(0)
    fee_currency: str = ""
    liquidity: Liquidity = Liquidity.TAKER
    venue_fill_id: str = ""
    time_ns: int = 0


ReportHandler = Callable[[ExecutionReport], None]


class ExecutionVenue(Protocol):
    """What the OMS needs from a venue."""

    name: str

    async def start(self, on_report: ReportHandler) -> None:
        """Connect and start delivering reports."""

    async def stop(self) -> None: ...

    async def submit(self, order: Order) -> None:
        """Send a committed order; the outcome arrives as reports."""

    async def cancel(self, order: Order) -> None:
        """Ask the venue to cancel; CANCELED or CANCEL_REJECTED arrives as a report."""

    async def replace(self, order: Order) -> None:
        """The order's quantity/price were modified (already committed): apply them at the venue."""

    async def reconcile(self, open_orders: Sequence[Order]) -> None:
        """At startup: compare the OMS's open orders with the venue's and report/repair the differences."""
