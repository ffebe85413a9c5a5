"""OmsClient: a typed asyncio client of the OMS over the generated stubs (API key and deadlines built in).

The channel is created on first use, on the event loop that uses it (a client built outside a loop, e.g. at a
Lambda's module level, works on the loop that later calls it)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from decimal import Decimal

import grpc

from aipx.clients.base import GrpcClient
from aipx.money import to_pb
from aipx.v1 import common_pb2, oms_pb2, oms_pb2_grpc, orders_pb2

API_KEY_HEADER = "x-api-key"


class OmsClient(GrpcClient["oms_pb2_grpc.OmsServiceAsyncStub"]):
    """Every call sends the API key; unary calls carry a default deadline (override per call)."""

    credential_header = API_KEY_HEADER
    channel_options = (("grpc.max_receive_message_length", 16 * 1024 * 1024),)

    def __init__(
        self,
        target: str,
        api_key: str,
        *,
        timeout_s: float = 10.0,
        credentials: grpc.ChannelCredentials | None = None,
    ) -> None:
        super().__init__(target, api_key, timeout_s=timeout_s, credentials=credentials)

    def _new_stub(self, channel: grpc.aio.Channel) -> oms_pb2_grpc.OmsServiceAsyncStub:
        return oms_pb2_grpc.OmsServiceStub(channel)

    async def submit(
        self,
        symbol: str,
        side: common_pb2.Side.ValueType,
        quantity: Decimal | str,
        *,
        order_type: orders_pb2.OrderType.ValueType = orders_pb2.ORDER_TYPE_LIMIT,
        price: Decimal | str | None = None,
        time_in_force: orders_pb2.TimeInForce.ValueType = orders_pb2.TIME_IN_FORCE_GTC,
        client_order_id: str | None = None,
        reduce_only: bool = False,
        post_only: bool = False,
        venue: str = "",
        tags: Mapping[str, str] | None = None,
        timeout_s: float | None = None,
        stop_price: Decimal | str | None = None,
    ) -> oms_pb2.SubmitOrderResponse:
        """Submit an order (a new client_order_id is generated when none is given)."""
        request = orders_pb2.OrderRequest(
            client_order_id=client_order_id or uuid.uuid4().hex,
            symbol=symbol,
            side=side,
            type=order_type,
            time_in_force=time_in_force,
            quantity=to_pb(quantity),
            price=to_pb(price) if price is not None else common_pb2.Decimal(),
            stop_price=to_pb(stop_price) if stop_price is not None else common_pb2.Decimal(),
            reduce_only=reduce_only,
            post_only=post_only,
            venue=venue,
            tags=dict(tags or {}),
        )
        return await self.submit_request(request, timeout_s=timeout_s)

    async def submit_request(
        self, order: orders_pb2.OrderRequest, *, timeout_s: float | None = None
    ) -> oms_pb2.SubmitOrderResponse:
        return await self.stub.SubmitOrder(
            oms_pb2.SubmitOrderRequest(order=order), metadata=self._metadata, timeout=self._timeout(timeout_s)
        )

    async def cancel(
        self,
        *,
        order_id: str = "",
        client_order_id: str = "",
        idempotency_key: str | None = None,
        timeout_s: float | None = None,
    ) -> orders_pb2.Order:
        response = await self.stub.CancelOrder(
            oms_pb2.CancelOrderRequest(
                order_id=order_id,
                client_order_id=client_order_id,
                idempotency_key=idempotency_key or uuid.uuid4().hex,
            ),
            metadata=self._metadata,
            timeout=self._timeout(timeout_s),
        )
        return response.order

    async def replace(
        self,
        *,
        order_id: str = "",
        client_order_id: str = "",
        quantity: Decimal | str | None = None,
        price: Decimal | str | None = None,
        idempotency_key: str | None = None,
        timeout_s: float | None = None,
    ) -> orders_pb2.Order:
        response = await self.stub.ReplaceOrder(
            oms_pb2.ReplaceOrderRequest(
                order_id=order_id,
                client_order_id=client_order_id,
                idempotency_key=idempotency_key or uuid.uuid4().hex,
                quantity=to_pb(quantity) if quantity is not None else common_pb2.Decimal(),
                price=to_pb(price) if price is not None else common_pb2.Decimal(),
            ),
            metadata=self._metadata,
            timeout=self._timeout(timeout_s),
        )
        return response.order

    async def get(
        self, *, order_id: str = "", client_order_id: str = "", timeout_s: float | None = None
    ) -> orders_pb2.Order:
        response = await self.stub.GetOrder(
            oms_pb2.GetOrderRequest(order_id=order_id, client_order_id=client_order_id),
            metadata=self._metadata,
            timeout=self._timeout(timeout_s),
        )
        return response.order

    async def list_orders(
        self,
        *,
        symbols: Sequence[str] = (),
        statuses: Sequence[orders_pb2.OrderStatus.ValueType] = (),
        open_only: bool = False,
        page_size: int = 0,
        page_token: str = "",
        timeout_s: float | None = None,
    ) -> oms_pb2.ListOrdersResponse:
        return await self.stub.ListOrders(
            oms_pb2.ListOrdersRequest(
                symbols=list(symbols),
                statuses=list(statuses),
                open_only=open_only,
                page_size=page_size,
                page_token=page_token,
            ),
            metadata=self._metadata,
            timeout=self._timeout(timeout_s),
        )

    async def all_orders(self, **filters: object) -> AsyncIterator[orders_pb2.Order]:
        """Every order matching the filters, following the pages."""
        token = ""
        while True:
            page = await self.list_orders(page_token=token, **filters)  # type: ignore[arg-type]
            for order in page.orders:
                yield order
            token = page.next_page_token
            if not token:
                return

    async def events(
        self, *, from_log_sequence: int = 0, symbols: Sequence[str] = (), order_id: str = ""
    ) -> AsyncIterator[orders_pb2.OrderEvent]:
        """The account's order events after `from_log_sequence`, then live (until the caller stops)."""
        call = self.stub.StreamOrderEvents(
            oms_pb2.StreamOrderEventsRequest(
                from_log_sequence=from_log_sequence, symbols=list(symbols), order_id=order_id
            ),
            metadata=self._metadata,
        )
        try:
            async for response in call:
                yield response.event
        finally:
            call.cancel()

    async def positions(
        self, symbols: Sequence[str] = (), *, timeout_s: float | None = None
    ) -> list[orders_pb2.Position]:
        response = await self.stub.ListPositions(
            oms_pb2.ListPositionsRequest(symbols=list(symbols)),
            metadata=self._metadata,
            timeout=self._timeout(timeout_s),
        )
        return list(response.positions)

    async def account(self, *, timeout_s: float | None = None) -> oms_pb2.AccountSnapshot:
        """Balances (total/free/locked), equity, realized and unrealized P&L, trading state."""
        response: oms_pb2.GetAccountResponse = await self.stub.GetAccount(
            oms_pb2.GetAccountRequest(), metadata=self._metadata, timeout=self._timeout(timeout_s)
        )
        return response.account

    async def account_updates(
        self, *, min_interval_ms: int = 0, heartbeat_ms: int = 0
    ) -> AsyncGenerator[oms_pb2.AccountSnapshot, None]:
        """The account now, then after each change (until the caller closes the generator)."""
        call = self.stub.StreamAccount(
            oms_pb2.StreamAccountRequest(min_interval_ms=min_interval_ms, heartbeat_ms=heartbeat_ms),
            metadata=self._metadata,
        )
        try:
            async for update in call:
                yield update.account
        finally:
            call.cancel()

    async def instruments(self, *, timeout_s: float | None = None) -> list[orders_pb2.Instrument]:
        response = await self.stub.ListInstruments(
            oms_pb2.ListInstrumentsRequest(), metadata=self._metadata, timeout=self._timeout(timeout_s)
        )
        return list(response.instruments)
