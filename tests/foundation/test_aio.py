"""aipx.aio: waiting on events and stopping tasks without ever hanging a shutdown.

The case behind it: on Python 3.11, a loop around `asyncio.wait_for(event.wait(), t)` that is cancelled while
the event is being set swallows the cancellation and runs on; an OMS test's teardown hung on such a relay loop
in CI. `cancel_and_wait` cancels again until the task ends, and gives up (logged) instead of hanging.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import pytest
from aipx.aio import cancel_and_wait, wait_event


async def test_wait_event_reports_whether_the_event_was_set() -> None:
    event = asyncio.Event()
    started = time.monotonic()
    assert await wait_event(event, 0.05) is False
    assert time.monotonic() - started >= 0.04
    asyncio.get_running_loop().call_later(0.01, event.set)
    assert await wait_event(event, 5) is True
    assert await wait_event(event, 0) is True  # already set: no wait at all
    event.clear()
    assert await wait_event(event, -1) is False  # a deadline already past: no error


async def test_a_wait_event_loop_stops_at_the_first_cancellation_even_as_the_event_is_set() -> None:
    wake = asyncio.Event()
    rounds = 0

    async def relay() -> None:
        nonlocal rounds
        while True:
            await wait_event(wake, 0.5)
            wake.clear()
            rounds += 1

    task = asyncio.create_task(relay())
    await asyncio.sleep(0.01)
    wake.set()  # the race of the CI hang: woken and cancelled in the same loop iteration
    await asyncio.sleep(0)
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=2)
    assert done == {task} and task.cancelled()


async def test_cancel_and_wait_cancels_again_a_task_that_swallowed_its_cancellation() -> None:
    swallowed = 0

    async def stubborn() -> None:
        nonlocal swallowed
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                swallowed += 1
                if swallowed >= 3:
                    raise  # gives in at the third cancellation

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0)
    started = time.monotonic()
    assert await cancel_and_wait(task, None, timeout_s=5) is True
    assert task.cancelled() and swallowed == 3
    assert time.monotonic() - started < 2.5  # re-cancelled every 0.5 s, not after the whole timeout


async def test_cancel_and_wait_gives_up_after_its_timeout_and_says_which_task(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stop = asyncio.Event()

    async def immortal() -> None:
        while not stop.is_set():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(3600)

    task = asyncio.create_task(immortal(), name="immortal-loop")
    await asyncio.sleep(0)
    with caplog.at_level(logging.ERROR, logger="aipx.aio"):
        assert await cancel_and_wait(task, timeout_s=0.3, what="test relay") is False
    assert not task.done()
    assert "test relay: 1 task(s) still running" in caplog.text and "immortal-loop" in caplog.text
    stop.set()
    task.cancel()
    await asyncio.wait({task}, timeout=2)
    assert task.done()


async def test_a_task_that_failed_before_the_stop_is_logged_not_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken() -> None:
        raise RuntimeError("lost the connection")

    failed = asyncio.create_task(broken())
    finished = asyncio.create_task(asyncio.sleep(0))
    await asyncio.sleep(0.01)
    with caplog.at_level(logging.WARNING, logger="aipx.aio"):
        assert await cancel_and_wait(failed, finished, what="writer") is True
    assert "writer ended with an error while stopping: RuntimeError('lost the connection')" in caplog.text
