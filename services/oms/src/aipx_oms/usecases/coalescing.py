"""Coalescer: concurrent identical requests (same account and key) do the work once and share its outcome."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar, cast

T = TypeVar("T")


class Coalescer:
    """Runs `work` once per key among concurrent callers."""

    def __init__(self) -> None:
        self._inflight: dict[tuple[str, str], asyncio.Future[object]] = {}

    async def run(self, key: tuple[str, str], work: Callable[[], Awaitable[T]]) -> tuple[T, bool]:
        """Run `work` once for concurrent identical requests; (result, True) for the one that ran it."""
        running = self._inflight.get(key)
        if running is not None:
            result = await asyncio.shield(running)
            return cast(T, result), False
        future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            value = await work()
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: only concurrent duplicates care
            raise
        else:
            future.set_result(value)
            return value, True
        finally:
            del self._inflight[key]
