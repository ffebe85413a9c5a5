"""Execution reports: every report a venue sends is stored, retried until it is (a fill is never dropped),
with a bound on how many wait (venues pause their streams meanwhile: backpressure).

Reports of one order are applied in arrival order under the order's lock; fills of one account and symbol
move its position one at a time.

An acknowledgement or a fill for an order the OMS REJECTED (it concluded the venue never got it, and the
request arrived after all) reopens it: the order goes to PENDING_CANCEL (the send path's sweep cancels it at
the venue), its fills are recorded (position and ledger follow the venue), and it is logged and counted
(`op="rejected_order_live"`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from dataclasses import replace
from decimal import Decimal
from typing import Any

from aipx.aio import cancel_and_wait
from aipx.ids import deterministic_id, new_event_id, now_ns
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential_jitter

from aipx_oms import metrics
from aipx_oms.domain.executions import fill_to_store
from aipx_oms.domain.ledger import fill_entries
from aipx_oms.domain.model import Fill, Order, OrderEvent, OrderStatus, RejectReason
from aipx_oms.domain.state_machine import IllegalTransitionError
from aipx_oms.domain.state_machine import OrderStateMachine as OSM
from aipx_oms.settings import OmsSettings
from aipx_oms.store.errors import StoreUnavailableError, WriteConflictError
from aipx_oms.store.postgres import OmsStore
from aipx_oms.store.writer import Mutation, WriteResult
from aipx_oms.usecases.books import BookCache
from aipx_oms.usecases.committing import Committer
from aipx_oms.venues.base import ExecutionReport, ReportKind

log = logging.getLogger(__name__)


class ExecutionReports:
    """Receives venue reports (`on_report`, `room`) and stores them (see the module docstring)."""

    def __init__(
        self, settings: OmsSettings, *, store: OmsStore, books: BookCache, committer: Committer
    ) -> None:
        self.settings = settings
        self.store = store
        self.books = books
        self.committer = committer
        self._reports: asyncio.Queue[ExecutionReport] = asyncio.Queue()
        # Reports received and not yet stored; venues wait in room() while report_queue_max are pending.
        self._pending_reports = 0
        self._room = asyncio.Event()
        self._room.set()
        self._idle = asyncio.Event()  # set while no report waits to be stored
        self._idle.set()
        self._position_locks: dict[tuple[str, str], asyncio.Lock] = {}
        # Per venue, the latest venue time (ns) of the fills received: balance snapshots are compared with it.
        self.last_fill_ns: dict[str, int] = {}
        self.fill_received = asyncio.Event()  # set on each fill report (cleared by whoever waits for one)
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop_task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._loop_task = asyncio.create_task(self._report_loop(), name="venue-reports")

    async def stop(self) -> None:
        await cancel_and_wait(*self._tasks, self._loop_task, what="execution reports")

    @property
    def pending(self) -> int:
        """Reports received and not stored yet."""
        return self._pending_reports

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def on_report(self, report: ExecutionReport) -> None:
        """The venues' callback: reports are applied in arrival order (per order)."""
        metrics.VENUE_REPORTS.labels(report.venue, report.kind.value).inc()
        if report.kind is ReportKind.FILL and report.time_ns > self.last_fill_ns.get(report.venue, 0):
            self.last_fill_ns[report.venue] = report.time_ns
            self.fill_received.set()
        self._pending_reports += 1
        self._idle.clear()
        if self._pending_reports >= self.settings.report_queue_max:
            self._room.clear()
        self._reports.put_nowait(report)

    async def room(self) -> None:
        """Wait while report_queue_max reports wait to be stored: a venue calls this before reading more
        from its stream, so a database outage slows the stream down instead of filling memory."""
        await self._room.wait()

    def _report_done(self) -> None:
        self._pending_reports -= 1
        if self._pending_reports < self.settings.report_queue_max:
            self._room.set()
        if self._pending_reports == 0:
            self._idle.set()

    async def idle(self) -> None:
        """Return once every report received so far is stored (or given up)."""
        await self._idle.wait()

    async def _report_loop(self) -> None:
        while True:
            report = await self._reports.get()
            self._spawn(self._apply_report(report))

    async def _apply_report(self, report: ExecutionReport) -> None:
        """Store a report, retrying until it is stored: a fill is never dropped. A store outage or a
        conflict (memory and database disagree: the book is re-read) is retried with backoff."""

        def before_sleep(state: RetryCallState) -> None:
            outcome = state.outcome
            metrics.VENUE_ERRORS.labels(report.venue, "report_retry").inc()
            log.warning("report %s for %s not stored (%s), attempt %d", report.kind, report.order_id,
                        outcome.exception() if outcome else None, state.attempt_number)  # fmt: skip

        try:
            async with self.books.order_lock(report.order_id):
                retrying = AsyncRetrying(
                    retry=retry_if_exception_type((StoreUnavailableError, WriteConflictError)),
                    wait=wait_exponential_jitter(
                        multiplier=0.1, jitter=0.1, max=self.settings.report_retry_max_s
                    ),
                    before_sleep=before_sleep,
                    reraise=True,
                )
                async for attempt in retrying:
                    with attempt:
                        await self._apply_report_locked(report, retry=attempt.retry_state.attempt_number > 1)
        except Exception:  # not an outage (those are retried): a bug or a report that cannot apply; counted
            metrics.VENUE_ERRORS.labels(report.venue, "report_failed").inc()
            log.exception("%s report for order %s could not be applied", report.kind, report.order_id)
        finally:
            self._report_done()

    def _position_lock(self, account_id: str, symbol: str) -> asyncio.Lock:
        return self._position_locks.setdefault((account_id, symbol), asyncio.Lock())

    async def _apply_report_locked(self, report: ExecutionReport, *, retry: bool = False) -> None:
        order = await self.books.current(report.order_id)
        if order is None:
            metrics.VENUE_ERRORS.labels(report.venue, "unknown_order").inc()
            log.warning("%s report for unknown order %s", report.kind, report.order_id)
            return
        if order.status is OrderStatus.REJECTED and report.kind in (ReportKind.ACKNOWLEDGED, ReportKind.FILL):
            order = await self._reopen(order, report)
        if order.status.is_terminal and report.kind is not ReportKind.FILL:
            return  # a repeated or late terminal report: the order is already finished
        if report.kind is not ReportKind.FILL:
            await self._apply_order_report(order, report)
            return
        # Fills of different orders of one account and symbol move one position: one at a time, from the
        # read of the position to its commit (else two fills would both start from the same position).
        async with self._position_lock(order.account_id, order.symbol):
            if retry:  # the previous attempt's commit may have happened after all: never store a fill twice
                fill_id = deterministic_id("fill", order.order_id, report.venue_fill_id)
                if await self.store.fill_exists(fill_id):
                    return
                order = await self.books.current(report.order_id) or order
            await self._apply_order_report(order, report)

    async def _reopen(self, order: Order, report: ExecutionReport) -> Order:
        """The venue has an order the OMS rejected: reopen it to be canceled (see the module docstring)."""
        metrics.VENUE_ERRORS.labels(report.venue, "rejected_order_live").inc()
        log.error(
            "venue %s has order %s (venue id %s) that the OMS rejected (%s): recording its fills and "
            "canceling it at the venue", report.venue, order.order_id, report.venue_order_id or "?",
            order.reject_message,
        )  # fmt: skip
        await self.books.book(order.account_id)  # loaded: the reopened order is tracked as working
        new, event_type = OSM.reopen_rejected(order, now_ns())
        if report.venue_order_id:
            new = replace(new, venue_order_id=report.venue_order_id)
        mutation = Mutation()
        mutation.updates.append((new, order.sequence))
        mutation.events.append(
            OrderEvent(new_event_id(), event_type, new, new.updated_time_ns, message="live at the venue")
        )

        def applied(_: WriteResult) -> None:
            self.books.committed(order.account_id, new)
            self.books.update_open_gauge()

        await self.committer.write(order.account_id, mutation, applied)
        return new

    async def _apply_order_report(self, order: Order, report: ExecutionReport) -> None:
        account_id = order.account_id
        book = await self.books.book(account_id)
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
                executed = fill_to_store(
                    order.filled_quantity,
                    order.average_fill_price,
                    report.quantity,
                    report.price,
                    report.cumulative_quantity,
                    report.cumulative_quote,
                )
                if executed is None:
                    metrics.VENUE_ERRORS.labels(report.venue, "duplicate_fill").inc()
                    return  # already stored (seen on the stream and by a query)
                quantity, price = executed
                new, event_type = OSM.fill(order, quantity, price, now)
                if report.venue_order_id and not new.venue_order_id:
                    new = replace(new, venue_order_id=report.venue_order_id)
                fill = Fill(
                    fill_id=deterministic_id("fill", order.order_id, report.venue_fill_id),
                    order_id=order.order_id,
                    account_id=account_id,
                    symbol=order.symbol,
                    side=order.side,
                    quantity=quantity,
                    price=price,
                    fee=report.fee,
                    fee_currency=report.fee_currency,
                    liquidity=report.liquidity,
                    venue=report.venue,
                    venue_fill_id=report.venue_fill_id,
                    fill_time_ns=report.time_ns or now,
                )
                instrument = self.books.instruments.get(order.symbol)
                quote_fee = (
                    report.fee
                    if instrument is None or report.fee_currency == instrument.quote_asset
                    else Decimal(0)
                )
                position = book.position(order.symbol).apply_fill(order.side, quantity, price, quote_fee, now)
                mutation.updates.append((new, order.sequence))
                mutation.fills.append(fill)
                mutation.positions.append(position)
                if instrument is not None:  # balances move with the fill, in its transaction
                    entries = fill_entries(
                        account_id=account_id,
                        order_id=order.order_id,
                        fill_id=fill.fill_id,
                        side=order.side,
                        base_asset=instrument.base_asset,
                        quote_asset=instrument.quote_asset,
                        quantity=quantity,
                        price=price,
                        fee=report.fee,
                        fee_asset=report.fee_currency or instrument.quote_asset,
                        time_ns=fill.fill_time_ns,
                    )
                    mutation.ledger_fills.append((entries, new.status.is_terminal))
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
            for entries, final in mutation.ledger_fills:
                book.ledger.settle_fill(entries, final=final, check=False)
            self.books.committed(account_id, new)
            self.books.update_open_gauge()
            if new.venue_order_id and not order.venue_order_id:  # the venue acknowledged it just now
                self.books.became_live(new)

        await self.committer.write(account_id, mutation, applied)
