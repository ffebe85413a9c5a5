"""The OMS over gRPC (generated stub aipx.v1.oms_pb2_grpc.OmsServiceStub), authenticated by x-api-key."""

from __future__ import annotations

from typing import Any

import grpc
from aipx.v1.oms_pb2 import SubmitOrderRequest, SubmitOrderResponse
from aipx.v1.oms_pb2_grpc import OmsServiceStub
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


class OmsClient:
    """Submits orders; the channel is created on first use (on the loop it is used from)."""

    def __init__(self, target: str, *, api_key: str, timeout_s: float = 5.0, tls: bool = False) -> None:
        self.target = target
        self.tls = tls
        self._metadata = (("x-api-key", api_key),)
        self.timeout_s = timeout_s
        self._channel: grpc.aio.Channel | None = None
        self._stub: OmsServiceStub | None = None

    def _oms(self) -> OmsServiceStub:
        if self._stub is None:
            self._channel = (
                grpc.aio.secure_channel(self.target, grpc.ssl_channel_credentials())
                if self.tls
                else grpc.aio.insecure_channel(self.target)
            )
            self._stub = OmsServiceStub(self._channel)
        return self._stub

    async def submit(self, order: OrderRequest) -> SubmitOrderResponse:
        """Submit (idempotent on client_order_id). OrderRefusedError for permanent refusals; transient errors
        (UNAVAILABLE, DEADLINE_EXCEEDED, UNAUTHENTICATED, ...) propagate as grpc.aio.AioRpcError."""
        try:
            # The generated stub is typed for the sync API; on an aio channel the call is awaitable.
            submit: Any = self._oms().SubmitOrder
            response: SubmitOrderResponse = await submit(
                SubmitOrderRequest(order=order), metadata=self._metadata, timeout=self.timeout_s
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() in PERMANENT:
                raise OrderRefusedError(exc.code(), exc.details() or "") from exc
            raise
        return response

    async def close(self) -> None:
        if self._channel is not None:
            channel, self._channel, self._stub = self._channel, None, None
            await channel.close()
