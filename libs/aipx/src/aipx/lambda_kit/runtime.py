"""One asyncio event loop per process, reused across warm invocations, for sync Lambda handlers.

Lambda handlers are synchronous; the platform's Kafka and Redis clients are asyncio. `AsyncRuntime` runs a
private event loop in a daemon thread and executes coroutines on it with `run(coro)` (from any thread but
the loop's own), so a producer started once (`await runtime.producer()`) survives between invocations of a
warm container instead of being reconnected per invocation.
"""

from __future__ import annotations

import asyncio
import atexit
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from aiokafka import AIOKafkaProducer

from aipx.kafka.clients import DeadLetterPublisher, Publisher, create_producer
from aipx.settings import KafkaSettings

T = TypeVar("T")


class AsyncRuntime:
    """A persistent event loop plus lazily-started, shared Kafka clients."""

    def __init__(self, kafka: KafkaSettings | None = None, *, client_id: str = "lambda") -> None:
        self._kafka = kafka
        self._client_id = client_id
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._producer: AIOKafkaProducer | None = None
        self._producer_lock: asyncio.Lock | None = None

    @property
    def kafka(self) -> KafkaSettings:
        """The Kafka settings in use (read from the environment on first use unless given)."""
        if self._kafka is None:
            self._kafka = KafkaSettings()
        return self._kafka

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._loop.is_closed():
                loop = asyncio.new_event_loop()
                ready = threading.Event()

                def serve() -> None:
                    asyncio.set_event_loop(loop)
                    loop.call_soon(ready.set)
                    loop.run_forever()

                thread = threading.Thread(target=serve, name="aipx-async-runtime", daemon=True)
                thread.start()
                ready.wait()
                self._loop, self._thread = loop, thread
            return self._loop

    def run(self, coro: Coroutine[Any, Any, T], *, timeout: float | None = None) -> T:
        """Run `coro` on the runtime's loop and return its result (re-raising its exception)."""
        loop = self._ensure_loop()
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("AsyncRuntime.run() called from its own event loop thread (would deadlock)")
        return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout)

    async def producer(self) -> AIOKafkaProducer:
        """The shared producer (idempotent, acks=all), started on first use. Call on the runtime's loop."""
        if self._producer_lock is None:
            self._producer_lock = asyncio.Lock()
        async with self._producer_lock:
            if self._producer is None:
                producer = create_producer(self.kafka, client_id=self._client_id)
                await producer.start()
                self._producer = producer
            return self._producer

    async def publisher(self) -> Publisher:
        """A protobuf `Publisher` on the shared producer."""
        return Publisher(await self.producer())

    async def dead_letters(self, consumer: str) -> DeadLetterPublisher:
        """A `DeadLetterPublisher` on the shared producer; `consumer` names who dead-lettered (headers)."""
        return DeadLetterPublisher(await self.producer(), consumer=consumer)

    async def _shutdown(self) -> None:
        if self._producer is not None:
            producer, self._producer = self._producer, None
            await producer.stop()

    def close(self, timeout: float = 10.0) -> None:
        """Flush and stop the shared clients, then stop the loop (idempotent)."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or loop.is_closed() or thread is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(timeout)
        finally:
            self._producer_lock = None
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout)
            if not thread.is_alive():
                loop.close()


_default: AsyncRuntime | None = None
_default_lock = threading.Lock()


def default_runtime() -> AsyncRuntime:
    """The process-wide runtime handlers share (created on first use, closed at exit)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = AsyncRuntime()
            atexit.register(_default.close)
        return _default


def set_default_runtime(runtime: AsyncRuntime) -> AsyncRuntime | None:
    """Replace the process-wide runtime (tests pointing at another broker); returns the previous one."""
    global _default
    with _default_lock:
        previous, _default = _default, runtime
        atexit.register(runtime.close)
        return previous
