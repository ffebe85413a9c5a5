"""WebSocket connection management for one venue connection (a fixed set of streams).

- reconnect with exponential backoff, jitter and a cap (tenacity); a connection that ends before it stayed
  healthy for `healthy_after_s` counts as a failed attempt, so a venue that accepts and drops again is not
  hammered every half second: the backoff resets only after a connection stayed up that long;
- WebSocket ping/pong keepalive (the library answers the venue's pings; ours detect dead peers), plus the
  venue's application-level ping where it needs one (Bybit);
- a stale-feed watchdog: no frame at all for `stale_after_s` while the reader is not held back by our own
  backpressure -> the connection is dropped and reopened;
- proactive rotation before the venue's connection lifetime (Binance: 24 h): make-before-break, the new
  connection is opened and subscribed before the old one is closed (the normalizer drops the overlap);
- staggered subscribe requests (venues limit incoming messages per second).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from aipx.aio import cancel_and_wait, wait_event

# picows' websockets-compatible API: the same client as `websockets`, its frame reader in Cython.
from picows.websockets import ClientConnection, ConnectionClosed, WebSocketException, connect
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential
from tenacity import wait_random_exponential as _full_jitter
from tenacity.wait import wait_base

from aipx_ingestion.metrics import IngestionMetrics
from aipx_ingestion.venues.base import FeedAdapter

log = logging.getLogger(__name__)

_YIELD_EVERY = 16

FrameHandler = Callable[[str | bytes, int], Awaitable[bool]]
"""Handles one frame (with its receive time); returns True if the frame answered a (un)subscribe request."""


@dataclass(frozen=True, slots=True)
class ConnectionPolicy:
    """Timing rules of a connection (from IngestionSettings)."""

    reconnect_initial_s: float = 0.5
    reconnect_max_s: float = 30.0
    open_timeout_s: float = 10.0
    ping_interval_s: float = 20.0
    ping_timeout_s: float = 60.0
    stale_after_s: float = 30.0
    rotate_after_s: float | None = None
    subscribe_interval_s: float = 0.25
    max_frame_bytes: int = 8 * 1024 * 1024
    healthy_after_s: float = 30.0
    """A connection that ended sooner counts as a failed attempt (the backoff keeps growing)."""
    ssl_context: ssl.SSLContext | None = None
    """For wss:// URLs: the TLS context (None: the system's trusted CAs, hostname checked)."""


def equal_jitter(initial_s: float, cap_s: float) -> wait_base:
    """Attempt n waits half of min(cap, initial * 2^(n-1)) plus a random part of up to the other half.

    The fixed half keeps a floor under the delay; the random half spreads many clients' reconnects apart.
    """
    return wait_exponential(multiplier=initial_s / 2, max=cap_s / 2) + _full_jitter(
        multiplier=initial_s / 2, max=cap_s / 2
    )


class _EndedEarly(Exception):
    """A connection ended before it had stayed healthy for `healthy_after_s`."""


_RETRYABLE = (OSError, TimeoutError, WebSocketException, _EndedEarly)


