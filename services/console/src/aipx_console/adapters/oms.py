"""OmsGateway: the OMS gRPC API as the console uses it (generated stubs; no copy of the OMS's own client).

Reads: the open orders and positions of the configured accounts (`OmsService`, per-account API key).
Actions: cancel an order, set an account's trading state, list accounts (`AdminService`, with the operator's
`x-admin-token`, which the page sends with each action and the console never stores).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

import grpc
from aipx.v1 import admin_pb2, admin_pb2_grpc, oms_pb2, oms_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from aipx_console.domain.state import ConsoleState

log = logging.getLogger(__name__)

COMPONENT = "oms"
ADMIN_TOKEN_HEADER = "x-admin-token"
API_KEY_HEADER = "x-api-key"

TRADING_STATES = {
    "ACTIVE": admin_pb2.TRADING_STATE_ACTIVE,
    "REDUCING": admin_pb2.TRADING_STATE_REDUCING,
    "HALTED": admin_pb2.TRADING_STATE_HALTED,
}


@dataclass(frozen=True)
class OmsCallError(Exception):
    """A failed OMS call, with the gRPC status the page shows and the HTTP status it maps to."""

    code: str
    details: str
    http_status: int

    def __str__(self) -> str:
        return f"{self.code}: {self.details}"


_HTTP = {
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.FAILED_PRECONDITION: 409,
    grpc.StatusCode.UNIMPLEMENTED: 501,
}


def _error(exc: grpc.aio.AioRpcError) -> OmsCallError:
    code = exc.code()
    http = _HTTP.get(code, 502)
    details = exc.details() or ""
    if code == grpc.StatusCode.UNIMPLEMENTED:
        details = f"the OMS does not serve AdminService ({details})"
    elif code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        http = 503
    return OmsCallError(code.name, details, http)


class OmsGateway:
    """One channel to the OMS; health, reads for the state, admin actions for the web side."""

    def __init__(
        self, target: str, state: ConsoleState, *, api_keys: dict[str, str], timeout_s: float
    ) -> None:
        self.target = target
        self.state = state
        self.api_keys = api_keys
        self.timeout_s = timeout_s
        self.channel = grpc.aio.insecure_channel(target)
        self.oms = oms_pb2_grpc.OmsServiceStub(self.channel)
        self.admin = admin_pb2_grpc.AdminServiceStub(self.channel)
        self.health = health_pb2_grpc.HealthStub(self.channel)

    async def close(self) -> None:
        await self.channel.close()

    def _set(self, up: bool, message: str) -> None:
        self.state.set_component(COMPONENT, up, message, time.time_ns())

    async def run(self, interval_s: float = 2.0) -> None:
        """Watch the OMS's health; (re)load orders and positions whenever it comes (back) up."""
        loaded = False
        while True:
            try:
                reply = await self.health.Check(  # type: ignore[attr-defined]  # (stubs type the sync stub only)
                    health_pb2.HealthCheckRequest(), timeout=self.timeout_s
                )
                serving = reply.status == health_pb2.HealthCheckResponse.SERVING
                self._set(
                    serving,
                    f"{self.target}: {health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)}",
                )
                if serving and not loaded:
                    await self.load()
                    loaded = True
            except grpc.aio.AioRpcError as exc:
                loaded = False
                self._set(
                    False,
                    f"OMS unreachable at {self.target}: {exc.code().name} {exc.details() or ''}".strip(),
                )
            except Exception as exc:  # never let the watcher die; show why
                loaded = False
                log.warning("OMS watch failed", exc_info=True)
                self._set(False, f"OMS watch failed: {exc}")
            await asyncio.sleep(interval_s)

    async def load(self) -> None:
        """Open orders and positions of every configured account (later changes come from order-events)."""
        for account, key in self.api_keys.items():
            metadata = ((API_KEY_HEADER, key),)
            try:
                token = ""
                while True:
                    page = await self.oms.ListOrders(
                        oms_pb2.ListOrdersRequest(open_only=True, page_size=500, page_token=token),
                        metadata=metadata,
                        timeout=self.timeout_s,
                    )
                    for order in page.orders:
                        self.state.on_order(order)
                    token = page.next_page_token
                    if not token:
                        break
                positions = await self.oms.ListPositions(
                    oms_pb2.ListPositionsRequest(), metadata=metadata, timeout=self.timeout_s
                )
                for position in positions.positions:
                    self.state.on_position(position)
            except grpc.aio.AioRpcError as exc:
                log.warning("loading account %s from the OMS failed: %s", account, _error(exc))
                raise

    # --- admin actions (the operator's token, per call) ------------------------------------------------
    @staticmethod
    def _admin_metadata(token: str) -> tuple[tuple[str, str], ...]:
        return ((ADMIN_TOKEN_HEADER, token),)

    async def list_accounts(self, token: str) -> list[admin_pb2.AccountSummary]:
        try:
            reply = await self.admin.ListAccounts(
                admin_pb2.ListAccountsRequest(), metadata=self._admin_metadata(token), timeout=self.timeout_s
            )
        except grpc.aio.AioRpcError as exc:
            raise _error(exc) from exc
        for account in reply.accounts:
            self.state.on_account(account)
        return list(reply.accounts)

    async def cancel_order(
        self, token: str, account_id: str, order_id: str, reason: str
    ) -> admin_pb2.AdminServiceCancelOrderResponse:
        try:
            reply = await self.admin.CancelOrder(
                admin_pb2.AdminServiceCancelOrderRequest(
                    account_id=account_id, order_id=order_id, reason=reason
                ),
                metadata=self._admin_metadata(token),
                timeout=self.timeout_s,
            )
        except grpc.aio.AioRpcError as exc:
            raise _error(exc) from exc
        if reply.HasField("order"):
            self.state.on_order(reply.order)
        return reply

    async def set_trading_state(
        self,
        token: str,
        account_id: str,
        trading_state: str,
        reason: str,
        *,
        cancel_working_orders: bool = False,
    ) -> admin_pb2.SetTradingStateResponse:
        state = TRADING_STATES.get(trading_state.upper())
        if state is None:
            raise OmsCallError(
                "INVALID_ARGUMENT", f"trading state must be one of {', '.join(TRADING_STATES)}", 400
            )
        try:
            reply = await self.admin.SetTradingState(
                admin_pb2.SetTradingStateRequest(
                    account_id=account_id,
                    trading_state=state,
                    reason=reason,
                    cancel_working_orders=cancel_working_orders,
                ),
                metadata=self._admin_metadata(token),
                timeout=self.timeout_s,
            )
        except grpc.aio.AioRpcError as exc:
            raise _error(exc) from exc
        if reply.HasField("account"):
            self.state.on_account(reply.account)
        return reply


async def close_quietly(gateway: OmsGateway) -> None:
    with contextlib.suppress(Exception):
        await gateway.close()
