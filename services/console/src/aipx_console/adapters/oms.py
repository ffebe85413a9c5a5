"""OmsGateway: the OMS gRPC API as the console uses it, through the shared clients of `aipx.clients`.

Reads, per configured account (its API key): the open orders once, then the account's stream
(`StreamAccount`: trading state, balances, equity, P&L and positions, pushed on every change).
Actions: cancel an order, set an account's trading state, list accounts (`AdminService`, with the operator's
`x-admin-token`, which the page sends with each action and the console never stores).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
from aipx.aio import cancel_and_wait
from aipx.clients.admin import AdminClient
from aipx.clients.oms import OmsClient
from aipx.v1 import admin_pb2, orders_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential

from aipx_console.domain.state import ConsoleState

log = logging.getLogger(__name__)

COMPONENT = "oms"

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
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 503,
}


def call_error(exc: grpc.aio.AioRpcError) -> OmsCallError:
    code = exc.code()
    details = exc.details() or ""
    if code == grpc.StatusCode.UNIMPLEMENTED:
        details = f"the OMS does not serve AdminService ({details})"
    return OmsCallError(code.name, details, _HTTP.get(code, 502))


class OmsGateway:
    """Health of the OMS, the configured accounts' streams into the state, admin actions for the web side."""

    def __init__(
        self, target: str, state: ConsoleState, *, api_keys: dict[str, str], timeout_s: float
    ) -> None:
        self.target = target
        self.state = state
        self.timeout_s = timeout_s
        self.accounts = {
            account: OmsClient(target, key, timeout_s=timeout_s) for account, key in api_keys.items()
        }
        self._health_channel = grpc.aio.insecure_channel(target)
        self.health = health_pb2_grpc.HealthStub(self._health_channel)

    async def close(self) -> None:
        for client in self.accounts.values():
            with contextlib.suppress(Exception):
                await client.close()
        await self._health_channel.close()

    def _set(self, up: bool, message: str) -> None:
        self.state.set_component(COMPONENT, up, message, time.time_ns())

    async def run(self, interval_s: float = 2.0) -> None:
        """Watch the OMS's health and follow every configured account until cancelled."""
        follows = [
            asyncio.create_task(self.follow(a, c), name=f"account-{a}") for a, c in self.accounts.items()
        ]
        try:
            while True:
                await self.check()
                await asyncio.sleep(interval_s)
        finally:
            await cancel_and_wait(*follows, what="console OMS follows")

    async def check(self) -> None:
        try:
            reply = await self.health.Check(  # type: ignore[attr-defined]  # (stubs type the sync stub only)
                health_pb2.HealthCheckRequest(), timeout=self.timeout_s
            )
        except grpc.aio.AioRpcError as exc:
            self._set(
                False, f"OMS unreachable at {self.target}: {exc.code().name} {exc.details() or ''}".strip()
            )
            return
        status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
        self._set(reply.status == health_pb2.HealthCheckResponse.SERVING, f"{self.target}: {status}")

    async def follow(self, account: str, client: OmsClient) -> None:
        """Open orders once, then the account's snapshots as they change; again after any failure."""
        async for attempt in AsyncRetrying(
            wait=wait_exponential(multiplier=0.5, max=5), retry=retry_if_exception_type(grpc.aio.AioRpcError)
        ):
            with attempt:
                try:
                    async for order in client.all_orders(open_only=True, page_size=500):
                        self.state.on_order(order)
                    async for snapshot in client.account_updates(min_interval_ms=500):
                        self.state.on_account_snapshot(snapshot)
                except grpc.aio.AioRpcError as exc:
                    log.info("following account %s: %s", account, call_error(exc))
                    raise

    # --- admin actions (the operator's token, per call) ------------------------------------------------
    @contextlib.asynccontextmanager
    async def _admin(self, token: str) -> AsyncIterator[AdminClient]:
        """An admin client with the operator's token; a failed call becomes an OmsCallError."""
        async with AdminClient(self.target, token, timeout_s=self.timeout_s) as admin:
            try:
                yield admin
            except grpc.aio.AioRpcError as exc:
                raise call_error(exc) from exc

    async def list_accounts(self, token: str) -> list[admin_pb2.AccountSummary]:
        async with self._admin(token) as admin:
            accounts = await admin.list_accounts()
        for account in accounts:
            self.state.on_account(account)
        return accounts

    async def cancel_order(self, token: str, account_id: str, order_id: str, reason: str) -> orders_pb2.Order:
        async with self._admin(token) as admin:
            order = await admin.cancel_order(account_id, order_id, reason)
        self.state.on_order(order)
        return order

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
        async with self._admin(token) as admin:
            reply = await admin.set_trading_state(
                account_id, state, reason, cancel_working_orders=cancel_working_orders
            )
        if reply.HasField("account"):
            self.state.on_account(reply.account)
        return reply