class _Session:
    """One open WebSocket with its reader, pinger and watchdog."""

    def __init__(self, ws: ClientConnection, owner: FeedConnection) -> None:
        self.ws = ws
        self.owner = owner
        self.opened = time.monotonic()
        self.last_frame = self.opened
        self.in_handler = False
        self.stop_reading = False
        self.replies = 0
        self.expected_replies = 0
        self.subscribed = asyncio.Event()
        self.end_reason = "closed"
        self.tasks: list[asyncio.Task[None]] = []
        self.done = asyncio.Event()

    def start(self) -> None:
        self.tasks.append(asyncio.create_task(self._read(), name=f"{self.owner.name}-read"))
        self.tasks.append(asyncio.create_task(self._watch(), name=f"{self.owner.name}-watch"))
        if self.owner.adapter.app_ping_interval_s:
            self.tasks.append(asyncio.create_task(self._app_ping(), name=f"{self.owner.name}-ping"))

    def end(self, reason: str) -> None:
        if not self.done.is_set():
            self.end_reason = reason
            self.done.set()

    async def _read(self) -> None:
        handler = self.owner.on_frame
        frames = 0
        try:
            async for frame in self.ws:
                frames += 1
                if not frames % _YIELD_EVERY:
                    # Frames already buffered are returned without suspending: let the producer run.
                    await asyncio.sleep(0)
                self.last_frame = time.monotonic()
                self.in_handler = True
                if await handler(frame, time.time_ns()):
                    self.replies += 1
                    if self.replies >= self.expected_replies:
                        self.subscribed.set()
                self.in_handler = False
                if self.stop_reading:
                    return
            self.end("closed_by_venue")
        except ConnectionClosed as exc:
            self.end(f"closed_{exc.rcvd.code if exc.rcvd else 'abnormally'}")
        except Exception:  # a bug in a handler must not kill the feed silently: log, reconnect
            log.exception("%s: frame handler failed", self.owner.name)
            self.end("handler_error")

    async def _watch(self) -> None:
        policy = self.owner.policy
        tick = min(1.0, policy.stale_after_s / 4)
        while not self.done.is_set():
            await asyncio.sleep(tick)
            now = time.monotonic()
            if self.in_handler:
                # Held back by our own backpressure: the venue is not stale, we are not reading.
                self.last_frame = now
            elif now - self.last_frame > policy.stale_after_s:
                log.warning("%s: no frame for %.1fs, reconnecting", self.owner.name, now - self.last_frame)
                self.end("stale")
            if policy.rotate_after_s is not None and now - self.opened > policy.rotate_after_s:
                self.end("rotate")

    async def _app_ping(self) -> None:
        interval = self.owner.adapter.app_ping_interval_s or 20.0
        while not self.done.is_set():
            await asyncio.sleep(interval)
            ping = self.owner.adapter.app_ping()
            if ping is not None:
                with contextlib.suppress(ConnectionClosed):
                    await self.ws.send(ping)

    async def close(self, grace_s: float = 5.0) -> None:
        """Stop reading after the frame in hand (it may be waiting for buffer space), then close."""
        self.end(self.end_reason)
        self.stop_reading = True
        reader = self.tasks[0] if self.tasks else None
        if reader is not None and self.in_handler:
            await asyncio.wait({reader}, timeout=grace_s)
        current = asyncio.current_task()
        await cancel_and_wait(*(t for t in self.tasks if t is not current), what="websocket session")
        try:
            async with asyncio.timeout(0.5):
                await self.ws.close()
        except Exception:  # the venue did not complete the closing handshake in time: drop the socket
            self.ws.transport.disconnect(graceful=False)


