"""CancelOrder and ReplaceOrder: once per idempotency key (a key reused for another order or other values is
refused), under the order's lock, committed before the venue is asked."""

from __future__ import annotations

import asyncio
import logging
from decimal import Decimal

from aipx.aio import wait_event
from aipx.ids import new_event_id, now_ns

from aipx_oms import metrics
from aipx_oms.domain.idempotency import fingerprint_differences, replace_fingerprint
from aipx_oms.domain.model import AccountState, Order, OrderEvent, OrderStatus, OrderType, RejectReason
from aipx_oms.domain.risk import (
    Exposure,
    RateVerdict,
    check_funds,
    reservation_price,
)
from aipx_oms.domain.state_machine import OrderStateMachine as OSM
from aipx_oms.domain.validation import FieldViolation, check_price, check_quantity
from aipx_oms.errors import IdempotencyConflictError, InvalidRequestError, RequestRejectedError
from aipx_oms.sending import VenueSender
from aipx_oms.settings import OmsSettings
from aipx_oms.store.postgres import OmsStore, RequestKeyRow
from aipx_oms.store.writer import Mutation, RequestKey, WriteResult
from aipx_oms.usecases.books import BookCache
from aipx_oms.usecases.coalescing import Coalescer
from aipx_oms.usecases.committing import Committer
from aipx_oms.venues.base import ExecutionVenue
from aipx_oms.venues.market_data import MarketDataCache

log = logging.getLogger(__name__)


