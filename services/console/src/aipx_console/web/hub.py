"""Hub: pushes the state's coalesced deltas to every connected browser as server-sent events.

One producer (the push loop) and one bounded queue per browser: a browser that cannot keep up is sent a
fresh snapshot instead of an ever-growing backlog, so a slow tab never slows the others or the feed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

from aipx_console.domain.state import ConsoleState

log = logging.getLogger(__name__)

QUEUE_LIMIT = 64


def sse(event: str, payload: Any) -> bytes:
    """One server-sent event (JSON data on one line)."""
    return f"event: {event}\ndata: {json.dumps(payload, separators=(',', ':'))}\n\n".encode()


class Client:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes] = asyncio.Queue(QUEUE_LIMIT)
        self.resync = False


class Hub:
    def __init__(self, state: ConsoleState, push_interval_s: float) -> None:
        self.state = state
        self.push_interval_s = push_interval_s
        self.clients: set[Client] = set()

    def connect(self) -> tuple[Client, bytes]:
        client = Client()
        self.clients.add(client)
        return client, sse("snapshot", self.state.snapshot(time.time_ns()))

    def disconnect(self, client: Client) -> None:
        self.clients.discard(client)

    def _offer(self, frame: bytes) -> None:
        for client in self.clients:
            if client.resync:
                continue
            try:
                client.queue.put_nowait(frame)
            except asyncio.QueueFull:
                client.resync = True  # its stream sends a new snapshot once it has drained

    async def run(self) -> None:
        """Every push interval: one delta frame if anything changed; every second: the feeds' ages."""
        last_ages = 0.0
        while True:
            await asyncio.sleep(self.push_interval_s)
            now = time.time_ns()
            delta = self.state.delta(now)
            if delta is not None and self.clients:
                self._offer(sse("delta", delta))
            if time.monotonic() - last_ages >= 1.0 and self.clients:
                last_ages = time.monotonic()
                self._offer(sse("ages", self.state.ages(now)))

    def resync_frame(self) -> bytes:
        return sse("snapshot", self.state.snapshot(time.time_ns()))
