"""Wiring and running the OMS: OmsApp builds every part from OmsSettings; serve() runs it until a signal."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Sequence

import grpc
from aipx.ops import OpsServer
from aipx.v1 import oms_pb2, oms_pb2_grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from aipx_oms.admin.component import AdminComponent
from aipx_oms.auth import ApiKeyAuthenticator
from aipx_oms.events import EventBus
from aipx_oms.ratelimit.redis_bucket import RedisTokenBucket
from aipx_oms.relay.outbox import OutboxRelay
from aipx_oms.service import OrderService
from aipx_oms.servicer import OmsServicer, RequestGuard
from aipx_oms.settings import OmsSettings
from aipx_oms.store.migrations import migrate
from aipx_oms.store.postgres import OmsStore
from aipx_oms.store.writer import CommittedEvent, GroupCommitWriter
from aipx_oms.venues.base import ExecutionVenue
from aipx_oms.venues.market_data import MarketDataCache, MarketDataFeed
from aipx_oms.venues.registry import build_venues

log = logging.getLogger(__name__)

SERVICE_NAME = oms_pb2.DESCRIPTOR.services_by_name["OmsService"].full_name


class OmsApp:
    """The OMS process's parts, started in dependency order and stopped in reverse."""

    def __init__(self, settings: OmsSettings, *, with_ops: bool = True) -> None:
        self.settings = settings
        self.with_ops = with_ops
        self.dsn = settings.postgres.dsn.get_secret_value()
        self.port: int | None = None
        self.store: OmsStore | None = None
        self.writer: GroupCommitWriter | None = None
        self.limiter: RedisTokenBucket | None = None
        self.market = MarketDataCache(settings.paper_market_data_venue)
        self.feed: MarketDataFeed | None = None
        self.venues: dict[str, ExecutionVenue] = {}
        self.service: OrderService | None = None
        self.relay: OutboxRelay | None = None
        self.bus = EventBus()
        self.server: grpc.aio.Server | None = None
        self.health = health.aio.HealthServicer()
        self.ops: OpsServer | None = None
        self.admin: AdminComponent | None = None

    def _on_commit(self, events: Sequence[CommittedEvent]) -> None:
        self.bus.publish(events)
        if self.relay is not None:
            self.relay.wake()

    async def start(self) -> int:
        """Start everything; returns the bound gRPC port."""
        s = self.settings
        if s.migrate_on_start:
            applied = await migrate(self.dsn, s.migrations_dir)
            if applied:
                log.info("migrations applied: %s", ", ".join(applied))
        self.store = await OmsStore.connect(
            self.dsn,
            min_size=s.postgres.min_pool_size,
            max_size=s.postgres.max_pool_size,
            command_timeout_s=s.postgres.command_timeout_s,
        )
        self.writer = GroupCommitWriter(
            self.dsn, max_ops=s.batch_max_ops, linger_s=s.batch_linger_ms / 1000, on_commit=self._on_commit
        )
        await self.writer.start()
        self.limiter = RedisTokenBucket.from_url(
            s.redis.url.get_secret_value(), s.redis_key_prefix, lease_s=s.rate_limit_lease_s
        )
        self.feed = MarketDataFeed(
            self.market, topic=s.market_data_topic, settings=s.kafka, offset_reset=s.market_data_offset_reset
        )
        await self.feed.start()
        self.venues = build_venues(s, self.market)
        self.service = OrderService(
            s,
            store=self.store,
            writer=self.writer,
            limiter=self.limiter,
            market=self.market,
            venues=self.venues,
            bus=self.bus,
        )
        for venue in self.venues.values():
            await venue.start(self.service.on_report)
        await self.service.start(refresh_s=s.account_refresh_s)
        if s.relay_enabled:
            self.relay = OutboxRelay.from_settings(self.store, s)
            await self.relay.start()
        self.port = await self._start_grpc()
        if self.with_ops:
            self.ops = OpsServer(s.metrics)
            self.ops.add_check("postgres", self.store.ping)
            self.ops.add_check("writer", lambda: self.writer is not None and self.writer.connected)
            self.ops.add_check("redis", self.limiter.ping)
            await self.ops.start()
        log.info("OMS serving on %s:%s (venues: %s)", s.grpc_host, self.port, ", ".join(self.venues))
        return self.port

    def _authenticator(self) -> ApiKeyAuthenticator:
        s = self.settings
        if s.api_key_source == "env":
            assert s.api_keys is not None
            return ApiKeyAuthenticator.from_json(s.api_keys.get_secret_value())
        assert self.store is not None
        return ApiKeyAuthenticator(
            self.store.account_for_key,
            ttl_s=s.api_key_cache_ttl_s,
            failures_per_minute=s.auth_failures_per_minute,
            lookups_per_s=s.auth_lookups_per_s,
        )

    async def _start_grpc(self) -> int:
        s = self.settings
        assert self.service is not None
        options = [
            ("grpc.max_receive_message_length", s.max_message_bytes),
            ("grpc.max_send_message_length", 16 * 1024 * 1024),
            ("grpc.so_reuseport", 0),
        ]
        server = grpc.aio.server(options=options)
        guard = RequestGuard(self._authenticator(), max_request_bytes=s.max_request_bytes)
        # Admin service + GetAccount/StreamAccount + credential invalidation (aipx_oms.admin).
        assert self.store is not None
        self.admin = AdminComponent(s, self.store, self.service, guard.auth)
        admin_services = self.admin.register(server)
        await self.admin.start()
        servicer = OmsServicer(self.service, self.admin.accounts)
        guard.register(oms_pb2_grpc.add_OmsServiceServicer_to_server, servicer, server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        reflection.enable_server_reflection(
            (SERVICE_NAME, *admin_services, reflection.SERVICE_NAME, health.SERVICE_NAME), server
        )
        address = f"{s.grpc_host}:{s.grpc_port}"
        if s.tls_cert_file is not None and s.tls_key_file is not None:
            credentials = grpc.ssl_server_credentials(
                [(s.tls_key_file.read_bytes(), s.tls_cert_file.read_bytes())],
                root_certificates=s.tls_client_ca_file.read_bytes() if s.tls_client_ca_file else None,
                require_client_auth=s.tls_client_ca_file is not None,
            )
            port = server.add_secure_port(address, credentials)
        else:
            port = server.add_insecure_port(address)
        await server.start()
        self.server = server
        await self.health.set("", health_pb2.HealthCheckResponse.SERVING)
        await self.health.set(SERVICE_NAME, health_pb2.HealthCheckResponse.SERVING)
        return port

    async def stop(self, grace_s: float | None = None) -> None:
        """Stop taking requests, let in-flight ones finish (grace), flush writes, close connections."""
        grace = self.settings.shutdown_grace_s if grace_s is None else grace_s
        with contextlib.suppress(Exception):
            await self.health.enter_graceful_shutdown()
        if self.server is not None:
            await self.server.stop(grace)
        if self.relay is not None:
            await self.relay.stop()
        if self.admin is not None:
            await self.admin.stop()
        for venue in self.venues.values():
            with contextlib.suppress(Exception):
                await venue.stop()
        if self.service is not None:
            await self.service.stop()
        if self.writer is not None:
            await self.writer.stop()
        if self.feed is not None:
            await self.feed.stop()
        if self.limiter is not None:
            await self.limiter.close()
        if self.store is not None:
            await self.store.close()
        if self.ops is not None:
            await self.ops.stop()


async def run_relay(settings: OmsSettings | None = None) -> None:
    """Run only the outbox relay (a separate process/container next to OMS replicas with
    AIPX_OMS_RELAY_ENABLED=false); one relay publishes at a time (advisory lock)."""
    s = settings or OmsSettings()
    dsn = s.postgres.dsn.get_secret_value()
    store = await OmsStore.connect(
        dsn, min_size=1, max_size=2, command_timeout_s=s.postgres.command_timeout_s
    )
    relay = OutboxRelay.from_settings(store, s)
    ops = OpsServer(s.metrics)
    ops.add_check("postgres", store.ping)
    ops.add_check("leader", lambda: relay.leader)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await relay.start()
    await ops.start()
    await stop.wait()
    await relay.stop()
    await ops.stop()
    await store.close()


async def serve(settings: OmsSettings | None = None) -> None:
    """Run the OMS until SIGTERM/SIGINT, then shut down gracefully."""
    app = OmsApp(settings or OmsSettings())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await app.start()
    await stop.wait()
    log.info("shutting down")
    await app.stop()
