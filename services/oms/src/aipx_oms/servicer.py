"""The gRPC face of the OMS: a thin protobuf <-> domain translation (OmsServicer) and the request
interceptor that authenticates (x-api-key -> account), tags logs with a request id, maps errors to status
codes (with google.rpc details) and records request metrics."""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping, Sequence
from decimal import Decimal
from typing import Any, cast

import grpc
from aipx.logs import bind
from aipx.money import from_pb
from aipx.numbers import INT64_MAX, InvalidNumberError, epoch_ns, parse_int
from aipx.v1 import common_pb2, oms_pb2, oms_pb2_grpc, orders_pb2
from google.protobuf import any_pb2
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from aipx_oms import metrics
from aipx_oms.admin.accounts import AccountQueries
from aipx_oms.auth import ApiKeyAuthenticator
from aipx_oms.domain.model import OrderRequest, OrderStatus
from aipx_oms.domain.validation import FieldViolation, check_id
from aipx_oms.errors import (
    IdempotencyConflictError,
    InvalidRequestError,
    OrderNotFoundError,
    RequestRejectedError,
    UnknownAccountError,
)
from aipx_oms.ratelimit.redis_bucket import RateLimiterUnavailableError
from aipx_oms.service import OrderService
from aipx_oms.store.errors import DeadlineExceededError, StoreUnavailableError, WriteConflictError
from aipx_oms.store.postgres import OrderFilter, decode_page_token
from aipx_oms.wire import (
    instrument_to_pb,
    order_to_pb,
    order_type_from_pb,
    position_to_pb,
    side_from_pb,
    status_from_pb,
    tif_from_pb,
)

log = logging.getLogger(__name__)

API_KEY_HEADER = "x-api-key"
REQUEST_ID_HEADER = "x-request-id"
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 500

# Request ids: a per-process random prefix and a counter (cheaper than a UUID per call, still unique).
_REQUEST_PREFIX = uuid.uuid4().hex[:12]
_request_numbers = itertools.count(1)

OMS_SERVICE = oms_pb2.DESCRIPTOR.services_by_name["OmsService"].full_name

_caller: contextvars.ContextVar[str] = contextvars.ContextVar("aipx_oms_caller")


def caller() -> str:
    """The account of the current request (set by RequestGuard)."""
    return _caller.get()


def _decimal(pb: common_pb2.Decimal, field: str, violations: list[FieldViolation]) -> Decimal | None:
    """The strict parser's value, or None with a violation naming the field (never an exception)."""
    try:
        return from_pb(pb, field=field)
    except InvalidNumberError as exc:
        violations.append(FieldViolation(field, exc.reason))
        return None


def _int(
    value: int, field: str, violations: list[FieldViolation], *, minimum: int, maximum: int = INT64_MAX
) -> int:
    """An integer request field within [minimum, maximum] (e.g. a uint64 that PostgreSQL's bigint cannot
    hold), or 0 with a violation naming the field."""
    try:
        return parse_int(value, field=field, minimum=minimum, maximum=maximum)
    except InvalidNumberError as exc:
        violations.append(FieldViolation(field, exc.reason))
        return 0


def _epoch_ns(value: int, field: str, violations: list[FieldViolation]) -> int:
    try:
        return epoch_ns(value, field=field)
    except InvalidNumberError as exc:
        violations.append(FieldViolation(field, exc.reason))
        return 0


def _one_of_ids(order_id: str, client_order_id: str, violations: list[FieldViolation]) -> None:
    if bool(order_id) == bool(client_order_id):
        violations.append(FieldViolation("order_id", "give exactly one of order_id and client_order_id"))
    violations += check_id(client_order_id, "client_order_id", required=False)
    if len(order_id) > 64:
        violations.append(FieldViolation("order_id", "longer than 64 characters"))


def _deadline(context: grpc.aio.ServicerContext[Any, Any]) -> float | None:
    remaining = context.time_remaining()
    return None if remaining is None else asyncio.get_running_loop().time() + remaining


def _budget(context: grpc.aio.ServicerContext[Any, Any]) -> float | None:
    remaining = context.time_remaining()
    return None if remaining is None else max(remaining, 0.001)