class FeedConnection:
    """Keeps one logical venue connection (its streams subscribed) alive until stopped."""

    def __init__(
        self,
        adapter: FeedAdapter,
        streams: Sequence[str],
        *,
        on_frame: FrameHandler,
        on_connect: Callable[[FeedConnection], None],
        policy: ConnectionPolicy,
        metrics: IngestionMetrics,
        name: str,
    ) -> None:
        self.adapter = adapter
        self.streams = list(streams)
        self.on_frame = on_frame
        self.on_connect = on_connect
        self.policy = policy
        self.metrics = metrics
        self.name = name
        self.connected = False
        self._session: _Session | None = None
        self._previous: _Session | None = None  # kept open while its replacement is opened (rotation)
        self._stopping = asyncio.Event()
        self._wait = equal_jitter(policy.reconnect_initial_s, policy.reconnect_max_s)
        self._delay_gauge = metrics.reconnect_delay.labels(name)

    async def _open(self) -> _Session:
        url = self.adapter.connection_url(self.streams)
        ws = await connect(
            url,
            open_timeout=self.policy.open_timeout_s,
            ping_interval=self.policy.ping_interval_s,
            ping_timeout=self.policy.ping_timeout_s,
            close_timeout=2.0,
            max_size=self.policy.max_frame_bytes,
            max_queue=1024,
            compression=None,
            proxy=None,
            ssl=self.policy.ssl_context if url.startswith("wss:") else None,
        )
        session = _Session(ws, self)
        messages = self.adapter.subscribe_messages(self.streams)
        session.expected_replies = len(messages)
        # Start reading before subscribing: acknowledgements and data may arrive between the requests.
        session.start()
        self.on_connect(self)
        for i, message in enumerate(messages):
            if i and self.policy.subscribe_interval_s:
                await asyncio.sleep(self.policy.subscribe_interval_s)
            await ws.send(message)
        # Subscribed means acknowledged: only then may a rotated-out connection be closed without a hole.
        if not await wait_event(session.subscribed, self.policy.open_timeout_s):
            log.warning("%s: %d/%d subscriptions acknowledged after %.0fs; continuing", self.name,
                        session.replies, len(messages), self.policy.open_timeout_s)  # fmt: skip
        return session

    def _count(self, reason: str) -> None:
        self.metrics.reconnects.labels(self.adapter.name, reason).inc()

    async def run(self) -> None:
        """Connect, and reconnect or rotate as needed, until stop() is called."""
        try:
            while not self._stopping.is_set():
                retrying = AsyncRetrying(
                    wait=self._wait,
                    retry=retry_if_exception_type(_RETRYABLE),
                    sleep=self._sleep,
                    before_sleep=self._before_sleep,
                    reraise=True,
                )
                outcome: Literal["stopped", "rotate", "ended"] = "stopped"
                async for attempt in retrying:
                    with attempt:
                        outcome = await self._serve_once()
                if outcome == "ended":  # stayed healthy, then ended: a fresh backoff from the first delay
                    await self._sleep(self._first_delay())
        finally:
            open_sessions = {id(s): s for s in (self._previous, self._session) if s is not None}
            for s in open_sessions.values():
                await s.close()
                self.metrics.connections.labels(self.adapter.name).dec()
            self._session = self._previous = None
            self.connected = False

    async def _serve_once(self) -> Literal["stopped", "rotate", "ended"]:
        """Open a connection and serve it until it ends; _EndedEarly if it ended before being healthy."""
        if self._stopping.is_set():
            return "stopped"
        try:
            session = await self._open()
        except _RETRYABLE as exc:
            self._count("connect_failed")
            log.warning("%s: connect failed (%s)", self.name, exc)
            raise
        if self._previous is not None:
            await self._previous.close()
            self._previous = None
            self.metrics.connections.labels(self.adapter.name).dec()
        self._session = session
        self.connected = True
        self.metrics.connections.labels(self.adapter.name).inc()
        stop_wait = asyncio.create_task(self._stopping.wait())
        done_wait = asyncio.create_task(session.done.wait())
        await asyncio.wait({stop_wait, done_wait}, return_when=asyncio.FIRST_COMPLETED)
        await cancel_and_wait(stop_wait, done_wait, what="connection waits")
        if self._stopping.is_set():
            return "stopped"
        reason = session.end_reason
        self._count(reason)
        if reason == "rotate":
            log.info("%s: rotating connection before the venue's lifetime limit", self.name)
            self._previous = session
            return "rotate"
        self.connected = False
        self.metrics.connections.labels(self.adapter.name).dec()
        self._session = None
        await session.close()
        lasted = time.monotonic() - session.opened
        log.warning("%s: connection ended (%s) after %.1fs; reconnecting", self.name, reason, lasted)
        if lasted < self.policy.healthy_after_s:
            raise _EndedEarly(f"{reason} after {lasted:.1f}s")
        return "ended"

    def _first_delay(self) -> float:
        state = RetryCallState(AsyncRetrying(), None, (), {})
        delay = float(self._wait(state))  # attempt_number is 1 on a fresh state
        self._delay_gauge.set(delay)
        return delay

    def _before_sleep(self, state: RetryCallState) -> None:
        delay = state.upcoming_sleep
        self._delay_gauge.set(delay)
        log.warning("%s: attempt %d failed; retry in %.2fs", self.name, state.attempt_number, delay)

    async def _sleep(self, seconds: float) -> None:
        await wait_event(self._stopping, seconds)

    async def send(self, message: str) -> bool:
        """Send a request on the current connection; False if there is none."""
        session = self._session
        if session is None:
            return False
        try:
            await session.ws.send(message)
        except ConnectionClosed:
            return False
        return True

    def stop(self) -> None:
        self._stopping.set()
