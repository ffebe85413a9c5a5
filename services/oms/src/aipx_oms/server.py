"""Wiring and running the OMS: OmsApp builds every part from OmsSettings; serve() runs it until a signal.

Hot standby: every OMS process on a database starts the same way (gRPC, ops endpoint, market data, outbox
relay), then competes for the writer lock (store/leadership.py). The winner *leads*: it builds the term's
parts (writer on the lock session, venues, order service, reconciliation) and turns SERVING. The others are
standbys: gRPC health of aipx.v1.OmsService NOT_SERVING, /readyz 503, /healthz 200, OmsService calls
UNAVAILABLE; each polls the lock every leader_poll_s and takes over when the leader is gone. A leader whose
session is lost turns NOT_SERVING at once; it continues when the same term can be resumed, or goes back to
standby when another process led since (fenced). SIGTERM: stop taking requests, finish in-flight ones, flush
the outbox relay, release the lock, exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
from collections.abc import Sequence
from typing import Any

import grpc
from aipx.aio import cancel_and_wait
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
from aipx_oms.servicer import GenericOnly, OmsServicer, RequestGuard
from aipx_oms.settings import OmsSettings
from aipx_oms.store.errors import StoreUnavailableError
from aipx_oms.store.leadership import LeaderSession, SessionLimits, SessionState
from aipx_oms.store.migrations import migrate
from aipx_oms.store.postgres import OmsStore
from aipx_oms.store.writer import CommittedEvent, GroupCommitWriter
from aipx_oms.venues.base import ExecutionVenue
from aipx_oms.venues.market_data import MarketDataCache, MarketDataFeed
from aipx_oms.venues.registry import build_venues
from aipx_oms.wire import event_payload

log = logging.getLogger(__name__)

SERVICE_NAME = oms_pb2.DESCRIPTOR.services_by_name["OmsService"].full_name
# For load balancers that judge a target by a gRPC status code alone (the AWS ALB sends an empty request to a
# path and matches the code): OK while this process leads, UNAVAILABLE while it is a standby. The standard
# health service answers OK with NOT_SERVING for a standby, which such a balancer would count as healthy.
LEADER_CHECK_SERVICE = "aipx.oms.Leader"
LEADER_CHECK_PATH = f"/{LEADER_CHECK_SERVICE}/Check"


class LeaderOnly:
    """What the servicer calls: the leading term's OrderService, or UNAVAILABLE while this is a standby."""

    __slots__ = ("current",)

    def __init__(self) -> None:
        self.current: OrderService | None = None

    def __getattr__(self, name: str) -> Any:
        service = self.current
        if service is None:
            raise StoreUnavailableError("this OMS process is a standby; another process leads (retry)")
        return getattr(service, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "current":
            object.__setattr__(self, name, value)
            return
        service = self.current
        if service is None:
            raise StoreUnavailableError("this OMS process is a standby; another process leads (retry)")
        setattr(service, name, value)


class OmsApp:
    """The OMS process's parts, started in dependency order and stopped in reverse.

    Process-long parts: store (reads), Redis limiter, market data, outbox relay, gRPC server, ops endpoint.
    Parts of a leadership term (built when this process leads, dropped when it stops leading): the writer,
    the venues and the order service."""

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
        self.session = LeaderSession(
            self.dsn,
            holder=f"{socket.gethostname()}:{os.getpid()}",
            limits=SessionLimits(
                timeout_s=settings.leader_session_timeout_s, heartbeat_s=settings.leader_heartbeat_s
            ),
        )
        self.gate = LeaderOnly()
        self.terms = 0  # leadership terms this process has led
        self._leading = asyncio.Event()
        self._fenced = asyncio.Event()
        self._election: asyncio.Task[None] | None = None
        self._health_updates: set[asyncio.Task[None]] = set()
        self.admin: AdminComponent | None = None

    @property
    def leading(self) -> bool:
        """This process leads and its leader session is up (what readiness and health report)."""
        return self.gate.current is not None and self.writer is not None and self.writer.connected

    def _on_commit(self, events: Sequence[CommittedEvent]) -> None:
        self.bus.publish(events)
        if self.relay is not None:
            self.relay.wake()

    async def start(self, *, wait_leader: bool = True) -> int:
        """Start the process-long parts and the election; returns the bound gRPC port. With wait_leader,
        return only once this process leads (a single process on a database leads at once)."""
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
        self.limiter = RedisTokenBucket.from_url(
            s.redis.url.get_secret_value(), s.redis_key_prefix, lease_s=s.rate_limit_lease_s
        )
        self.feed = MarketDataFeed(
            self.market, topic=s.market_data_topic, settings=s.kafka, offset_reset=s.market_data_offset_reset
        )
        await self.feed.start()
        if s.relay_enabled:
            self.relay = OutboxRelay.from_settings(self.store, s)
            await self.relay.start()
        self.port = await self._start_grpc()
        if self.with_ops:
            self.ops = OpsServer(s.metrics)
            self.ops.add_check("leader", lambda: self.leading)
            self.ops.add_check("postgres", self.store.ping)
            self.ops.add_check("redis", self.limiter.ping)
            await self.ops.start()
        self._election = asyncio.create_task(self._elect(), name="oms-election")
        if wait_leader:
            await self.wait_leader()
        return self.port

    async def wait_leader(self, timeout_s: float | None = None) -> None:
        """Wait until this process leads (raises what ended the election, or TimeoutError)."""
        assert self._election is not None
        leading = asyncio.ensure_future(self._leading.wait())
        try:
            await asyncio.wait(
                (leading, self._election), timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            await cancel_and_wait(leading, what="leadership wait")
        if self._election.done():
            self._election.result()
            raise RuntimeError("the OMS election ended")
        if not self._leading.is_set():
            raise TimeoutError(f"not leading after {timeout_s}s")

    async def _elect(self) -> None:
        """Standby until the writer lock is ours; lead until fenced; repeat."""
        poll_s = self.settings.leader_poll_s
        waiting = False
        while True:
            try:
                won = await self.session.acquire()
            except StoreUnavailableError as exc:
                log.warning("standby: cannot try the writer lock (%s)", exc)
                won = False
            except Exception:  # never leave the process without an election
                log.exception("standby: trying the writer lock failed")
                won = False
            if not won:
                if not waiting:
                    log.info("standby: another OMS process leads; trying the writer lock every %.2fs", poll_s)
                    waiting = True
                await asyncio.sleep(poll_s)
                continue
            waiting = False
            try:
                await self._promote()
            except Exception:
                log.exception("taking over failed; back to standby")
                await self._demote()
                await asyncio.sleep(poll_s)
                continue
            await self._fenced.wait()
            log.warning("fenced: another OMS process led since this one lost its session; back to standby")
            await self._demote()

    async def _promote(self) -> None:
        """Build this term's parts on the lock session, reconcile, then serve."""
        s = self.settings
        assert self.store is not None and self.limiter is not None
        self._fenced.clear()
        self.bus = EventBus()  # the term's live streams; closed when the term ends
        self.writer = GroupCommitWriter(
            self.dsn,
            encode_event=event_payload,
            max_ops=s.batch_max_ops,
            linger_s=s.batch_linger_ms / 1000,
            on_commit=self._on_commit,
            session=self.session,
            on_session=self._on_session,
        )
        await self.writer.start()
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
            await venue.start(self.service.on_report, self.service.room)
        if self.admin is not None:
            self.service.platform_halted = self.admin.platform_halted
        await self.service.start(refresh_s=s.account_refresh_s)
        if self.writer.fenced:  # lost the term while reconciling
            raise StoreUnavailableError("fenced while taking over")
        self.gate.current = self.service
        self.terms += 1
        await self._set_serving(self.leading)
        self._leading.set()
        log.info(
            "leading (term %s): OMS serving on %s:%s (venues: %s)",
            self.session.term, s.grpc_host, self.port, ", ".join(self.venues),
        )  # fmt: skip

    async def _demote(self) -> None:
        """Stop serving and drop this term's parts; the lock is released (or already gone)."""
        self._leading.clear()
        self.gate.current = None
        self.bus.close()
        await self._set_serving(False)
        await self._stop_term()

    async def _stop_term(self) -> None:
        for venue in self.venues.values():
            with contextlib.suppress(Exception):
                await venue.stop()
        self.venues = {}
        if self.service is not None:
            await self.service.stop()
            self.service = None
        if self.writer is not None:
            with contextlib.suppress(Exception):
                await self.writer.stop()  # releases the lock
            self.writer = None
        await self.session.release()

    def _on_session(self, state: SessionState) -> None:
        """The writer's view of the leader session: health follows it at once."""
        if state is SessionState.FENCED:
            self._fenced.set()
        elif state is SessionState.LOST:
            log.warning("leader session lost: NOT_SERVING until it is back (or another process leads)")
        task = asyncio.get_running_loop().create_task(self._set_serving(self.leading))
        self._health_updates.add(task)
        task.add_done_callback(self._health_updates.discard)

    async def _set_serving(self, serving: bool) -> None:
        answer = health_pb2.HealthCheckResponse
        status = answer.SERVING if serving else answer.NOT_SERVING
        await self.health.set("", status)
        await self.health.set(SERVICE_NAME, status)

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

    async def _leader_check(self, _request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        if not self.leading:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "standby: another OMS process leads")
        return b""

    async def _start_grpc(self) -> int:
        s = self.settings
        options = [
            ("grpc.max_receive_message_length", s.max_message_bytes),
            ("grpc.max_send_message_length", 16 * 1024 * 1024),
            ("grpc.so_reuseport", 0),
        ]
        server = grpc.aio.server(options=options)
        guard = RequestGuard(self._authenticator(), max_request_bytes=s.max_request_bytes)
        # Admin service + GetAccount/StreamAccount + credential invalidation (aipx_oms.admin). The servicers
        # reach the order service through the gate: UNAVAILABLE while standby.
        assert self.store is not None
        self.admin = AdminComponent(s, self.store, self.gate, guard.auth)  # type: ignore[arg-type]
        admin_services = self.admin.register(server)
        await self.admin.start()
        servicer = OmsServicer(self.gate, self.admin.accounts)  # type: ignore[arg-type]
        guard.register(oms_pb2_grpc.add_OmsServiceServicer_to_server, servicer, server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, GenericOnly(server))  # type: ignore[arg-type]
        server.add_generic_rpc_handlers(
            (
                grpc.method_handlers_generic_handler(
                    LEADER_CHECK_SERVICE, {"Check": grpc.unary_unary_rpc_method_handler(self._leader_check)}
                ),
            )
        )
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
        await self._set_serving(False)
        await server.start()
        self.server = server
        return port

    async def stop(self, grace_s: float | None = None) -> None:
        """Stop taking requests, let in-flight ones finish (grace), flush the outbox relay, release the writer
        lock (a standby takes over), close connections."""
        s = self.settings
        grace = s.shutdown_grace_s if grace_s is None else grace_s
        await cancel_and_wait(self._election, what="OMS election")
        with contextlib.suppress(Exception):
            await self.health.enter_graceful_shutdown()
        self.bus.close()  # live streams end (UNAVAILABLE) instead of holding the shutdown for the whole grace
        if self.server is not None:
            await self.server.stop(grace)
        was_leading = self.gate.current is not None
        self.gate.current = None
        self._leading.clear()
        if self.admin is not None:
            await self.admin.stop()
        for venue in self.venues.values():
            with contextlib.suppress(Exception):
                await venue.stop()
        self.venues = {}
        if self.service is not None:
            await self.service.stop()
            self.service = None
        if was_leading:
            await self._flush_outbox(s.shutdown_flush_s)
        if self.writer is not None:
            await self.writer.stop()  # commits what is queued, then releases the lock
            self.writer = None
        await self.session.release()
        if self.relay is not None:
            await self.relay.stop()
        if self.feed is not None:
            await self.feed.stop()
        if self.limiter is not None:
            await self.limiter.close()
        if self.store is not None:
            await self.store.close()
        if self.ops is not None:
            await self.ops.stop()
        await cancel_and_wait(*self._health_updates, what="health updates")

    async def _flush_outbox(self, timeout_s: float) -> None:
        """Let this process's relay publish what was committed (bounded: Kafka may be down)."""
        if self.relay is None or self.store is None or timeout_s <= 0:
            return
        loop = asyncio.get_running_loop()
        until = loop.time() + timeout_s
        pending = -1
        while loop.time() < until and self.relay.leader:
            try:
                pending, _ = await self.store.outbox_lag()
            except Exception as exc:  # the database is gone: nothing more to flush from here
                log.warning("outbox not flushed: %s", exc)
                return
            if pending == 0:
                return
            self.relay.wake()
            await asyncio.sleep(0.02)
        if pending:
            log.warning("stopping with %d events in the outbox (the next relay publishes them)", pending)


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
    await app.start(wait_leader=False)
    await stop.wait()
    log.info("shutting down")
    await app.stop()
