"""asyncio helpers every service uses to wait and to stop its tasks.

Python 3.11's `asyncio.wait_for` swallows a cancellation that arrives while the awaited thing completes
(CPython gh-86296, fixed in 3.12): a loop such as `while True: await wait_for(event.wait(), t)` then runs on
after `task.cancel()`, and a `stop()` that awaits the task hangs forever (an OMS test's teardown did, in CI).
So the code waits with `asyncio.timeout` (no inner task, nothing to swallow; `asyncio.wait_for` is banned by
ruff outside the tests), through `wait_event` for events, and stops its tasks with `cancel_and_wait`, which
cancels again until the task ends and never waits without bound.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

log = logging.getLogger(__name__)

RECANCEL_EVERY_S = 0.5


async def wait_event(event: asyncio.Event, timeout_s: float) -> bool:
    """Wait up to `timeout_s` for `event`; True when it is set."""
    if event.is_set():
        return True
    try:
        async with asyncio.timeout(max(timeout_s, 0.0)):
            await event.wait()
    except TimeoutError:
        return False
    return True


async def cancel_and_wait(
    *tasks: asyncio.Future[Any] | None, timeout_s: float = 10.0, what: str = "task"
) -> bool:
    """Cancel `tasks` (None entries are ignored) and wait until they have ended, cancelling again every
    0.5 s in case one swallowed its cancellation, for at most `timeout_s`. A task that ended with an exception
    is logged, not raised (the caller is stopping). True when every task ended; otherwise the ones still
    running are logged and left behind."""
    live = [task for task in tasks if task is not None]
    pending = {task for task in live if not task.done()}
    loop = asyncio.get_running_loop()
    until = loop.time() + timeout_s
    while pending:
        for task in pending:
            task.cancel()
        remaining = until - loop.time()
        if remaining <= 0:
            break
        _, pending = await asyncio.wait(pending, timeout=min(RECANCEL_EVERY_S, remaining))
    for task in live:
        if task.done() and not task.cancelled() and (exc := task.exception()) is not None:
            log.warning("%s ended with an error while stopping: %r", what, exc, exc_info=exc)
    if pending:
        log.error(
            "%s: %d task(s) still running %.1f s after cancellation: %s",
            what,
            len(pending),
            timeout_s,
            ", ".join(sorted(_name(task) for task in pending)),
        )
    return not pending


def _name(task: asyncio.Future[Any]) -> str:
    return task.get_name() if isinstance(task, asyncio.Task) else repr(task)
