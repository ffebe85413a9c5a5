"""OrderService: the OMS's use cases. Decides with the domain, remembers through the store, talks to venues.

Ordering guarantees:
- Risk checks and the reservation of a new order in the account book happen with no await in between, so
  concurrent submits of one account see each other.
- Every change of one order runs under that order's lock, through the group-commit writer, and is applied to
  memory only after its commit.
- An order goes to its venue only after it is committed (ACCEPTED).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from dataclasses import replace
from decimal import Decimal
from typing import Any, TypeVar, cast

from aipx.ids import deterministic_id, new_event_id, now_ns

from aipx_oms import metrics
from aipx_oms.domain.book import AccountBook
from aipx_oms.domain.model import (
    AccountState,
    Fill,
    Instrument,
    Order,
    OrderEvent,
    OrderRequest,
    OrderStatus,
    OrderType,
    Position,
    RejectReason,
)
from aipx_oms.domain.risk import (
    Exposure,
    RateLimiter,
    RateVerdict,
    RiskCheck,
    RiskLimits,
    check_order,
)
from aipx_oms.domain.state_machine import IllegalTransitionError, OrderStateMachine
from aipx_oms.domain.validation import FieldViolation, check_price, check_quantity, validate_order
from aipx_oms.errors import InvalidRequestError, OrderNotFoundError, RequestRejectedError, UnknownAccountError
from aipx_oms.events import OVERFLOW, EventBus
from aipx_oms.settings import OmsSettings
from aipx_oms.store.errors import StoreUnavailableError, WriteConflictError
from aipx_oms.store.postgres import AccountRow, OmsStore, OrderFilter, RequestKeyRow, StoredEvent
from aipx_oms.store.writer import GroupCommitWriter, Mutation, RequestKey, WriteResult
from aipx_oms.venues.base import ExecutionReport, ExecutionVenue, ReportKind
from aipx_oms.venues.market_data import MarketDataCache

log = logging.getLogger(__name__)
OSM = OrderStateMachine
T = TypeVar("T")
_LOCK_STRIPES = 512
_STREAM_PAGE = 500


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
        self.writer = writer
        self.limiter = limiter
        self.market = market
        self.venues = venues
        self.bus = bus
        self.instruments: dict[str, Instrument] = {}
        self._books: dict[str, AccountBook] = {}
        self._book_locks: dict[str, asyncio.Lock] = {}
        self._stale: set[str] = set()
        self._order_account: dict[str, str] = {}
        self._inflight: dict[tuple[str, str], asyncio.Future[object]] = {}
        self._locks = [asyncio.Lock() for _ in range(_LOCK_STRIPES)]
        self._changed: dict[str, asyncio.Event] = {}
        self._reports: asyncio.Queue[ExecutionReport] = asyncio.Queue()
        self._tasks: set[asyncio.Task[None]] = set()
        self._workers: list[asyncio.Task[None]] = []
        # Committed orders on their way to each venue, sent in commit order by one task per venue.
        self._outbound: dict[str, asyncio.Queue[Order]] = {name: asyncio.Queue() for name in venues}
        self._state_counters: dict[OrderStatus, Any] = {}
        # The platform-wide halt (set by the admin service's platform watcher): no new orders, cancels work.
        self.platform_halted = False

    # --- lifecycle ------------------------------------------------------------------------------------

    async def start(self, *, refresh_s: float = 2.0) -> None:
        """Load instruments, reconcile open orders with the venues, start processing venue reports."""
        self.instruments = await self.store.instruments()
        self._workers.append(asyncio.create_task(self._report_loop(), name="venue-reports"))
        for name in self.venues:
            queue = self._outbound[name]
            self._workers.append(asyncio.create_task(self._send_loop(queue), name=f"venue-{name}-sender"))
        self._workers.append(asyncio.create_task(self._refresh_loop(refresh_s), name="account-refresh"))
        await self.reconcile()

    async def stop(self) -> None:
        for task in self._workers:
            task.cancel()
        for task in [*self._workers, *self._tasks]:
            # Shutting down: outcomes were logged where they failed.
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def on_report(self, report: ExecutionReport) -> None:
        """The venues' callback: reports are applied in arrival order (per order)."""
        metrics.VENUE_REPORTS.labels(report.venue, report.kind.value).inc()
        self._reports.put_nowait(report)

    async def reconcile(self) -> None:
        """Startup reconciliation: every open order of the database is handed to its venue to compare."""
        orders = await self.store.open_orders()
        by_venue: dict[str, list[Order]] = {}
        for order in orders:
            await self._book(order.account_id)
            by_venue.setdefault(order.venue, []).append(order)
        for name, venue_orders in by_venue.items():
            venue = self.venues.get(name)
            if venue is None:
                log.error("%d open orders on venue %s, which is not enabled", len(venue_orders), name)
                continue
            log.info("reconciling %d open orders with venue %s", len(venue_orders), name)
            await venue.reconcile(venue_orders)

    # --- books ----------------------------------------------------------------------------------------

    def _limits(self, row: AccountRow) -> RiskLimits:
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

    async def _book(self, account_id: str) -> AccountBook:
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
            book = AccountBook.load(account_id, row.state, self._limits(row), orders, positions)
            for order in orders:
                self._order_account[order.order_id] = account_id
            self._books[account_id] = book
            self._stale.discard(account_id)
            self._update_open_gauge()
            return book

    async def refresh(self) -> None:
        """Re-read instruments and the state/limits of loaded accounts (operators change them in the DB)."""
        self.instruments = await self.store.instruments()
        for account_id, book in list(self._books.items()):
            row = await self.store.account(account_id)
            if row is not None:
                book.state = row.state
                book.limits = self._limits(row)

    async def _refresh_loop(self, every_s: float) -> None:
        while True:
            await asyncio.sleep(every_s)
            try:
                await self.refresh()
            except StoreUnavailableError as exc:
                log.warning("refresh skipped: %s", exc)

    def _update_open_gauge(self) -> None:
        metrics.OPEN_ORDERS.set(sum(b.open_order_count for b in self._books.values()))

    def _lock(self, order_id: str) -> asyncio.Lock:
        return self._locks[hash(order_id) % _LOCK_STRIPES]

    async def _coalesce(self, key: tuple[str, str], work: Callable[[], Awaitable[T]]) -> tuple[T, bool]:
        """Run `work` once for concurrent identical requests; (result, True) for the one that ran it."""
        running = self._inflight.get(key)
        if running is not None:
            result = await asyncio.shield(running)
            return cast(T, result), False
        future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            value = await work()
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: only concurrent duplicates care
            raise
        else:
            future.set_result(value)
            return value, True
        finally:
            del self._inflight[key]

    def _committed(self, account_id: str, order: Order) -> None:
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
        event = self._changed.get(order.order_id)
        if event is not None:
            event.set()

    def _write_failed(self, account_id: str, exc: BaseException) -> None:
        if isinstance(exc, StoreUnavailableError | WriteConflictError):
            # The commit may or may not have happened, or memory and database disagree: rebuild this
            # account's book from the database.
            self._stale.add(account_id)

    async def _write(
        self,
        account_id: str,
        mutation: Mutation,
        applied: Callable[[WriteResult], None],
        failed: Callable[[BaseException], None] | None = None,
    ) -> WriteResult:
        """Commit a mutation and apply its outcome to memory exactly once, before the caller resumes, and
        also when the caller is cancelled meanwhile (a deadline): what is committed is never forgotten."""
        future = self.writer.enqueue(mutation)

        def done(f: asyncio.Future[WriteResult]) -> None:
            error = f.exception()
            if error is None:
                applied(f.result())
                return
            self._write_failed(account_id, error)
            if failed is not None:
                failed(error)

        future.add_done_callback(done)
        return await asyncio.shield(future)

    def _applier(self, account_id: str, new: Order) -> Callable[[WriteResult], None]:
        def applied(result: WriteResult) -> None:
            if result.created:
                self._committed(account_id, new)

        return applied

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- submit ---------------------------------------------------------------------------------------

    async def submit(
        self, account_id: str, request: OrderRequest, deadline: float | None
    ) -> tuple[Order, bool]:
        """Create an order (ACCEPTED or DENIED) once per client order id; (order, created)."""
        (order, created), ran = await self._coalesce(
            (account_id, "order:" + request.client_order_id),
            lambda: self._submit(account_id, request, deadline),
        )
        return order, created and ran

    async def _submit(
        self, account_id: str, request: OrderRequest, deadline: float | None
    ) -> tuple[Order, bool]:
        violations = validate_order(request, self.instruments, self.venues.keys())
        if violations:
            raise InvalidRequestError(violations)
        assert request.side and request.type and request.time_in_force and request.quantity
        book = await self._book(account_id)
        verdict = await self.limiter.acquire(account_id, book.limits.rate_per_s, book.limits.rate_burst)
        # From here to the reservation there is no await: concurrent submits see each other's orders.
        book = self._books.get(account_id, book)
        instrument = self.instruments[request.symbol]
        now = now_ns()
        order = Order(
            order_id=str(uuid.uuid4()),
            account_id=account_id,
            client_order_id=request.client_order_id,
            symbol=request.symbol,
            side=request.side,
            type=request.type,
            time_in_force=request.time_in_force,
            quantity=request.quantity,
            price=request.price,
            stop_price=request.stop_price,
            reduce_only=request.reduce_only,
            post_only=request.post_only,
            venue=request.venue or self.settings.default_venue,
            status=OrderStatus.PENDING_NEW,
            created_time_ns=now,
            updated_time_ns=now,
            tags=dict(request.tags),
        )
        denial = check_order(
            RiskCheck(
                order.symbol,
                order.side,
                order.type,
                order.quantity,
                order.price,
                order.reduce_only,
                order.stop_price,
            ),
            instrument=instrument,
            account_state=book.state,
            limits=book.limits,
            exposure=book.exposure(order.symbol),
            open_orders=book.open_order_count,
            market=self.market.snapshot(order.symbol),
            rate=verdict,
            platform_halted=self.platform_halted,
        )
        if denial is None:
            new, event_type = OSM.accept(order, now)
            book.track(new)  # reserve
            event = OrderEvent(new_event_id(), event_type, new, now)
        else:
            new, event_type = OSM.deny(order, denial.reason, denial.message, now)
            event = OrderEvent(
                new_event_id(), event_type, new, now, reason=denial.reason, message=denial.message
            )

        def applied(result: WriteResult) -> None:
            if not result.created:
                book.release(new.order_id)
                return
            self._committed(account_id, new)
            if denial is not None:
                metrics.RISK_DENIALS.labels(denial.reason.value).inc()
            else:
                self._update_open_gauge()
                self._outbound[new.venue].put_nowait(new)  # validated: one of self.venues

        mutation = Mutation(new_order=new, events=[event], deadline=deadline)
        result = await self._write(account_id, mutation, applied, lambda _: book.release(new.order_id))
        if not result.created:
            assert result.existing_order is not None
            return result.existing_order, False
        return new, True

    async def _send_loop(self, queue: asyncio.Queue[Order]) -> None:
        while True:
            await self._send(await queue.get())

    async def _send(self, order: Order) -> None:
        venue = self.venues[order.venue]
        try:
            await venue.submit(order)
        except Exception as exc:  # the venue call failed: the order is rejected, never left hanging
            log.warning("venue %s refused order %s: %s", order.venue, order.order_id, exc)
            metrics.VENUE_ERRORS.labels(order.venue, "submit").inc()
            self.on_report(
                ExecutionReport(
                    ReportKind.REJECTED,
                    order.order_id,
                    order.venue,
                    reason=RejectReason.VENUE_REJECTED,
                    message=str(exc),
                )
            )

    # --- lookups --------------------------------------------------------------------------------------

    async def get(
        self, account_id: str, order_id: str, client_order_id: str, budget_s: float | None = None
    ) -> Order:
        order = await self.store.order(
            account_id, order_id=order_id, client_order_id=client_order_id, budget_s=budget_s
        )
        if order is None:
            raise OrderNotFoundError(f"no order {order_id or client_order_id!r} for this account")
        return order

    async def _current(self, order_id: str, account_id: str | None = None) -> Order | None:
        """The latest version of an order: memory for working orders, else the database."""
        owner = self._order_account.get(order_id)
        if owner is not None and (account_id is None or owner == account_id):
            book = await self._book(owner)
            order = book.orders.get(order_id)
            if order is not None:
                return order
        if account_id is None:
            return await self.store.order_by_id(order_id)
        return await self.store.order(account_id, order_id=order_id)

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

    # --- cancel / replace -----------------------------------------------------------------------------

    async def _replay(self, account_id: str, row: RequestKeyRow, kind: str, target: Order) -> Order:
        if row.kind != kind or row.order_id != target.order_id:
            raise InvalidRequestError(
                [FieldViolation("idempotency_key", f"already used for a {row.kind} of order {row.order_id}")]
            )
        if row.outcome == "rejected":
            raise RequestRejectedError(RejectReason(row.reason or "ORDER_NOT_OPEN"), row.message)
        return await self.get(account_id, row.order_id, "")

    async def _keyed(
        self, account_id: str, key: str, kind: str, target: Order, result: WriteResult
    ) -> Order | None:
        """The earlier outcome when the request key already existed, else None."""
        if result.created:
            return None
        assert result.existing_request is not None
        return await self._replay(account_id, result.existing_request, kind, target)

    async def cancel(
        self, account_id: str, order_id: str, client_order_id: str, key: str, deadline: float | None
    ) -> Order:
        """Cancel an order, once per idempotency key; allowed in every account state."""
        order, _ = await self._coalesce(
            (account_id, "key:" + key),
            lambda: self._cancel(account_id, order_id, client_order_id, key, deadline),
        )
        return order

    async def _cancel(
        self, account_id: str, order_id: str, client_order_id: str, key: str, deadline: float | None
    ) -> Order:
        target = await self.get(account_id, order_id, client_order_id)
        done = await self.store.request_key(account_id, key)
        if done is not None:
            return await self._replay(account_id, done, "cancel", target)
        async with self._lock(target.order_id):
            order = await self._current(target.order_id, account_id)
            assert order is not None
            now = now_ns()
            if order.status.is_terminal or order.status is OrderStatus.PENDING_NEW:
                message = f"order is {order.status}"
                rk = RequestKey(
                    account_id,
                    key,
                    "cancel",
                    order.order_id,
                    "rejected",
                    RejectReason.ORDER_NOT_OPEN,
                    message,
                )
                result = await self.writer.write(Mutation(request_key=rk, deadline=deadline))
                earlier = await self._keyed(account_id, key, "cancel", order, result)
                if earlier is not None:
                    return earlier
                raise RequestRejectedError(RejectReason.ORDER_NOT_OPEN, message)
            rk = RequestKey(account_id, key, "cancel", order.order_id, "ok")
            if order.status is OrderStatus.PENDING_CANCEL:
                result = await self.writer.write(Mutation(request_key=rk, deadline=deadline))
                return await self._keyed(account_id, key, "cancel", order, result) or order
            new, event_type = OSM.request_cancel(order, now)
            mutation = Mutation(
                request_key=rk,
                updates=[(new, order.sequence)],
                events=[OrderEvent(new_event_id(), event_type, new, now)],
                deadline=deadline,
            )
            result = await self._write(account_id, mutation, self._applier(account_id, new))
            earlier = await self._keyed(account_id, key, "cancel", order, result)
            if earlier is not None:
                return earlier
        try:
            await self.venues[new.venue].cancel(new)
        except Exception as exc:
            log.warning("venue %s cancel of %s failed: %s", new.venue, new.order_id, exc)
            metrics.VENUE_ERRORS.labels(new.venue, "cancel").inc()
            self.on_report(
                ExecutionReport(ReportKind.CANCEL_REJECTED, new.order_id, new.venue, message=str(exc))
            )
        return await self._settled(account_id, new, self.settings.cancel_wait_s)

    async def _settled(self, account_id: str, order: Order, wait_s: float) -> Order:
        """The order once it left PENDING_CANCEL, or as it is after `wait_s`."""
        loop = asyncio.get_running_loop()
        until = loop.time() + wait_s
        current = order
        while current.status is OrderStatus.PENDING_CANCEL and loop.time() < until:
            event = self._changed.setdefault(order.order_id, asyncio.Event())
            try:
                await asyncio.wait_for(event.wait(), until - loop.time())
            except TimeoutError:
                pass
            finally:
                self._changed.pop(order.order_id, None)
            current = await self._current(order.order_id, account_id) or current
        return current

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
        """Modify quantity/price of a working order in place, once per idempotency key."""
        order, _ = await self._coalesce(
            (account_id, "key:" + key),
            lambda: self._replace(
                account_id,
                order_id=order_id,
                client_order_id=client_order_id,
                key=key,
                quantity=quantity,
                price=price,
                deadline=deadline,
            ),
        )
        return order

    async def _replace(
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
        target = await self.get(account_id, order_id, client_order_id)
        done = await self.store.request_key(account_id, key)
        if done is not None:
            return await self._replay(account_id, done, "replace", target)
        instrument = self.instruments.get(target.symbol)
        violations: list[FieldViolation] = []
        if quantity is None and price is None:
            violations.append(FieldViolation("quantity", "give a new quantity and/or price"))
        if price is not None and target.type not in (OrderType.LIMIT, OrderType.STOP_LIMIT):
            violations.append(FieldViolation("price", f"a {target.type} order has no price to replace"))
        violations += check_quantity(quantity, instrument, "quantity") if quantity is not None else []
        violations += check_price(price, instrument, "price", required=False)
        if violations:
            raise InvalidRequestError(violations)
        book = await self._book(account_id)
        async with self._lock(target.order_id):
            order = await self._current(target.order_id, account_id)
            assert order is not None
            now = now_ns()
            if order.status not in (OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED):
                message = f"order is {order.status}"
                rk = RequestKey(
                    account_id,
                    key,
                    "replace",
                    order.order_id,
                    "rejected",
                    RejectReason.ORDER_NOT_OPEN,
                    message,
                )
                result = await self.writer.write(Mutation(request_key=rk, deadline=deadline))
                earlier = await self._keyed(account_id, key, "replace", order, result)
                if earlier is not None:
                    return earlier
                raise RequestRejectedError(RejectReason.ORDER_NOT_OPEN, message)
            new_quantity = quantity if quantity is not None else order.quantity
            new_price = price if price is not None else order.price
            if new_quantity <= order.filled_quantity:
                raise InvalidRequestError(
                    [FieldViolation("quantity", f"must exceed the filled quantity {order.filled_quantity}")]
                )
            exposure = book.exposure(order.symbol)
            leaves = order.quantity - order.filled_quantity
            # Judge the replaced order as if it were new, without its current leaves.
            exposure = Exposure(
                exposure.position,
                exposure.open_buy - (leaves if order.side.sign > 0 else 0),
                exposure.open_sell - (leaves if order.side.sign < 0 else 0),
            )
            assert instrument is not None
            denial = check_order(
                RiskCheck(
                    order.symbol,
                    order.side,
                    order.type,
                    new_quantity - order.filled_quantity,
                    new_price,
                    order.reduce_only,
                    order.stop_price,
                ),
                instrument=instrument,
                account_state=book.state,
                limits=book.limits,
                exposure=exposure,
                open_orders=book.open_order_count - 1,
                market=self.market.snapshot(order.symbol),
                rate=RateVerdict.ALLOWED,
                platform_halted=self.platform_halted,
            )
            if (
                denial is not None
                and denial.reason
                in (
                    RejectReason.QUANTITY_BELOW_MINIMUM,
                    RejectReason.MIN_NOTIONAL_NOT_MET,
                )
                and book.state is AccountState.ACTIVE
            ):
                denial = (
                    None  # a partly filled order's remainder may be small; that is not a reason to refuse
                )
            if denial is not None:
                new, event_type = OSM.replace_rejected(order, now)
                rk = RequestKey(
                    account_id, key, "replace", order.order_id, "rejected", denial.reason, denial.message
                )
                event = OrderEvent(
                    new_event_id(), event_type, new, now, reason=denial.reason, message=denial.message
                )
            else:
                new, event_type = OSM.replace(order, new_quantity, new_price, now)
                rk = RequestKey(account_id, key, "replace", order.order_id, "ok")
                event = OrderEvent(new_event_id(), event_type, new, now)
            mutation = Mutation(
                request_key=rk, updates=[(new, order.sequence)], events=[event], deadline=deadline
            )
            result = await self._write(account_id, mutation, self._applier(account_id, new))
            earlier = await self._keyed(account_id, key, "replace", order, result)
            if earlier is not None:
                return earlier
            if denial is not None:
                metrics.RISK_DENIALS.labels(denial.reason.value).inc()
                raise RequestRejectedError(denial.reason, denial.message)
        try:
            await self.venues[new.venue].replace(new)
        except Exception as exc:
            log.warning("venue %s replace of %s failed: %s", new.venue, new.order_id, exc)
            metrics.VENUE_ERRORS.labels(new.venue, "replace").inc()
        return new

    # --- venue reports --------------------------------------------------------------------------------

    async def _report_loop(self) -> None:
        while True:
            report = await self._reports.get()
            self._spawn(self._apply_report(report))

    async def _apply_report(self, report: ExecutionReport) -> None:
        async with self._lock(report.order_id):
            for attempt in range(5):
                try:
                    await self._apply_report_locked(report)
                    return
                except StoreUnavailableError as exc:
                    log.warning(
                        "report %s for %s not stored (%s), retry %d",
                        report.kind,
                        report.order_id,
                        exc,
                        attempt,
                    )
                    await asyncio.sleep(0.2 * 2**attempt)
            metrics.VENUE_ERRORS.labels(report.venue, "report_lost").inc()
            log.error(
                "gave up storing %s report for order %s; reconciliation will repair it",
                report.kind,
                report.order_id,
            )

    async def _apply_report_locked(self, report: ExecutionReport) -> None:
        order = await self._current(report.order_id)
        if order is None:
            metrics.VENUE_ERRORS.labels(report.venue, "unknown_order").inc()
            log.warning("%s report for unknown order %s", report.kind, report.order_id)
            return
        if order.status.is_terminal and report.kind is not ReportKind.FILL:
            return  # a repeated or late terminal report: the order is already finished
        account_id = order.account_id
        book = await self._book(account_id)
        now = now_ns()
        mutation = Mutation()
        new: Order
        try:
            if report.kind is ReportKind.ACKNOWLEDGED:
                if not report.venue_order_id or order.venue_order_id == report.venue_order_id:
                    return
                new = replace(order, venue_order_id=report.venue_order_id)
                mutation.updates.append((new, order.sequence))
            elif report.kind is ReportKind.FILL:
                assert report.quantity is not None and report.price is not None
                new, event_type = OSM.fill(order, report.quantity, report.price, now)
                if report.venue_order_id and not new.venue_order_id:
                    new = replace(new, venue_order_id=report.venue_order_id)
                fill = Fill(
                    fill_id=deterministic_id("fill", order.order_id, report.venue_fill_id),
                    order_id=order.order_id,
                    account_id=account_id,
                    symbol=order.symbol,
                    side=order.side,
                    quantity=report.quantity,
                    price=report.price,
                    fee=report.fee,
                    fee_currency=report.fee_currency,
                    liquidity=report.liquidity,
                    venue=report.venue,
                    venue_fill_id=report.venue_fill_id,
                    fill_time_ns=report.time_ns or now,
                )
                instrument = self.instruments.get(order.symbol)
                quote_fee = (
                    report.fee
                    if instrument is None or report.fee_currency == instrument.quote_asset
                    else Decimal(0)
                )
                position = book.position(order.symbol).apply_fill(
                    order.side, report.quantity, report.price, quote_fee, now
                )
                mutation.updates.append((new, order.sequence))
                mutation.fills.append(fill)
                mutation.positions.append(position)
                mutation.events.append(
                    OrderEvent(new_event_id(), event_type, new, now, fill=fill, position=position)
                )
            else:
                if report.kind is ReportKind.CANCELED:
                    new, event_type = OSM.cancel(order, now, report.reason, report.message)
                elif report.kind is ReportKind.CANCEL_REJECTED:
                    if order.status is not OrderStatus.PENDING_CANCEL:
                        return
                    new, event_type = OSM.cancel_rejected(order, now)
                elif report.kind is ReportKind.EXPIRED:
                    new, event_type = OSM.expire(order, now, report.reason, report.message)
                else:
                    new, event_type = OSM.reject(
                        order, report.reason or RejectReason.VENUE_REJECTED, report.message, now
                    )
                if report.venue_order_id and not new.venue_order_id:
                    new = replace(new, venue_order_id=report.venue_order_id)
                mutation.updates.append((new, order.sequence))
                mutation.events.append(
                    OrderEvent(
                        new_event_id(), event_type, new, now, reason=report.reason, message=report.message
                    )
                )
        except IllegalTransitionError as exc:
            metrics.VENUE_ERRORS.labels(report.venue, "illegal_transition").inc()
            log.warning("ignoring %s report: %s", report.kind, exc)
            return

        def applied(result: WriteResult) -> None:
            for position in mutation.positions:
                book.set_position(position)
            self._committed(account_id, new)
            self._update_open_gauge()

        await self._write(account_id, mutation, applied)

    # --- events ---------------------------------------------------------------------------------------

    async def events(
        self, account_id: str, after: int, symbols: Sequence[str] = (), order_id: str = ""
    ) -> AsyncIterator[tuple[int, bytes]]:
        """The account's events after log sequence `after`: first from the log, then live, without gaps."""
        sub = self.bus.subscribe(account_id)
        wanted = set(symbols)
        try:
            last = after
            while True:
                while True:  # catch up from the database
                    rows: list[StoredEvent] = await self.store.events_after(
                        account_id, last, _STREAM_PAGE, symbols=symbols, order_id=order_id
                    )
                    for row in rows:
                        yield row.log_sequence, row.payload
                        last = row.log_sequence
                    if len(rows) < _STREAM_PAGE:
                        break
                while True:  # live
                    item = await sub.queue.get()
                    if item is OVERFLOW:
                        sub.overflowed = False
                        break
                    if item.log_sequence <= last:
                        continue
                    last = item.log_sequence
                    if wanted and item.event.order.symbol not in wanted:
                        continue
                    if order_id and item.event.order.order_id != order_id:
                        continue
                    yield item.log_sequence, item.payload
        finally:
            self.bus.unsubscribe(sub)
