"""OrderService: the OMS's use cases behind one object for the servicer and the server.

Each use case lives in its own module of `aipx_oms.usecases` (unit-tested without gRPC); this module only
composes them. Ordering guarantees:
- Risk checks and the reservation of a new order in the account book happen with no await in between, so
  concurrent submits of one account see each other.
- Every change of one order runs under that order's lock, through the group-commit writer, and is applied to
  memory only after its commit.
- An order goes to its venue only after it is committed (ACCEPTED); `sending.VenueSender` gets it there,
  also when a call's outcome is unknown or the commit's answer was lost.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from decimal import Decimal

from aipx.aio import cancel_and_wait

from aipx_oms.domain.ledger import Entry, mark_price
from aipx_oms.domain.model import Instrument, Order, OrderRequest, Position
from aipx_oms.domain.risk import RateLimiter
from aipx_oms.errors import RequestRejectedError
from aipx_oms.events import EventBus
from aipx_oms.sending import VenueSender
from aipx_oms.settings import OmsSettings
from aipx_oms.store.ledger import PostedEntry
from aipx_oms.store.postgres import OmsStore, OrderFilter
from aipx_oms.store.writer import GroupCommitWriter
from aipx_oms.usecases.balances import BalanceReconciler
from aipx_oms.usecases.books import BookCache
from aipx_oms.usecases.cancel_replace import CancelReplace
from aipx_oms.usecases.coalescing import Coalescer
from aipx_oms.usecases.committing import Committer
from aipx_oms.usecases.entries import AfterPost, OperatorEntries
from aipx_oms.usecases.reports import ExecutionReports
from aipx_oms.usecases.streaming import EventStream
from aipx_oms.usecases.submit import SubmitOrders
from aipx_oms.venues.base import BalanceSource, ExecutionReport, ExecutionVenue, FeeCharging
from aipx_oms.venues.market_data import MarketDataCache

log = logging.getLogger(__name__)


class OrderService:
    """See the module docstring."""

    def __init__(
        self,
        settings: OmsSettings,
        *,
        store: OmsStore,
        writer: GroupCommitWriter,
        limiter: RateLimiter,
        market: MarketDataCache,
        venues: dict[str, ExecutionVenue],
        bus: EventBus,
    ) -> None:
        self.settings = settings
        self.store = store
        self.market = market
        self.bus = bus
        self.books = BookCache(settings, store)
        coalescer = Coalescer()
        committer = Committer(writer, self.books)
        self.reports = ExecutionReports(settings, store=store, books=self.books, committer=committer)
        self.sender = VenueSender(settings, venues, store, self.reports.on_report)
        writer.watch(self.sender)  # the durable send path follows the commits in memory
        self.submits = SubmitOrders(
            settings,
            books=self.books,
            committer=committer,
            coalescer=coalescer,
            limiter=limiter,
            market=market,
            sender=self.sender,
            venue_names=frozenset(venues),
        )
        self.changes = CancelReplace(
            settings,
            store=store,
            books=self.books,
            committer=committer,
            coalescer=coalescer,
            market=market,
            venues=venues,
            sender=self.sender,
        )
        self.stream = EventStream(store, bus)
        self.entries = OperatorEntries(self.books, committer)
        self._refresh: asyncio.Task[None] | None = None
        self._halt_cancels: set[asyncio.Task[None]] = set()
        self.books.on_live_while_halted = self._cancel_while_halted
        # The ledger of settings.binance_account_id follows the venues that report balances (BalanceSource).
        self.balances: BalanceReconciler | None = None
        for venue in venues.values():
            if isinstance(venue, FeeCharging):
                venue.charge_fees_with(self.books.fee_rates)
        sources = [v for v in venues.values() if isinstance(v, BalanceSource)]
        if settings.binance_account_id and sources:
            self.balances = BalanceReconciler(
                settings, settings.binance_account_id, store=store, books=self.books, reports=self.reports
            )
            for source in sources:
                source.follow_balances(self.balances.on_balances, settings.binance_balance_reconcile_s)

    @property
    def platform_halted(self) -> bool:
        """The platform-wide halt (set by the admin service): no new orders or replaces, cancels work."""
        return self.books.platform_halted

    @platform_halted.setter
    def platform_halted(self, halted: bool) -> None:
        self.books.platform_halted = halted

    @property
    def instruments(self) -> dict[str, Instrument]:
        return self.books.instruments

    def mark(self, symbol: str) -> Decimal | None:
        """The symbol's mark price (last trade, else mid) from the market data the OMS follows."""
        snapshot = self.market.snapshot(symbol)
        return mark_price(snapshot.last_trade, snapshot.bid, snapshot.ask)

    # --- lifecycle ------------------------------------------------------------------------------------

    async def start(self, *, refresh_s: float = 2.0) -> None:
        """Load instruments, start processing venue reports, reconcile open orders, start sending."""
        self.books.instruments = await self.store.instruments()
        self.reports.start()
        if self.balances is not None:
            self.balances.start()
        self._refresh = asyncio.create_task(self.books.refresh_loop(refresh_s), name="account-refresh")
        await self.sender.begin_sweep()
        await self.reconcile()
        await self.sender.start()

    async def stop(self) -> None:
        await self.sender.stop()
        if self.balances is not None:
            await self.balances.stop()
        await self.reports.stop()
        await cancel_and_wait(self._refresh, *self._halt_cancels, what="account refresh")

    def _cancel_while_halted(self, order: Order) -> None:
        """An order became live in an account HALTED with its working orders cancelled: cancel it through
        the usual cancel path (once per version of the order: the key names its sequence)."""
        task = asyncio.create_task(self._halt_cancel(order), name=f"halt-cancel-{order.order_id}")
        self._halt_cancels.add(task)
        task.add_done_callback(self._halt_cancels.discard)

    async def _halt_cancel(self, order: Order) -> None:
        key = f"halt-{order.order_id}-{order.sequence}"
        try:
            await self.changes.cancel(order.account_id, order.order_id, "", key, None)
        except RequestRejectedError as exc:  # finished meanwhile
            log.info("cancel of %s (account halted) refused: %s", order.order_id, exc)
        except Exception:  # the store is down or a bug: the next acknowledgement or an operator tries again
            log.exception("cancel of %s (account halted) failed", order.order_id)
        else:
            log.info("order %s became live in halted account %s: cancel requested", order.order_id,
                     order.account_id)  # fmt: skip

    def on_report(self, report: ExecutionReport) -> None:
        """The venues' callback (see usecases.reports)."""
        self.reports.on_report(report)

    async def room(self) -> None:
        """Awaited by venues before reading more of their streams (backpressure, see usecases.reports)."""
        await self.reports.room()

    async def reconcile(self) -> None:
        """Startup reconciliation: every open order of the database is handed to its venue to compare."""
        orders = await self.store.open_orders()
        for order in orders:
            await self.books.book(order.account_id)
        await self.sender.reconcile(orders, startup=True)

    async def refresh(self) -> None:
        await self.books.refresh()

    # --- use cases ------------------------------------------------------------------------------------

    async def submit(
        self, account_id: str, request: OrderRequest, deadline: float | None
    ) -> tuple[Order, bool]:
        return await self.submits.submit(account_id, request, deadline)

    async def cancel(
        self, account_id: str, order_id: str, client_order_id: str, key: str, deadline: float | None
    ) -> Order:
        return await self.changes.cancel(account_id, order_id, client_order_id, key, deadline)

    async def replace(
        self,
        account_id: str,
        *,
        order_id: str,
        client_order_id: str,
        key: str,
        quantity: Decimal | None,
        price: Decimal | None,
        deadline: float | None,
    ) -> Order:
        return await self.changes.replace(
            account_id,
            order_id=order_id,
            client_order_id=client_order_id,
            key=key,
            quantity=quantity,
            price=price,
            deadline=deadline,
        )

    async def post_ledger_entry(self, entry: Entry, after: AfterPost) -> PostedEntry:
        """An operator's deposit, withdrawal or adjustment, on the order path (usecases.entries)."""
        return await self.entries.post(entry, after)

    async def get(
        self, account_id: str, order_id: str, client_order_id: str, budget_s: float | None = None
    ) -> Order:
        return await self.books.get(account_id, order_id, client_order_id, budget_s)

    async def list_orders(
        self,
        account_id: str,
        flt: OrderFilter,
        page_size: int,
        page_token: str,
        budget_s: float | None = None,
    ) -> tuple[list[Order], str]:
        return await self.store.list_orders(account_id, flt, page_size, page_token, budget_s=budget_s)

    async def positions(self, account_id: str, symbols: Sequence[str]) -> list[Position]:
        return await self.store.positions(account_id, symbols)

    def events(
        self, account_id: str, after: int, symbols: Sequence[str] = (), order_id: str = ""
    ) -> AsyncIterator[tuple[int, bytes]]:
        """The account's events after log sequence `after`: first from the log, then live, without gaps."""
        return self.stream.events(account_id, after, symbols, order_id)
