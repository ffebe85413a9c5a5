"""The ExecutionVenue interface and the execution reports a venue sends back.

A venue receives orders the OMS has already committed (ACCEPTED) and reports what happens to them through
the `on_report` callback: acknowledgements, fills, cancels, expiries, rejections. A new venue implements
this Protocol in its own module and is registered in `venues.registry` (`venues/_template.py` shows how).

Failure contract: the OMS order id is the venue's client order id, so sending an order twice can never make
two live orders. A venue reports REJECTED only when the venue itself refused the order. When a call's outcome
is unknown (timeout, connection error, HTTP 5xx) it raises `VenueUnavailableError`; the OMS then asks the
venue (`query`) with backoff until it answers. While a request the venue has not seen may still reach it
(Binance: until its timestamp + recvWindow), "unknown order" is no answer: `query` raises
`NotYetKnownError` and is asked again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Protocol, runtime_checkable

from aipx_oms.domain.model import Liquidity, Order, RejectReason
from aipx_oms.settings import OmsSettings
from aipx_oms.venues.market_data import MarketDataCache


class VenueUnavailableError(ConnectionError):
    """The venue did not answer (timeout, connection error, 5xx): the outcome of the call is unknown."""


class NotYetKnownError(VenueUnavailableError):
    """The venue does not know the order yet, but a request sent for it may still reach it: ask again."""


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
    # FILL from a venue that counts executions per order: the order's filled quantity and quote value after
    # this execution. The OMS applies only what it has not stored yet (cumulative - filled): a fill seen both
    # on the stream and by a query is stored once, whichever comes first.
    cumulative_quantity: Decimal | None = None
    cumulative_quote: Decimal | None = None


@dataclass(frozen=True, slots=True)
class BalanceSnapshot:
    """A venue account's balances: per asset total = free + locked. `complete`: every asset of the account
    (an account query; an asset not listed holds 0), else only the assets that changed (a stream update)."""

    venue: str
    totals: Mapping[str, Decimal]
    complete: bool
    source: str
    # The venue's time of the last account change the snapshot reflects (epoch ns; None: unknown). Compared
    # with the fills' venue times: a snapshot is reconciled only once the fills it may reflect are received,
    # and not when a fill received since is newer than it (see usecases/balances.py).
    as_of_ns: int | None = None


BalanceHandler = Callable[[BalanceSnapshot], None]


@runtime_checkable
class BalanceSource(Protocol):
    """Optional for a venue: it reports its account's balances, which the OMS reconciles its ledger with
    (usecases/balances.py). Called before `start`; the venue sends a complete snapshot at start, then every
    `every_s` seconds and on each change its stream tells of."""

    def follow_balances(self, handler: BalanceHandler, every_s: float) -> None: ...


# An order's (maker, taker) fee rates as the OMS knows them (instrument, account override), or None when
# neither sets any (the venue charges its own).
FeeRates = Callable[[Order], tuple[Decimal, Decimal] | None]


@runtime_checkable
class FeeCharging(Protocol):
    """Optional for a simulated venue: it charges the OMS's fee rates (called before `start`)."""

    def charge_fees_with(self, rates: FeeRates) -> None: ...


ReportHandler = Callable[[ExecutionReport], None]
# Awaited by a venue before it reads more from its stream: returns once the OMS has room for more reports.
RoomWaiter = Callable[[], Awaitable[None]]


async def always_room() -> None:
    """The RoomWaiter of a venue started without backpressure (tests, tools)."""


class ExecutionVenue(Protocol):
    """What the OMS needs from a venue."""

    name: str
    # Compare open orders with the venue periodically while running (a remote venue can change without
    # telling us: missed stream events); an in-process venue's book is the truth, compared at startup only.
    reconcile_while_running: bool

    async def start(self, on_report: ReportHandler, room: RoomWaiter = always_room) -> None:
        """Connect and start delivering reports (awaiting `room()` before reading more of a stream)."""

    async def stop(self) -> None: ...

    async def submit(self, order: Order) -> None:
        """Send a committed order; the outcome arrives as reports."""

    async def cancel(self, order: Order) -> None:
        """Ask the venue to cancel; CANCELED or CANCEL_REJECTED arrives as a report."""

    async def replace(self, order: Order) -> None:
        """The order's quantity/price were modified (already committed): apply them at the venue."""

    async def query(self, order: Order) -> bool:
        """Ask the venue about one order and report what the OMS missed (acknowledgement, fills, final state).

        False when the venue answers that it does not know the order; raises VenueUnavailableError when it
        does not answer.
        """

    async def reconcile(self, open_orders: Sequence[Order]) -> list[Order]:
        """Compare the OMS's open orders with the venue's and report the differences (at startup and
        periodically). Returns the orders the venue has never seen: the OMS sends them."""


@dataclass(frozen=True, slots=True)
class VenuePlugin:
    """How the OMS gets a venue: its name (AIPX_OMS_VENUES), a factory from the settings, and a check of the
    settings it needs (a message when they are missing or inconsistent, else None).

    Each venue module defines one `PLUGIN`; `venues.registry.VENUES` lists the production ones.
    """

    name: str
    build: Callable[[OmsSettings, MarketDataCache], ExecutionVenue]
    check: Callable[[OmsSettings], str | None] = lambda _settings: None
