"""BookCache: what the OMS keeps in memory per account (open orders, positions, state, limits), loaded from
the store on first use and rebuilt from it when a commit's outcome was unknown; the latest version of each
working order; one lock per order (striped)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from aipx.v1 import orders_pb2

from aipx_oms import metrics
from aipx_oms.domain.book import AccountBook
from aipx_oms.domain.model import Instrument, Order, OrderStatus
from aipx_oms.domain.risk import (
    Denial,
    Exposure,
    MarketSnapshot,
    RateVerdict,
    RiskCheck,
    RiskLimits,
    check_order,
)
from aipx_oms.errors import OrderNotFoundError, UnknownAccountError
from aipx_oms.settings import OmsSettings
from aipx_oms.store.errors import StoreUnavailableError
from aipx_oms.store.postgres import AccountRow, OmsStore

log = logging.getLogger(__name__)
_LOCK_STRIPES = 512


class BookCache:
    """See the module docstring."""

    def __init__(self, settings: OmsSettings, store: OmsStore) -> None:
        self.settings = settings
        self.store = store
        self.instruments: dict[str, Instrument] = {}
        # The platform-wide halt (set by the admin service): no new orders or replaces, cancels work.
        self.platform_halted = False
        self._books: dict[str, AccountBook] = {}
        self._book_locks: dict[str, asyncio.Lock] = {}
        self._stale: set[str] = set()
        self._order_account: dict[str, str] = {}
        self._locks = [asyncio.Lock() for _ in range(_LOCK_STRIPES)]
        self._state_counters: dict[OrderStatus, Any] = {}
        # Order id -> set when a new version of the order is committed (a cancel waits for its venue).
        self.changed: dict[str, asyncio.Event] = {}
        # Called with an order that became live in an account HALTED with its working orders cancelled.
        self.on_live_while_halted: Callable[[Order], None] = lambda _: None

    def limits(self, row: AccountRow) -> RiskLimits:
        """The account's limits: its risk_limits row where set, the settings' defaults elsewhere."""
        s, lim = self.settings, row.limits
        return RiskLimits(
            max_order_notional=lim.get("max_order_notional", s.risk_max_order_notional),
            max_position_notional=lim.get("max_position_notional", s.risk_max_position_notional),
            max_open_orders=lim.get("max_open_orders", s.risk_max_open_orders),
            rate_per_s=lim.get("rate_per_s", s.risk_rate_per_s),
            rate_burst=lim.get("rate_burst", s.risk_rate_burst),
            price_band_bps=lim.get("price_band_bps", s.risk_price_band_bps),
            max_position_quantity=dict(row.position_quantity),
        )

    def check_risk(
        self,
        book: AccountBook,
        order: Order,
        instrument: Instrument,
        market: MarketSnapshot,
        *,
        quantity: Decimal,
        price: Decimal | None,
        exposure: Exposure,
        open_orders: int,
        rate: RateVerdict,
    ) -> tuple[RiskCheck, Denial | None]:
        """`order` with this quantity (to be worked) and price under its account's risk rules: the check (what
        its funds are reserved for) and the first rule it breaks (None: it may go to its venue)."""
        check = RiskCheck(
            order.symbol, order.side, order.type, quantity, price, order.reduce_only, order.stop_price
        )
        denial = check_order(
            check,
            instrument=instrument,
            account_state=book.state,
            limits=book.limits,
            exposure=exposure,
            open_orders=open_orders,
            market=market,
            rate=rate,
            platform_halted=self.platform_halted,
        )
        return check, denial

    def loaded(self, account_id: str) -> AccountBook | None:
        """The account's book if it is in memory (without loading it)."""
        return self._books.get(account_id)

    async def book(self, account_id: str) -> AccountBook:
        """The account's book, loaded (or rebuilt when stale) from the store."""
        book = self._books.get(account_id)
        if book is not None and account_id not in self._stale:
            return book
        lock = self._book_locks.setdefault(account_id, asyncio.Lock())
        async with lock:
            book = self._books.get(account_id)
            if book is not None and account_id not in self._stale:
                return book
            row = await self.store.account(account_id)
            if row is None:
                raise UnknownAccountError(f"account {account_id!r} does not exist")
            orders = await self.store.open_orders(account_id)
            positions = await self.store.positions(account_id)
            funds = await self.store.account_ledger(account_id)
            book = AccountBook.load(account_id, row.state, self.limits(row), orders, positions, ledger=funds)
            book.fee_rates = row.fee_rates
            book.cancel_working = row.cancel_working
            for order in orders:
                self._order_account[order.order_id] = account_id
            self._books[account_id] = book
            self._stale.discard(account_id)
            self.update_open_gauge()
            return book

    def mark_stale(self, account_id: str) -> None:
        """Memory may disagree with the database: the next use rebuilds the account's book."""
        self._stale.add(account_id)

    async def refresh(self) -> None:
        """Re-read instruments and the state/limits of loaded accounts (operators change them in the DB)."""
        self.instruments = await self.store.instruments()
        for account_id, book in list(self._books.items()):
            row = await self.store.account(account_id)
            if row is not None:
                book.state = row.state
                book.limits = self.limits(row)
                book.fee_rates = row.fee_rates
                book.cancel_working = row.cancel_working

    async def refresh_loop(self, every_s: float) -> None:
        while True:
            await asyncio.sleep(every_s)
            try:
                await self.refresh()
            except StoreUnavailableError as exc:
                log.warning("refresh skipped: %s", exc)

    def fee_rates(self, order: Order) -> tuple[Decimal, Decimal] | None:
        """An order's (maker, taker) fee rates: the account's override where set, else the instrument's;
        None when neither sets a rate (the venue charges its own)."""
        book = self._books.get(order.account_id)
        maker, taker = book.fee_rates if book is not None else (None, None)
        instrument = self.instruments.get(order.symbol)
        default_maker = instrument.maker_fee_rate if instrument is not None else Decimal(0)
        default_taker = instrument.taker_fee_rate if instrument is not None else Decimal(0)
        if maker is None and taker is None and default_maker == 0 and default_taker == 0:
            return None
        return (
            maker if maker is not None else default_maker,
            taker if taker is not None else default_taker,
        )

    def reservation_fee_rate(self, order: Order) -> Decimal:
        """The fee rate an order's reservation covers: the higher of its rates (it may fill as either), or
        the paper venue's own rate for a paper order without rates."""
        rates = self.fee_rates(order)
        if rates is not None:
            return max(rates)
        return self.settings.paper_fee_rate if order.venue == "paper" else Decimal(0)

    def update_open_gauge(self) -> None:
        metrics.OPEN_ORDERS.set(sum(b.open_order_count for b in self._books.values()))

    def order_lock(self, order_id: str) -> asyncio.Lock:
        """The lock every change of this order runs under."""
        return self._locks[hash(order_id) % _LOCK_STRIPES]

    def committed(self, account_id: str, order: Order) -> None:
        """A new version of an order is committed: it is the latest in memory from now on."""
        book = self._books.get(account_id)
        if book is not None:
            book.track(order)
        if order.status.is_terminal:
            self._order_account.pop(order.order_id, None)
        else:
            self._order_account[order.order_id] = account_id
        counter = self._state_counters.get(order.status)
        if counter is None:  # labels() looks the child up under a lock: once per state, not per order
            counter = self._state_counters[order.status] = metrics.ORDER_STATES.labels(order.status.value)
        counter.inc()
        event = self.changed.get(order.order_id)
        if event is not None:
            event.set()

    async def as_submitted(self, order: Order) -> Order:
        """`order` with the quantity and price of its first event (as submitted, before any ReplaceOrder);
        `order` itself when its events cannot be read."""
        events = await self.store.events_after(order.account_id, 0, 1, order_id=order.order_id)
        if not events:
            return order
        first = orders_pb2.OrderEvent.FromString(events[0].payload).order
        return dataclasses.replace(
            order,
            quantity=Decimal(first.quantity.value),
            price=Decimal(first.price.value) if first.price.value else None,
        )

    def became_live(self, order: Order) -> None:
        """A committed order became live (ACCEPTED, or acknowledged by its venue): if its account is HALTED
        with its working orders cancelled, it is cancelled too (`on_live_while_halted`)."""
        book = self._books.get(order.account_id)
        if book is not None and book.cancels(order):
            self.on_live_while_halted(order)

    async def current(self, order_id: str, account_id: str | None = None) -> Order | None:
        """The latest version of an order: memory for working orders, else the database."""
        owner = self._order_account.get(order_id)
        if owner is not None and (account_id is None or owner == account_id):
            book = await self.book(owner)
            order = book.orders.get(order_id)
            if order is not None:
                return order
        if account_id is None:
            return await self.store.order_by_id(order_id)
        return await self.store.order(account_id, order_id=order_id)

    async def get(
        self, account_id: str, order_id: str, client_order_id: str, budget_s: float | None = None
    ) -> Order:
        """An order of the account by id or client order id (from the store); OrderNotFoundError if none."""
        order = await self.store.order(
            account_id, order_id=order_id, client_order_id=client_order_id, budget_s=budget_s
        )
        if order is None:
            raise OrderNotFoundError(f"no order {order_id or client_order_id!r} for this account")
        return order
