"""WebSocket connection management for one venue connection (a fixed set of streams).

Frames are handled synchronously in picows' native `on_ws_frame` callback: no coroutine, no queue and no
lock per frame. Backpressure pauses the socket's reading (`pause_reading`): the venue sees TCP backpressure
and the frames of one connection stay in order without a lock.

- reconnect with exponential backoff, jitter and a cap (tenacity); a connection that ends before it stayed
  healthy for `healthy_after_s` counts as a failed attempt, so a venue that accepts and drops again is not
  hammered every half second: the backoff resets only after a connection stayed up that long;
- WebSocket ping/pong keepalive (picows answers the venue's pings; its periodic pings detect dead peers),
  plus the venue's application-level ping where it needs one (Bybit);
- a stale-feed watchdog: no frame at all for `stale_after_s` while reading is not paused by our own
  backpressure -> the connection is dropped and reopened;
- proactive rotation before the venue's connection lifetime (Binance: 24 h): make-before-break, the new
  connection is opened and subscribed before the old one is closed (the normalizer drops the overlap);
- staggered subscribe requests (venues limit incoming messages per second).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import picows
from aipx.aio import cancel_and_wait, wait_event
from picows import WSAutoPingStrategy, WSCloseCode, WSFrame, WSMsgType, WSTransport
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential
from tenacity import wait_random_exponential as _full_jitter
from tenacity.wait import wait_base

from aipx_ingestion.metrics import IngestionMetrics
from aipx_ingestion.venues.base import FeedAdapter

log = logging.getLogger(__name__)

FrameHandler = Callable[[bytes, int], bool]
"""Handles one frame (with its receive time) synchronously; True if it answered a (un)subscribe request."""


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
    receive_buffer_bytes: int = 256 * 1024
    """The socket's kernel receive buffer (SO_RCVBUF). Frames are handled synchronously, a whole read at a
    time: with the kernel's autotuned buffer (megabytes) one read at full speed held tens of thousands of
    frames, blocked the event loop (and the producer) for a quarter of a second and all went to the held
    list. This bounds one read, and what a paused connection can still deliver."""


def equal_jitter(initial_s: float, cap_s: float) -> wait_base:
    """Attempt n waits half of min(cap, initial * 2^(n-1)) plus a random part of up to the other half.

    The fixed half keeps a floor under the delay; the random half spreads many clients' reconnects apart.
    """
    return wait_exponential(multiplier=initial_s / 2, max=cap_s / 2) + _full_jitter(
        multiplier=initial_s / 2, max=cap_s / 2
    )


class _EndedEarly(Exception):
    """A connection ended before it had stayed healthy for `healthy_after_s`."""


_RETRYABLE = (OSError, TimeoutError, picows.WSError, _EndedEarly)
_NORMAL_CLOSE = frozenset({WSCloseCode.OK, WSCloseCode.GOING_AWAY})
_TEXT, _BINARY, _CONTINUATION = WSMsgType.TEXT, WSMsgType.BINARY, WSMsgType.CONTINUATION
_CLOSE, _PING = WSMsgType.CLOSE, WSMsgType.PING
_DATA = (_TEXT, _BINARY)


class _Session(picows.WSListener):
    """One open WebSocket: its frames handled in picows' callback, its app-level pinger and watchdog."""

    def __init__(self, owner: FeedConnection) -> None:
        super().__init__()
        self.owner = owner
        self.handler = owner.on_frame
        self.transport: WSTransport | None = None
        self.opened = time.monotonic()
        self.frames = 0
        self.paused = False
        self.stop_reading = False
        self.replies = 0
        self.expected_replies = 0
        self.subscribed = asyncio.Event()
        self.end_reason = "closed"
        self.tasks: list[asyncio.Task[None]] = []
        self.done = asyncio.Event()
        self._fragments: list[bytes] | None = None
        self._fragments_size = 0

    # -- picows callbacks (the event loop's thread, synchronous) ----------------------------------------

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport
        if self.owner.paused:
            self.pause()

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        msg_type = frame.msg_type
        if msg_type in _DATA:
            if not frame.fin:  # the first fragment of a message
                self._fragments = [frame.get_payload_as_bytes()]
                self._fragments_size = frame.payload_size
                return
            payload = frame.get_payload_as_bytes()
        elif msg_type == _CONTINUATION:
            if self._fragments is None:
                self._protocol_error(transport, "unexpected continuation frame")
                return
            self._fragments.append(frame.get_payload_as_bytes())
            self._fragments_size += frame.payload_size
            if self._fragments_size > self.owner.policy.max_frame_bytes:
                self._protocol_error(transport, "message too big", WSCloseCode.MESSAGE_TOO_BIG)
                return
            if not frame.fin:
                return
            payload = b"".join(self._fragments)
            self._fragments = None
        elif msg_type == _CLOSE:
            code = frame.get_close_code()
            self.end("closed_by_venue" if code in _NORMAL_CLOSE else f"closed_{code.value}")
            if not transport.is_close_frame_sent:  # the venue's reply to ours needs none
                transport.send_close(code)
            transport.disconnect()
            return
        elif msg_type == _PING:  # auto-pong is on; kept for a peer's ping arriving while it is off
            return
        else:  # pongs (picows' keepalive consumes its own)
            return
        self.frames += 1
        if self.stop_reading:
            return
        try:
            if self.handler(payload, time.time_ns()):
                self.replies += 1
                if self.replies >= self.expected_replies:
                    self.subscribed.set()
        except Exception:  # a bug in a handler must not kill the feed silently: log, reconnect
            log.exception("%s: frame handler failed", self.owner.name)
            self.end("handler_error")
            transport.disconnect(graceful=False)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        # A close frame from the venue set the reason already; otherwise the socket went away (or our
        # keepalive gave up waiting for a pong).
        self.end("closed_abnormally")

    def _protocol_error(
        self, transport: WSTransport, why: str, code: WSCloseCode = WSCloseCode.PROTOCOL_ERROR
    ) -> None:
        log.warning("%s: %s; closing", self.owner.name, why)
        self._fragments = None
        self.end(f"closed_{code.value}")
        transport.send_close(code)
        transport.disconnect(graceful=False)

    # -- control -----------------------------------------------------------------------------------------

    def pause(self) -> None:
        """Stop reading the socket (the frames already read are still handled)."""
        transport = self.transport
        if not self.paused and transport is not None and not transport.is_disconnected:
            self.paused = True
            transport.underlying_transport.pause_reading()

    def resume(self) -> None:
        transport = self.transport
        if self.paused and transport is not None:
            self.paused = False
            if not transport.is_disconnected:
                transport.underlying_transport.resume_reading()

    def send(self, message: str) -> bool:
        transport = self.transport
        if transport is None or transport.is_disconnected or transport.is_close_frame_sent:
            return False
        transport.send(_TEXT, message.encode())
        return True

    def start(self) -> None:
        self.tasks.append(asyncio.create_task(self._watch(), name=f"{self.owner.name}-watch"))
        if self.owner.adapter.app_ping_interval_s:
            self.tasks.append(asyncio.create_task(self._app_ping(), name=f"{self.owner.name}-ping"))

    def end(self, reason: str) -> None:
        if not self.done.is_set():
            self.end_reason = reason
            self.done.set()

    async def _watch(self) -> None:
        policy = self.owner.policy
        tick = min(1.0, policy.stale_after_s / 4)
        last_frame, seen = time.monotonic(), self.frames
        while not self.done.is_set():
            await asyncio.sleep(tick)
            now = time.monotonic()
            if self.paused or self.frames != seen:
                # Frames came, or we are not reading (our own backpressure): the venue is not stale.
                last_frame, seen = now, self.frames
            elif now - last_frame > policy.stale_after_s:
                log.warning("%s: no frame for %.1fs, reconnecting", self.owner.name, now - last_frame)
                self.end("stale")
            if policy.rotate_after_s is not None and now - self.opened > policy.rotate_after_s:
                self.end("rotate")

    async def _app_ping(self) -> None:
        interval = self.owner.adapter.app_ping_interval_s or 20.0
        while not self.done.is_set():
            await asyncio.sleep(interval)
            ping = self.owner.adapter.app_ping()
            if ping is not None:
                self.send(ping)

    async def close(self) -> None:
        """Stop handling frames, then close (the closing handshake, or drop the socket after 0.5 s)."""
        self.end(self.end_reason)
        self.stop_reading = True
        current = asyncio.current_task()
        await cancel_and_wait(*(t for t in self.tasks if t is not current), what="websocket session")
        transport = self.transport
        if transport is None or transport.is_disconnected:
            return
        self.resume()  # the venue's closing frame must be read (frames before it are ignored now)
        try:
            if not transport.is_close_frame_sent:
                transport.send_close(WSCloseCode.OK)
            async with asyncio.timeout(0.5):
                await transport.wait_disconnected()
        except Exception:  # the venue did not complete the closing handshake in time: drop the socket
            transport.disconnect(graceful=False)


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
        self._opening: _Session | None = None
        self.paused = False
        self._previous: _Session | None = None  # kept open while its replacement is opened (rotation)
        self._stopping = asyncio.Event()
        self._wait = equal_jitter(policy.reconnect_initial_s, policy.reconnect_max_s)
        self._delay_gauge = metrics.reconnect_delay.labels(name)

    async def _open(self) -> _Session:
        url = self.adapter.connection_url(self.streams)
        session = self._opening = _Session(self)
        try:
            return await self._connect(session, url)
        finally:
            self._opening = None

    async def _connect(self, session: _Session, url: str) -> _Session:
        policy = self.policy
        async with asyncio.timeout(policy.open_timeout_s):
            await picows.ws_connect(
                lambda: session,
                url,
                ssl_context=policy.ssl_context if url.startswith("wss:") else None,
                websocket_handshake_timeout=policy.open_timeout_s,
                enable_auto_ping=True,
                auto_ping_idle_timeout=policy.ping_interval_s,
                # picows waits for a pong at most until its next ping is due.
                auto_ping_reply_timeout=min(policy.ping_timeout_s, policy.ping_interval_s),
                auto_ping_strategy=WSAutoPingStrategy.PING_PERIODICALLY,
                enable_auto_pong=True,
                max_frame_size=policy.max_frame_bytes,
                socket_factory=self._socket,
            )
        messages = self.adapter.subscribe_messages(self.streams)
        session.expected_replies = len(messages)
        # Frames are handled from now on: acknowledgements and data may arrive between the requests.
        session.start()
        self.on_connect(self)
        for i, message in enumerate(messages):
            if i and policy.subscribe_interval_s:
                await asyncio.sleep(policy.subscribe_interval_s)
            session.send(message)
        # Subscribed means acknowledged: only then may a rotated-out connection be closed without a hole.
        if not await wait_event(session.subscribed, policy.open_timeout_s):
            log.warning("%s: %d/%d subscriptions acknowledged after %.0fs; continuing", self.name,
                        session.replies, len(messages), policy.open_timeout_s)  # fmt: skip
        return session

    async def _socket(self, url: picows.WSParsedURL) -> socket.socket:
        """A TCP socket connected to the venue, its receive buffer bounded (picows wraps it, TLS included)."""
        loop = asyncio.get_running_loop()
        family, kind, proto, _, address = (
            await loop.getaddrinfo(url.host, url.port, type=socket.SOCK_STREAM)
        )[0]
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.policy.receive_buffer_bytes)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setblocking(False)
            await loop.sock_connect(sock, address)
        except BaseException:
            sock.close()
            raise
        return sock

    @property
    def _sessions(self) -> list[_Session]:
        return [s for s in (self._previous, self._session) if s is not None]

    def pause_reading(self) -> None:
        """Stop reading this connection's sockets (backpressure) until resume_reading()."""
        self.paused = True
        for session in self._sessions:
            session.pause()
        if self._opening is not None:
            self._opening.pause()

    def resume_reading(self) -> None:
        self.paused = False
        for session in self._sessions:
            session.resume()
        if self._opening is not None:
            self._opening.resume()

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
        return session is not None and session.send(message)

    def stop(self) -> None:
        self._stopping.set()
