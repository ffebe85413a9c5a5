"""Which gRPC services take grpc.aio's registered-method path: only the order path's (each registered method
costs every call the server accepts); the others are served through their generic handlers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

import grpc
from aipx.v1 import admin_pb2, admin_pb2_grpc, oms_pb2_grpc
from aipx_oms.auth import ApiKeyAuthenticator
from aipx_oms.servicer import OMS_SERVICE, GenericOnly, RequestGuard
from grpc_health.v1 import health, health_pb2_grpc


class RecordingServer:
    """What a grpc.aio server is asked to register."""

    def __init__(self) -> None:
        self.generic: list[grpc.GenericRpcHandler] = []
        self.registered: dict[str, list[str]] = {}

    def add_generic_rpc_handlers(self, handlers: Sequence[grpc.GenericRpcHandler]) -> None:
        self.generic.extend(handlers)

    def add_registered_method_handlers(
        self, service: str, handlers: Mapping[str, grpc.RpcMethodHandler[Any, Any]]
    ) -> None:
        self.registered[service] = sorted(handlers)

    def serves(self, path: str) -> bool:
        details = cast(
            grpc.HandlerCallDetails, type("Details", (), {"method": path, "invocation_metadata": ()})
        )
        return any(h.service(details) is not None for h in self.generic)


def test_only_the_order_service_takes_the_registered_method_path() -> None:
    server = RecordingServer()
    guard = RequestGuard(ApiKeyAuthenticator.from_json('{"k": "a"}'))
    target = cast(grpc.aio.Server, server)
    # The generated base servicers answer UNIMPLEMENTED (their stubs mark every method abstract).
    oms: Any = oms_pb2_grpc.OmsServiceServicer
    admin_servicer: Any = admin_pb2_grpc.AdminServiceServicer
    guard.register(oms_pb2_grpc.add_OmsServiceServicer_to_server, oms(), target)
    guard.register(admin_pb2_grpc.add_AdminServiceServicer_to_server, admin_servicer(), target)
    generic_only: Any = GenericOnly(target)
    health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), generic_only)
    assert list(server.registered) == [OMS_SERVICE]
    assert "SubmitOrder" in server.registered[OMS_SERVICE]
    admin = admin_pb2.DESCRIPTOR.services_by_name["AdminService"].full_name
    for path in (f"/{OMS_SERVICE}/SubmitOrder", f"/{admin}/SetTradingState", "/grpc.health.v1.Health/Check"):
        assert server.serves(path), f"{path} is served (generic handler)"
