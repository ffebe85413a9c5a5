"""The recording HTTP server the notification tests deliver to (standing in for Telegram, Slack and webhook
receivers)."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class Recorder:
    """Records every request; answers from a per-path script of (status, headers, json) then 200."""

    url: str = ""
    received: list[Received] = field(default_factory=list)
    script: dict[str, list[tuple[int, dict[str, str], object]]] = field(default_factory=dict)

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append(
            Received(request.path, {k.lower(): v for k, v in request.headers.items()}, await request.read(),
                     time.monotonic())
        )  # fmt: skip
        queue = self.script.get(request.path)
        if queue:
            status, headers, body = queue.pop(0)
            return web.json_response(body, status=status, headers=headers)
        if request.path.endswith("/sendMessage"):
            return web.json_response({"ok": True, "result": {"message_id": 1}})
        return web.Response(text="ok")

    def at(self, path: str) -> list[Received]:
        return [r for r in self.received if r.path == path]

    def texts(self, path_suffix: str, marker: str) -> list[str]:
        """The "text" of every JSON request to a path ending in `path_suffix` that contains `marker`."""
        texts = [json.loads(r.body)["text"] for r in self.received if r.path.endswith(path_suffix)]
        return [t for t in texts if marker in t]


@pytest.fixture
async def recorder() -> AsyncIterator[Recorder]:
    rec = Recorder()
    app = web.Application()
    app.router.add_route("POST", "/{tail:.*}", rec.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    rec.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
    yield rec
    await runner.cleanup()
