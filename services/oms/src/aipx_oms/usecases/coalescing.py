"""Coalescer: concurrent identical requests (same account and key) do the work once and share its outcome."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar, cast

T = TypeVar("T")


class Coalescer:
    """Runs `work` once per key among concurrent callers."""

    def __init__(self) -> None:
        # Key -> the running work's outcome, created only when a second caller comes (None until then): the
        # usual request, alone with its key, costs no future.
        self._inflight: dict[tuple[str, str], asyncio.Future[object] | None] = {}

    async def run(self, key: tuple[str, str], work: Callable[[], Awaitable[T]]) -> tuple[T, bool]:
        """Run `work` once for concurrent identical requests; (result, True) for the one that ran it."""
        inflight = self._inflight
        if key in inflight:
            running = inflight[key]
            if running is None:
                running = inflight[key] = asyncio.get_running_loop().create_future()
            result = await asyncio.shield(running)
            return cast(T, result), False
        inflight[key] = None
        try:
            value = await work()
        except BaseException as exc:
            waiting = inflight.pop(key)
            if waiting is not None:
                waiting.set_exception(exc)
                waiting.exception()  # retrieved: only concurrent duplicates care
            raise
        waiting = inflight.pop(key)
        if waiting is not None:
            waiting.set_result(value)
        return value, True
