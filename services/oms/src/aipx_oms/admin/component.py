"""AdminComponent: the admin parts of one OMS process, wired and run together - the LISTEN/NOTIFY feed
(credential caches, account streams, the platform halt), the account queries behind GetAccount, the admin
service with its own guard, and the audit relay to `admin-events`."""

from __future__ import annotations

import contextlib
import logging

import grpc
from aipx.v1 import admin_pb2, admin_pb2_grpc

from aipx_oms.admin.accounts import AccountQueries
from aipx_oms.admin.actions import AdminActions
from aipx_oms.admin.guard import AdminGuard, operator_authenticator
from aipx_oms.admin.notify import AdminNotifier
from aipx_oms.admin.relay import AdminEventRelay
from aipx_oms.admin.servicer import AdminServicer
from aipx_oms.auth import ApiKeyAuthenticator
from aipx_oms.service import OrderService
from aipx_oms.settings import OmsSettings
from aipx_oms.store.admin import NOTIFY_ACCOUNT, NOTIFY_LEDGER, NOTIFY_PLATFORM, platform_halt
from aipx_oms.store.errors import StoreUnavailableError
from aipx_oms.store.postgres import OmsStore

log = logging.getLogger(__name__)

ADMIN_SERVICE_NAME = admin_pb2.DESCRIPTOR.services_by_name["AdminService"].full_name


class AdminComponent:
    """See the module docstring. `api_keys` is the OMS guard's authenticator (invalidated on revocation)."""

    def __init__(
        self,
        settings: OmsSettings,
        store: OmsStore,
        service: OrderService,
        api_keys: ApiKeyAuthenticator,
    ) -> None:
        self.settings = settings
        self.store = store
        self.service = service  # in the server: the leader gate (the current term's OrderService)
        self.platform_halted = False
        self.notifier = AdminNotifier(settings.postgres.dsn.get_secret_value())
        if settings.api_key_source == "postgres":
            self.notifier.feed(api_keys)
        self.accounts = AccountQueries(store.pool, service, settings.valuation_asset)
        self.notifier.on(NOTIFY_ACCOUNT, self.accounts.changed)
        # Ledger entries wake the account streams; the order path has them in memory already (operator
        # entries go through it: usecases.entries; the venue reconciler re-reads the account it adjusts).
        self.notifier.on(NOTIFY_LEDGER, self.accounts.changed)
        self.notifier.on(NOTIFY_PLATFORM, lambda _: self.load_platform())
        self.notifier.on_connect(self.load_platform)
        self.relay = AdminEventRelay(store.pool, settings.kafka, topic=settings.admin_events_topic)
        self.actions = AdminActions(
            store.pool, service, on_audit=self.relay.wake, on_platform=self._platform_set
        )

    def _platform_set(self, halted: bool) -> None:
        self.platform_halted = halted
        with contextlib.suppress(StoreUnavailableError):  # a standby has no order service: set at takeover
            self.service.platform_halted = halted
        self.accounts.platform_changed()

    async def load_platform(self) -> None:
        """Read the platform halt (at start, on NOTIFY, after reconnecting)."""
        async with self.store.pool.acquire() as conn:
            halted, reason = await platform_halt(conn)
        if halted != self.platform_halted:
            log.warning("platform %s%s", "HALTED" if halted else "resumed", f": {reason}" if reason else "")
        self._platform_set(halted)

    def register(self, server: grpc.aio.Server) -> list[str]:
        """Add the admin service (when enabled) to `server`; the service names to reflect."""
        s = self.settings
        if not s.admin_enabled:
            return []
        operators = operator_authenticator(
            self.store,
            s.admin_tokens.get_secret_value() if s.admin_tokens is not None else None,
            failures_per_minute=s.auth_failures_per_minute,
            lookups_per_s=s.auth_lookups_per_s,
        )
        self.notifier.feed_operators(operators)
        guard = AdminGuard(operators, max_request_bytes=s.max_request_bytes)
        guard.register(admin_pb2_grpc.add_AdminServiceServicer_to_server, AdminServicer(self.actions), server)
        return [ADMIN_SERVICE_NAME]

    async def start(self) -> None:
        await self.load_platform()
        await self.notifier.start()
        await self.relay.start()

    async def stop(self) -> None:
        await self.relay.stop()
        await self.notifier.stop()
