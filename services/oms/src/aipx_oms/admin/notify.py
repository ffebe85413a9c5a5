"""AdminNotifier: one LISTEN connection per OMS process on the admin channel; dispatches each notification
("<kind>:<value>", see aipx_oms.store.admin) to the handlers registered for its kind.

While the connection is down every authenticator it feeds is marked not `live` (so answers are cached at most
a second) and cleared; on (re)connection the caches are cleared again (changes may have been missed) and the
`on_connect` hooks run (e.g. re-read the platform halt). A connection that stops answering is found by a ping
every `ping_every_s` (a cut connection does not always close).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import asyncpg
from aipx.aio import cancel_and_wait, wait_event
from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential

from aipx_oms.auth import ApiKeyAuthenticator
from aipx_oms.store.admin import ADMIN_CHANNEL, NOTIFY_KEY, NOTIFY_OPERATOR

log = logging.getLogger(__name__)

Handler = Callable[[str], Awaitable[None] | None]


class AdminNotifier:
    """See the module docstring."""

    def __init__(self, dsn: str, *, ping_every_s: float = 1.0) -> None:
        self.dsn = dsn
        self.ping_every_s = ping_every_s
        self._handlers: dict[str, list[Handler]] = {}
        self._on_connect: list[Callable[[], Awaitable[None]]] = []
        self._authenticators: list[ApiKeyAuthenticator] = []
        self._task: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Future[None]] = set()
        self.connected = asyncio.Event()

    def on(self, kind: str, handler: Handler) -> None:
        self._handlers.setdefault(kind, []).append(handler)

    def on_connect(self, hook: Callable[[], Awaitable[None]]) -> None:
        self._on_connect.append(hook)

    def feed(self, authenticator: ApiKeyAuthenticator, kind: str = NOTIFY_KEY) -> None:
        """Invalidate `authenticator`'s entry of a credential hash on each `kind` notification."""
        self._authenticators.append(authenticator)
        self.on(kind, lambda value: authenticator.invalidate(bytes.fromhex(value)))

    def feed_operators(self, authenticator: ApiKeyAuthenticator) -> None:
        self.feed(authenticator, NOTIFY_OPERATOR)

    async def start(self, timeout_s: float = 10.0) -> None:
        """Start listening; waits (up to `timeout_s`) for the first connection."""
        self._task = asyncio.create_task(self._run(), name="admin-notifier")
        await wait_event(self.connected, timeout_s)

    async def stop(self) -> None:
        await cancel_and_wait(self._task, *self._pending, what="admin notifier")

    def _set_live(self, live: bool) -> None:
        for authenticator in self._authenticators:
            authenticator.live = live
            authenticator.clear()

    def _dispatch(self, payload: str) -> None:
        kind, _, value = payload.partition(":")
        for handler in self._handlers.get(kind, ()):
            try:
                result = handler(value)
                if result is not None:
                    task = asyncio.ensure_future(result)
                    self._pending.add(task)
                    task.add_done_callback(self._pending.discard)
            except Exception:
                log.exception("admin notification %r: handler failed", payload)

    async def _run(self) -> None:
        async for attempt in AsyncRetrying(
            wait=wait_exponential(multiplier=0.2, max=5),
            retry=retry_if_exception_type(
                (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError, ConnectionError)
            ),
        ):
            with attempt:
                await self._listen()

    async def _listen(self) -> None:
        conn = await asyncpg.connect(self.dsn, timeout=5)
        lost = asyncio.Event()
        conn.add_termination_listener(lambda _: lost.set())
        try:
            await conn.add_listener(ADMIN_CHANNEL, lambda _c, _pid, _ch, payload: self._dispatch(payload))
            self._set_live(True)
            for hook in self._on_connect:
                await hook()
            self.connected.set()
            log.info("listening for admin changes on %s", ADMIN_CHANNEL)
            while not lost.is_set():
                if not await wait_event(lost, self.ping_every_s):
                    await conn.fetchval("SELECT 1", timeout=max(self.ping_every_s, 1.0))
            raise ConnectionError("admin notification connection closed")
        except BaseException as exc:
            self.connected.clear()
            self._set_live(False)
            if not isinstance(exc, asyncio.CancelledError):
                log.warning(
                    "admin notification connection lost (%s); credential caches fall back to 1 s", exc
                )
            raise
        finally:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2):
                    await conn.close()