class CancelReplace:
    """The CancelOrder and ReplaceOrder use cases (see the module docstring)."""

    def __init__(
        self,
        settings: OmsSettings,
        *,
        store: OmsStore,
        books: BookCache,
        committer: Committer,
        coalescer: Coalescer,
        market: MarketDataCache,
        venues: dict[str, ExecutionVenue],
        sender: VenueSender,
    ) -> None:
        self.settings = settings
        self.store = store
        self.books = books
        self.committer = committer
        self.coalescer = coalescer
        self.market = market
        self.venues = venues
        self.sender = sender

    async def cancel(
        self, account_id: str, order_id: str, client_order_id: str, key: str, deadline: float | None
    ) -> Order:
        """Cancel an order, once per idempotency key; allowed in every account state."""
        order, _ = await self.coalescer.run(
            (account_id, "key:" + key),
            lambda: self._cancel(account_id, order_id, client_order_id, key, deadline),
        )
        return order

    async def _cancel(
        self, account_id: str, order_id: str, client_order_id: str, key: str, deadline: float | None
    ) -> Order:
        target = await self.books.get(account_id, order_id, client_order_id)
        done = await self.store.request_key(account_id, key)
        if done is not None:
            return await self._replay(account_id, done, "cancel", target)
        async with self.books.order_lock(target.order_id):
            order = await self.books.current(target.order_id, account_id)
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
                result = await self.committer.writer.write(Mutation(request_key=rk, deadline=deadline))
                earlier = await self._keyed(account_id, key, "cancel", order, result)
                if earlier is not None:
                    return earlier
                raise RequestRejectedError(RejectReason.ORDER_NOT_OPEN, message)
            rk = RequestKey(account_id, key, "cancel", order.order_id, "ok")
            if order.status is OrderStatus.PENDING_CANCEL:
                result = await self.committer.writer.write(Mutation(request_key=rk, deadline=deadline))
                return await self._keyed(account_id, key, "cancel", order, result) or order
            new, event_type = OSM.request_cancel(order, now)
            mutation = Mutation(
                request_key=rk,
                updates=[(new, order.sequence)],
                events=[OrderEvent(new_event_id(), event_type, new, now)],
                deadline=deadline,
            )
            result = await self.committer.write(account_id, mutation, self.committer.applier(account_id, new))
            earlier = await self._keyed(account_id, key, "cancel", order, result)
            if earlier is not None:
                return earlier
        await self.sender.cancel(new)
        return await self._settled(account_id, new, self.settings.cancel_wait_s)

    async def _settled(self, account_id: str, order: Order, wait_s: float) -> Order:
        """The order once it left PENDING_CANCEL, or as it is after `wait_s`."""
        loop = asyncio.get_running_loop()
        until = loop.time() + wait_s
        current = order
        while current.status is OrderStatus.PENDING_CANCEL and loop.time() < until:
            event = self.books.changed.setdefault(order.order_id, asyncio.Event())
            try:
                await wait_event(event, until - loop.time())
            finally:
                self.books.changed.pop(order.order_id, None)
            current = await self.books.current(order.order_id, account_id) or current
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
        order, _ = await self.coalescer.run(
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
        target = await self.books.get(account_id, order_id, client_order_id)
        fingerprint = replace_fingerprint(quantity, price)
        done = await self.store.request_key(account_id, key)
        if done is not None:
            return await self._replay(account_id, done, "replace", target, fingerprint)
        instrument = self.books.instruments.get(target.symbol)
        violations: list[FieldViolation] = []
        if quantity is None and price is None:
            violations.append(FieldViolation("quantity", "give a new quantity and/or price"))
        if price is not None and target.type not in (OrderType.LIMIT, OrderType.STOP_LIMIT):
            violations.append(FieldViolation("price", f"a {target.type} order has no price to replace"))
        violations += check_quantity(quantity, instrument, "quantity") if quantity is not None else []
        violations += check_price(price, instrument, "price", required=False)
        if violations:
            raise InvalidRequestError(violations)
        book = await self.books.book(account_id)
        async with self.books.order_lock(target.order_id):
            order = await self.books.current(target.order_id, account_id)
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
                    fingerprint,
                )
                result = await self.committer.writer.write(Mutation(request_key=rk, deadline=deadline))
                earlier = await self._keyed(
                    account_id, key, "replace", order, result, fingerprint=fingerprint
                )
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
            market = self.market.snapshot(order.symbol)
            check, denial = self.books.check_risk(
                book,
                order,
                instrument,
                market,
                quantity=new_quantity - order.filled_quantity,
                price=new_price,
                exposure=exposure,
                open_orders=book.open_order_count - 1,
                rate=RateVerdict.ALLOWED,
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
            held_before = book.ledger.reservations.get(order.order_id)
            held = None
            if denial is None:
                # The replaced leaves hold funds instead of the old ones (no await since the checks).
                price_held = reservation_price(check, market, book.limits.price_band_bps)
                if price_held is not None:
                    denial = check_funds(
                        book.ledger, order.order_id, check, instrument=instrument, price=price_held,
                        fee_rate=self.books.reservation_fee_rate(order),
                    )  # fmt: skip
                    held = book.ledger.reservations.get(order.order_id) if denial is None else None
            if denial is not None:
                new, event_type = OSM.replace_rejected(order, now)
                rk = RequestKey(
                    account_id,
                    key,
                    "replace",
                    order.order_id,
                    "rejected",
                    denial.reason,
                    denial.message,
                    fingerprint,
                )
                event = OrderEvent(
                    new_event_id(), event_type, new, now, reason=denial.reason, message=denial.message
                )
            else:
                new, event_type = OSM.replace(order, new_quantity, new_price, now)
                rk = RequestKey(account_id, key, "replace", order.order_id, "ok", fingerprint=fingerprint)
                event = OrderEvent(new_event_id(), event_type, new, now)
            mutation = Mutation(
                request_key=rk,
                updates=[(new, order.sequence)],
                events=[event],
                reservations=[(account_id, held)] if held is not None else [],
                deadline=deadline,
            )

            def restore(_: object = None) -> None:
                """The replace did not commit: the order keeps holding what it held before."""
                if held is None:
                    return
                if held_before is not None:
                    book.ledger.reservations[order.order_id] = held_before
                else:
                    book.ledger.release(order.order_id)

            apply_new = self.committer.applier(account_id, new)

            def applied(result: WriteResult) -> None:
                apply_new(result)
                if not result.created:
                    restore()

            result = await self.committer.write(account_id, mutation, applied, restore)
            earlier = await self._keyed(account_id, key, "replace", order, result, fingerprint=fingerprint)
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

    async def _replay(
        self, account_id: str, row: RequestKeyRow, kind: str, target: Order, fingerprint: str = ""
    ) -> Order:
        differing: list[str] = []
        if row.kind != kind:
            differing.append(f"request ({row.kind}, not {kind})")
        if row.order_id != target.order_id:
            differing.append("order_id")
        if row.fingerprint and row.kind == kind:  # rows from before migration 002 have no fingerprint
            differing += fingerprint_differences(row.fingerprint, fingerprint)
        if differing:
            raise IdempotencyConflictError("idempotency_key", row.idempotency_key, row.order_id, differing)
        if row.outcome == "rejected":
            raise RequestRejectedError(RejectReason(row.reason or "ORDER_NOT_OPEN"), row.message)
        return await self.books.get(account_id, row.order_id, "")

    async def _keyed(
        self,
        account_id: str,
        key: str,
        kind: str,
        target: Order,
        result: WriteResult,
        *,
        fingerprint: str = "",
    ) -> Order | None:
        """The earlier outcome when the request key already existed, else None."""
        if result.created:
            return None
        assert result.existing_request is not None
        return await self._replay(account_id, result.existing_request, kind, target, fingerprint)
