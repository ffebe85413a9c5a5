"""Reference for a new execution venue: copy this module, fill in each part, add its PLUGIN to
venues/registry.py (the one place venues are registered). This template is NOT registered: it is a working
in-memory venue, tested by tests/oms/test_venue_template.py, that accepts every order and fills nothing.

Nothing else changes for a new venue: the OMS sends committed orders, resolves unknown outcomes, sweeps for
unsent orders and reconciles through this interface (see venues/base.py for the failure contract).
"""

from __future__ import annotations

from collections.abc import Sequence

from aipx_oms.domain.model import Order, RejectReason
from aipx_oms.settings import OmsSettings
from aipx_oms.venues.base import (
    ExecutionReport,
    ReportHandler,
    ReportKind,
    RoomWaiter,
    VenuePlugin,
    VenueUnavailableError,
    always_room,
)
from aipx_oms.venues.market_data import MarketDataCache


class TemplateVenue:
    """1. Declare the venue's name (the value of AIPX_OMS_VENUES and of an order's `venue`)."""

    name = "template"
    reconcile_while_running = True  # a remote venue: compared periodically (False for an in-process one)

    def __init__(self) -> None:
        self.orders: dict[str, Order] = {}  # the venue's book, by client order id (= the OMS order id)
        self.reachable = True  # a test switch: False = every call's outcome is unknown
        self._on_report: ReportHandler | None = None
        self._room: RoomWaiter = always_room

    # 2. Connect; keep the report callback (and await room() before reading more from a stream).
    async def start(self, on_report: ReportHandler, room: RoomWaiter = always_room) -> None:
        self._on_report, self._room = on_report, room

    async def stop(self) -> None:
        """Close connections and tasks."""

    def _report(self, report: ExecutionReport) -> None:
        if self._on_report is not None:
            self._on_report(report)

    def _call(self) -> None:
        # 3. A call without an answer (timeout, connection error, 5xx) raises VenueUnavailableError: the OMS
        #    then asks `query` until the venue answers. Report REJECTED only when the venue refuses.
        if not self.reachable:
            raise VenueUnavailableError("template venue unreachable")

    # 4. Send with the OMS order id as the venue's client order id: a repeat must not make a second order.
    async def submit(self, order: Order) -> None:
        self._call()
        if order.order_id not in self.orders:
            self.orders[order.order_id] = order
        self._acknowledge(order)

    def _acknowledge(self, order: Order) -> None:
        self._report(
            ExecutionReport(ReportKind.ACKNOWLEDGED, order.order_id, self.name, venue_order_id=order.order_id)
        )

    async def cancel(self, order: Order) -> None:
        self._call()
        if self.orders.pop(order.order_id, None) is None:
            self._report(
                ExecutionReport(
                    ReportKind.CANCEL_REJECTED, order.order_id, self.name, reason=RejectReason.ORDER_NOT_OPEN
                )
            )
            return
        self._report(ExecutionReport(ReportKind.CANCELED, order.order_id, self.name))

    async def replace(self, order: Order) -> None:
        self._call()
        if order.order_id in self.orders:
            self.orders[order.order_id] = order

    # 5. Answer "do you have this order?" by the client order id, reporting what the OMS missed.
    async def query(self, order: Order) -> bool:
        self._call()
        if order.order_id not in self.orders:
            return False
        if not order.venue_order_id:
            self._report(
                ExecutionReport(
                    ReportKind.ACKNOWLEDGED, order.order_id, self.name, venue_order_id=order.order_id
                )
            )
        return True

    # 6. Compare the OMS's open orders with the venue's; return the ones the venue never got.
    async def reconcile(self, open_orders: Sequence[Order]) -> list[Order]:
        self._call()
        return [order for order in open_orders if not await self.query(order)]


# 7. The plug-in: how to build the venue from the settings, and what it needs from them.
def _check(settings: OmsSettings) -> str | None:
    return None  # e.g. "venue template needs AIPX_OMS_TEMPLATE_API_KEY"


def _build(settings: OmsSettings, market: MarketDataCache) -> TemplateVenue:
    return TemplateVenue()


PLUGIN = VenuePlugin(TemplateVenue.name, _build, _check)
