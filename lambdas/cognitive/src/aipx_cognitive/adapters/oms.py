"""The OMS for the cognitive function: order submission through the shared client (aipx.clients.oms), with
the refusals a retry cannot change told apart from transient failures."""

from __future__ import annotations

import grpc
from aipx.clients.oms import OmsClient
from aipx.v1.oms_pb2 import SubmitOrderResponse
from aipx.v1.orders_pb2 import OrderRequest

# Refusals that a retry cannot change: the decision records them instead of failing the record forever.
PERMANENT = frozenset(
    {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.OUT_OF_RANGE,
        grpc.StatusCode.ALREADY_EXISTS,
    }
)


class OrderRefusedError(Exception):
    """The OMS refused the request for good (invalid argument, ...); retrying the same request won't help."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        self.code = code
        self.details = details
        super().__init__(f"{code.name}: {details}")


class OmsOrders:
    """Submits orders; the client's channel is opened on first use (on the loop it is used from)."""

    def __init__(self, target: str, *, api_key: str, timeout_s: float = 5.0, tls: bool = False) -> None:
        self.client = OmsClient(
            target,
            api_key,
            timeout_s=timeout_s,
            credentials=grpc.ssl_channel_credentials() if tls else None,
        )

    async def submit(self, order: OrderRequest) -> SubmitOrderResponse:
        """Submit (idempotent on client_order_id). OrderRefusedError for permanent refusals; transient errors
        (UNAVAILABLE, DEADLINE_EXCEEDED, UNAUTHENTICATED, ...) propagate as grpc.aio.AioRpcError."""
        try:
            return await self.client.submit_request(order)
        except grpc.aio.AioRpcError as exc:
            if exc.code() in PERMANENT:
                raise OrderRefusedError(exc.code(), exc.details() or "") from exc
            raise

    async def close(self) -> None:
        await self.client.close()
