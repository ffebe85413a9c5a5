"""SubmitOrder: validate, check risk and reserve without an await in between, commit, then send.

Concurrent identical submits run once (coalesced); a repeat of a client order id must be the same request
(else IdempotencyConflictError naming the existing order and the differing fields).
"""

from __future__ import annotations

import uuid

from aipx.ids import new_event_id, now_ns

from aipx_oms import metrics
from aipx_oms.domain.idempotency import order_differences
from aipx_oms.domain.model import Order, OrderEvent, OrderRequest, OrderStatus
from aipx_oms.domain.risk import RateLimiter, check_funds, reservation_price
from aipx_oms.domain.state_machine import OrderStateMachine as OSM
from aipx_oms.domain.validation import validate_order
from aipx_oms.errors import IdempotencyConflictError, InvalidRequestError
from aipx_oms.sending import VenueSender
from aipx_oms.settings import OmsSettings
from aipx_oms.store.writer import Mutation, WriteResult
from aipx_oms.usecases.books import BookCache
from aipx_oms.usecases.coalescing import Coalescer
from aipx_oms.usecases.committing import Committer
from aipx_oms.venues.market_data import MarketDataCache

REPLACEABLE = frozenset({"order.quantity", "order.price"})  # what a ReplaceOrder changes


class SubmitOrders:
    """The SubmitOrder use case (see the module docstring)."""

    def __init__(
        self,
        settings: OmsSettings,
        *,
        books: BookCache,
        committer: Committer,
        coalescer: Coalescer,
        limiter: RateLimiter,
        market: MarketDataCache,
        sender: VenueSender,
        venue_names: frozenset[str],
    ) -> None:
        self.settings = settings
        self.books = books
        self.committer = committer
        self.coalescer = coalescer
        self.limiter = limiter
        self.market = market
        self.sender = sender
        self.venue_names = venue_names

    async def submit(
        self, account_id: str, request: OrderRequest, deadline: float | None
    ) -> tuple[Order, bool]:
        """Create an order (ACCEPTED or DENIED) once per client order id; (order, created)."""
        (order, created), ran = await self.coalescer.run(
            (account_id, "order:" + request.client_order_id),
            lambda: self._submit(account_id, request, deadline),
        )
        if not (created and ran):  # a repeat: it must be the same request, not a reused client order id
            differing = order_differences(order, request, self.settings.default_venue)
            if differing and order.sequence > 1 and set(differing) <= REPLACEABLE:
                # Replaced since: a repeat of the original submit is compared with the order as submitted.
                submitted = await self.books.as_submitted(order)
                differing = order_differences(submitted, request, self.settings.default_venue)
            if differing:
                raise IdempotencyConflictError(
                    "client_order_id", request.client_order_id, order.order_id, differing
                )
        return order, created and ran

    async def _submit(
        self, account_id: str, request: OrderRequest, deadline: float | None
    ) -> tuple[Order, bool]:
        violations = validate_order(request, self.books.instruments, self.venue_names)
        if violations:
            raise InvalidRequestError(violations)
        assert request.side and request.type and request.time_in_force and request.quantity
        book = await self.books.book(account_id)
        verdict = await self.limiter.acquire(account_id, book.limits.rate_per_s, book.limits.rate_burst)
        # From here to the reservation there is no await: concurrent submits see each other's orders.
        book = self.books.loaded(account_id) or book
        instrument = self.books.instruments[request.symbol]
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
        market = self.market.snapshot(order.symbol)
        check, denial = self.books.check_risk(
            book,
            order,
            instrument,
            market,
            quantity=order.quantity,
            price=order.price,
            exposure=book.exposure(order.symbol),
            open_orders=book.open_order_count,
            rate=verdict,
        )
        if denial is None:
            price = reservation_price(check, market, book.limits.price_band_bps)
            assert price is not None  # else check_order denied NO_MARKET_DATA
            # Reserves the funds in memory when they suffice (still no await since the checks).
            denial = check_funds(
                book.ledger,
                order.order_id,
                check,
                instrument=instrument,
                price=price,
                fee_rate=self.books.reservation_fee_rate(order),
            )
        held = book.ledger.reservations.get(order.order_id) if denial is None else None
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
            self.books.committed(account_id, new)
            if denial is not None:
                metrics.RISK_DENIALS.labels(denial.reason.value).inc()
            else:
                self.books.update_open_gauge()
                self.sender.enqueue(new)  # validated: one of self.venues
                self.books.became_live(new)  # checked before a halt, committed after its cancels began

        mutation = Mutation(
            new_order=new,
            events=[event],
            reservations=[(account_id, held)] if held is not None else [],
            deadline=deadline,
        )
        result = await self.committer.write(
            account_id, mutation, applied, lambda _: book.release(new.order_id)
        )
        if not result.created:
            assert result.existing_order is not None
            return result.existing_order, False
        return new, True