def order_request_from_pb(pb: orders_pb2.OrderRequest) -> tuple[OrderRequest, list[FieldViolation]]:
    """The domain request, plus the violations found while parsing (bad decimals, unknown enum values)."""
    violations: list[FieldViolation] = []
    request = OrderRequest(
        client_order_id=pb.client_order_id,
        symbol=pb.symbol,
        side=side_from_pb(pb.side),
        type=order_type_from_pb(pb.type),
        time_in_force=tif_from_pb(pb.time_in_force),
        quantity=_decimal(pb.quantity, "order.quantity", violations),
        price=_decimal(pb.price, "order.price", violations),
        stop_price=_decimal(pb.stop_price, "order.stop_price", violations),
        reduce_only=pb.reduce_only,
        post_only=pb.post_only,
        venue=pb.venue,
        tags=dict(pb.tags),
    )
    return request, violations


class OmsServicer(oms_pb2_grpc.OmsServiceServicer):
    """Translates requests to OrderService calls and results back; decides nothing itself."""

    def __init__(self, service: OrderService, accounts: AccountQueries | None = None) -> None:
        self.service = service
        self.accounts = accounts

    async def SubmitOrder(
        self, request: oms_pb2.SubmitOrderRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> oms_pb2.SubmitOrderResponse:
        order_request, violations = order_request_from_pb(request.order)
        if violations:
            raise InvalidRequestError(violations)
        order, created = await self.service.submit(caller(), order_request, _deadline(context))
        return oms_pb2.SubmitOrderResponse(order=order_to_pb(order), created=created)

    async def CancelOrder(
        self, request: oms_pb2.CancelOrderRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> oms_pb2.CancelOrderResponse:
        violations: list[FieldViolation] = []
        _one_of_ids(request.order_id, request.client_order_id, violations)
        violations += check_id(request.idempotency_key, "idempotency_key")
        if violations:
            raise InvalidRequestError(violations)
        order = await self.service.cancel(
            caller(), request.order_id, request.client_order_id, request.idempotency_key, _deadline(context)
        )
        return oms_pb2.CancelOrderResponse(order=order_to_pb(order))

    async def ReplaceOrder(
        self, request: oms_pb2.ReplaceOrderRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> oms_pb2.ReplaceOrderResponse:
        violations: list[FieldViolation] = []
        _one_of_ids(request.order_id, request.client_order_id, violations)
        violations += check_id(request.idempotency_key, "idempotency_key")
        quantity = _decimal(request.quantity, "quantity", violations)
        price = _decimal(request.price, "price", violations)
        if violations:
            raise InvalidRequestError(violations)
        order = await self.service.replace(
            caller(),
            order_id=request.order_id,
            client_order_id=request.client_order_id,
            key=request.idempotency_key,
            quantity=quantity,
            price=price,
            deadline=_deadline(context),
        )
        return oms_pb2.ReplaceOrderResponse(order=order_to_pb(order))

    async def GetOrder(
        self, request: oms_pb2.GetOrderRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> oms_pb2.GetOrderResponse:
        violations: list[FieldViolation] = []
        _one_of_ids(request.order_id, request.client_order_id, violations)
        if violations:
            raise InvalidRequestError(violations)
        order = await self.service.get(caller(), request.order_id, request.client_order_id, _budget(context))
        return oms_pb2.GetOrderResponse(order=order_to_pb(order))

    async def ListOrders(
        self, request: oms_pb2.ListOrdersRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> oms_pb2.ListOrdersResponse:
        violations: list[FieldViolation] = []
        page_size = _int(
            request.page_size or DEFAULT_PAGE_SIZE, "page_size", violations, minimum=1, maximum=MAX_PAGE_SIZE
        )
        created_after_ns = _epoch_ns(request.created_after_ns, "created_after_ns", violations)
        created_before_ns = _epoch_ns(request.created_before_ns, "created_before_ns", violations)
        statuses: list[OrderStatus] = []
        for index, value in enumerate(request.statuses):
            status = status_from_pb(value)
            if status is None:
                violations.append(FieldViolation(f"statuses[{index}]", f"unknown order status {value}"))
            else:
                statuses.append(status)
        if request.page_token:
            try:
                decode_page_token(request.page_token)
            except ValueError as exc:
                violations.append(FieldViolation("page_token", str(exc)))
        if violations:
            raise InvalidRequestError(violations)
        flt = OrderFilter(
            symbols=list(request.symbols),
            statuses=statuses,
            open_only=request.open_only,
            created_after_ns=created_after_ns,
            created_before_ns=created_before_ns,
        )
        orders, token = await self.service.list_orders(
            caller(), flt, page_size, request.page_token, _budget(context)
        )
        return oms_pb2.ListOrdersResponse(orders=[order_to_pb(o) for o in orders], next_page_token=token)

    async def StreamOrderEvents(
        self, request: oms_pb2.StreamOrderEventsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[oms_pb2.StreamOrderEventsResponse]:
        violations: list[FieldViolation] = []
        # uint64 on the wire, bigint in PostgreSQL: a value >= 2^63 is refused here, not by the database.
        after = _int(request.from_log_sequence, "from_log_sequence", violations, minimum=0)
        if violations:
            raise InvalidRequestError(violations)
        symbols = list(request.symbols)
        events = self.service.events(caller(), after, symbols=symbols, order_id=request.order_id)
        async for _, payload in events:
            yield oms_pb2.StreamOrderEventsResponse(event=orders_pb2.OrderEvent.FromString(payload))

    async def ListPositions(
        self, request: oms_pb2.ListPositionsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> oms_pb2.ListPositionsResponse:
        positions = await self.service.positions(caller(), list(request.symbols))
        return oms_pb2.ListPositionsResponse(
            positions=[position_to_pb(p, self.service.mark(p.symbol)) for p in positions]
        )

    async def ListInstruments(
        self, request: oms_pb2.ListInstrumentsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> oms_pb2.ListInstrumentsResponse:
        instruments = sorted(self.service.instruments.values(), key=lambda i: i.symbol)
        return oms_pb2.ListInstrumentsResponse(instruments=[instrument_to_pb(i) for i in instruments])

    async def GetAccount(
        self, request: oms_pb2.GetAccountRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> oms_pb2.GetAccountResponse:
        assert self.accounts is not None
        return oms_pb2.GetAccountResponse(account=await self.accounts.get_account(caller()))

    async def StreamAccount(
        self, request: oms_pb2.StreamAccountRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[oms_pb2.StreamAccountResponse]:
        assert self.accounts is not None
        async for view in self.accounts.stream(
            caller(), min_interval_ms=request.min_interval_ms, heartbeat_ms=request.heartbeat_ms
        ):
            yield oms_pb2.StreamAccountResponse(account=view)


# --- errors -> status --------------------------------------------------------------------------------


def error_status(exc: BaseException) -> grpc.Status | None:
    """The gRPC status (with google.rpc details) for a service error; None for an unexpected error."""
    code: int
    message = str(exc)
    details: list[Any] = []
    if isinstance(exc, InvalidRequestError):
        code = code_pb2.INVALID_ARGUMENT
        details.append(
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
                    for v in exc.violations
                ]
            )
        )
    elif isinstance(exc, OrderNotFoundError):
        code = code_pb2.NOT_FOUND
    elif isinstance(exc, IdempotencyConflictError):
        # The existing order and the differing fields, machine-readable: ErrorInfo names the order,
        # BadRequest lists each field that does not match what the key first recorded.
        code = code_pb2.ALREADY_EXISTS
        details.append(
            error_details_pb2.ErrorInfo(
                reason="IDEMPOTENCY_KEY_REUSED",
                domain="oms.aipx",
                metadata={
                    "order_id": exc.order_id,
                    "key_field": exc.key_field,
                    "differing_fields": ",".join(exc.fields),
                },
            )
        )
        details.append(
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(
                        field=name, description=f"differs from order {exc.order_id}"
                    )
                    for name in exc.fields
                ]
            )
        )
    elif isinstance(exc, RequestRejectedError):
        code = code_pb2.FAILED_PRECONDITION
        details.append(
            error_details_pb2.ErrorInfo(reason=f"REJECT_REASON_{exc.reason}", domain="oms.aipx", metadata={})
        )
    elif isinstance(exc, StoreUnavailableError | RateLimiterUnavailableError):
        code = code_pb2.UNAVAILABLE
    elif isinstance(exc, DeadlineExceededError):
        code = code_pb2.DEADLINE_EXCEEDED
    elif isinstance(exc, UnknownAccountError):
        code = code_pb2.PERMISSION_DENIED
    elif isinstance(exc, WriteConflictError):
        code = code_pb2.ABORTED
    else:
        return None
    status = status_pb2.Status(code=code, message=message)
    for detail in details:
        packed = any_pb2.Any()
        packed.Pack(detail)
        status.details.append(packed)
    return rpc_status.to_status(status)


# --- request guard -------------------------------------------------------------------------------------

Behavior = Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[Any]]
StreamBehavior = Callable[[Any, grpc.aio.ServicerContext[Any, Any]], AsyncIterator[Any]]


def _encoded_size(field: FieldDescriptor, value: Any) -> int:
    """Roughly the bytes `value` (the value of `field`) takes in the wire format."""
    if not field.is_repeated:
        return _value_size(value)
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        return sum(_value_size(k) + _value_size(v) for k, v in value.items())
    return sum(_value_size(v) for v in value)


def _value_size(value: Any) -> int:
    if isinstance(value, Message):
        return value.ByteSize()
    if isinstance(value, str):
        return len(value.encode())
    if isinstance(value, bytes):
        return len(value)
    return 8


def largest_field(message: Message, prefix: str = "") -> str:
    """The path of `message`'s largest field, descending into singular sub-messages ("order.tags")."""
    path, largest = prefix.rstrip(".") or "request", -1
    for field, value in message.ListFields():
        size = _encoded_size(field, value)
        if size > largest:
            largest = size
            nested = field.type == FieldDescriptor.TYPE_MESSAGE and not field.is_repeated
            path = largest_field(value, f"{prefix}{field.name}.") if nested else prefix + field.name
    return path


class RequestGuard:
    """Authenticates every OMS call, binds a request id to its logs, maps errors, records metrics.

    It wraps the service's method handlers once, when they are registered (`register`), rather than acting as
    a grpc.aio server interceptor: an interceptor puts a coroutine in front of every call's dispatch and takes
    calls off grpc's registered-method fast path, which cost ~80 us of CPU per call (17% of a bare server's
    whole per-call cost, bench/oms_bench.py). Health and reflection are registered unwrapped (public).
    """

    def __init__(
        self,
        auth: ApiKeyAuthenticator,
        *,
        max_request_bytes: int | None = None,
        registered_services: Collection[str] = (OMS_SERVICE,),
    ) -> None:
        self.auth = auth
        self.max_request_bytes = max_request_bytes
        # The services on grpc's registered-method fast path (see _GuardedRegistration); others are served
        # through their generic handler.
        self.registered_services = frozenset(registered_services)
        self._children: dict[tuple[str, str], tuple[Any, Any]] = {}

    def register(
        self, add_to_server: Callable[[Any, Any], None], servicer: object, server: grpc.aio.Server
    ) -> None:
        """`add_to_server(servicer, server)` (a generated `add_*Servicer_to_server`), every method wrapped."""
        registration = _GuardedRegistration(self, server)
        add_to_server(servicer, registration)
        if not registration.registered:
            raise RuntimeError(f"{add_to_server.__name__} registered no method handlers")

    def _wrap(
        self, method_path: str, handler: grpc.RpcMethodHandler[Any, Any]
    ) -> grpc.RpcMethodHandler[Any, Any]:
        """The registered handler with authentication, logging context, error mapping and metrics around it
        (built once per method: the registered handlers do not change)."""
        method = method_path.rsplit("/", 1)[-1]
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                self._unary(method, cast(Behavior, handler.unary_unary)),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                self._stream(method, cast(StreamBehavior, handler.unary_stream)),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler

    async def _enter(self, method: str, context: grpc.aio.ServicerContext[Any, Any]) -> str:
        metadata = {k: v for k, v in (context.invocation_metadata() or ()) if isinstance(v, str)}
        request_id = metadata.get(REQUEST_ID_HEADER) or f"{_REQUEST_PREFIX}-{next(_request_numbers)}"
        context.set_trailing_metadata(((REQUEST_ID_HEADER, request_id),))
        _caller.set(await self.authenticate(metadata, context))
        return request_id

    async def authenticate(
        self, metadata: Mapping[str, str], context: grpc.aio.ServicerContext[Any, Any]
    ) -> str:
        """The caller's principal (here: the account of the x-api-key), or abort UNAUTHENTICATED. The admin
        service's guard overrides this with its own credential scope."""
        key = metadata.get(API_KEY_HEADER, "")
        if not key:
            account = None
        else:  # the peer (a failure budget's source) is looked up only on a cache miss
            account = self.auth.cached(key) or await self.auth.account_for(key, context.peer())
        if account is None:
            await context.abort(
                grpc.StatusCode.UNAUTHENTICATED, f"missing or unknown API key (metadata {API_KEY_HEADER!r})"
            )
            raise AssertionError("abort returned")
        return account

    def _check_size(self, request: Message) -> None:
        """INVALID_ARGUMENT for a request above the application's size limit, naming its largest field (the
        transport refuses only what exceeds its own, larger, limit)."""
        limit = self.max_request_bytes
        if limit is not None and (size := request.ByteSize()) > limit:
            field = largest_field(request)
            raise InvalidRequestError(
                [FieldViolation(field, f"request of {size} bytes exceeds the limit of {limit} bytes")]
            )

    @staticmethod
    async def _fail(exc: BaseException, context: grpc.aio.ServicerContext[Any, Any], method: str) -> None:
        status = error_status(exc)
        if status is None:
            log.exception("unexpected error in %s", method)
            await context.abort(grpc.StatusCode.INTERNAL, "internal error")
        else:
            if status.code is grpc.StatusCode.UNAVAILABLE:
                log.warning("%s unavailable: %s", method, exc)
            await context.abort(status.code, status.details, status.trailing_metadata)

    def _record(
        self, method: str, context: grpc.aio.ServicerContext[Any, Any], started: float, failed: bool
    ) -> None:
        code = context.code()
        if code is None:
            name = "UNKNOWN" if failed else "OK"
        else:
            name = code.name if isinstance(code, grpc.StatusCode) else str(code)
        children = self._children.get((method, name))
        if children is None:
            children = (metrics.REQUESTS.labels(method, name), metrics.REQUEST_SECONDS.labels(method, name))
            self._children[(method, name)] = children
        children[0].inc()
        children[1].observe(time.perf_counter() - started)

    def _unary(self, method: str, inner: Behavior) -> Behavior:
        async def behavior(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            started = time.perf_counter()
            failed = True
            try:
                try:
                    request_id = await self._enter(method, context)
                    with bind(request_id=request_id, method=method, account_id=caller()):
                        self._check_size(request)
                        response = await inner(request, context)
                except (Exception, asyncio.CancelledError) as exc:
                    if isinstance(exc, asyncio.CancelledError | grpc.aio.AbortError):
                        raise
                    await self._fail(exc, context, method)
                failed = False
                return response
            finally:
                self._record(method, context, started, failed)

        return behavior

    def _stream(self, method: str, inner: StreamBehavior) -> StreamBehavior:
        async def behavior(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
            started = time.perf_counter()
            failed = True
            try:
                try:
                    request_id = await self._enter(method, context)
                    with bind(request_id=request_id, method=method, account_id=caller()):
                        self._check_size(request)
                        async for item in inner(request, context):
                            yield item
                except (Exception, asyncio.CancelledError) as exc:
                    if isinstance(exc, asyncio.CancelledError | grpc.aio.AbortError):
                        raise
                    await self._fail(exc, context, method)
                failed = False
            finally:
                self._record(method, context, started, failed)

        return behavior


class _GuardedRegistration:
    """Stands in for the server while generated code registers a service: the method handlers it hands over
    are registered wrapped by the guard as a generic handler and, for the guard's `registered_services` (the
    order path), also for registered-method dispatch.

    Registered methods cost every call: grpc.aio's server keeps one pending request-call future per
    registered method (and one for all generic methods) and waits on all of them (`asyncio.wait`, which adds
    and removes a callback on each) for every call it accepts. The admin service's 14 methods and health are
    rare calls: served through their generic handlers, they no longer cost each order."""

    def __init__(self, guard: RequestGuard, server: grpc.aio.Server) -> None:
        self.guard = guard
        self.server = server
        self.registered = False

    def add_generic_rpc_handlers(self, handlers: Sequence[grpc.GenericRpcHandler]) -> None:
        """Ignored: the same handlers arrive by name in `add_registered_method_handlers`."""

    def add_registered_method_handlers(
        self, service: str, handlers: Mapping[str, grpc.RpcMethodHandler[Any, Any]]
    ) -> None:
        wrapped = {name: self.guard._wrap(f"/{service}/{name}", h) for name, h in handlers.items()}
        self.server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, wrapped),))
        if service in self.guard.registered_services:
            self.server.add_registered_method_handlers(service, wrapped)
        self.registered = True


class GenericOnly:
    """Stands in for the server while generated code registers a public service (health): it is served
    through its generic handler only (see _GuardedRegistration: a registered method costs every
    call)."""

    def __init__(self, server: grpc.aio.Server) -> None:
        self.server = server

    def add_generic_rpc_handlers(self, handlers: Sequence[grpc.GenericRpcHandler]) -> None:
        self.server.add_generic_rpc_handlers(handlers)

    def add_registered_method_handlers(
        self, service: str, handlers: Mapping[str, grpc.RpcMethodHandler[Any, Any]]
    ) -> None:
        """Ignored: the same handlers arrive as a generic handler."""
