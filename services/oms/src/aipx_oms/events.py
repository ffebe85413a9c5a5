"""EventBus: committed order events fanned out to live StreamOrderEvents subscribers, in log order."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from aipx_oms.store.errors import StoreUnavailableError
from aipx_oms.store.writer import CommittedEvent

OVERFLOW = None  # put on a subscriber's queue when it fell behind: it re-reads from the database


class _Closed:
    """Put on a subscriber's queue when this process stops leading: no more events will come from here."""


_CLOSED = _Closed()


class SubscriptionQueue(asyncio.Queue[CommittedEvent | None]):
    """A subscriber's queue; get() raises StoreUnavailableError once the bus is closed, which ends the stream
    with UNAVAILABLE: the client resumes from its last log sequence at the leader."""

    async def get(self) -> CommittedEvent | None:
        item: Any = await super().get()
        if item is _CLOSED:
            self.put_nowait(cast(Any, _CLOSED))  # every later get() fails too
            raise StoreUnavailableError("this OMS process stopped leading; resume the stream at the leader")
        return cast(CommittedEvent | None, item)


@dataclass(eq=False)
class Subscription:
    account_id: str
    queue: SubscriptionQueue = field(default_factory=lambda: SubscriptionQueue(maxsize=10_000))
    overflowed: bool = False


class EventBus:
    """Delivers each committed event to its account's subscriptions (the writer calls it after commit)."""

    def __init__(self) -> None:
        self._subs: dict[str, set[Subscription]] = {}
        self.closed = False

    def subscribe(self, account_id: str) -> Subscription:
        sub = Subscription(account_id)
        if self.closed:
            _close(sub)
        self._subs.setdefault(account_id, set()).add(sub)
        return sub

    def close(self) -> None:
        """This process stopped leading (or is stopping): end every live stream (UNAVAILABLE)."""
        self.closed = True
        for subs in self._subs.values():
            for sub in subs:
                _close(sub)

    def unsubscribe(self, sub: Subscription) -> None:
        subs = self._subs.get(sub.account_id)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subs[sub.account_id]

    def publish(self, events: Sequence[CommittedEvent]) -> None:
        if not self._subs:
            return
        for committed in events:
            for sub in self._subs.get(committed.event.order.account_id, ()):
                if sub.overflowed:
                    continue
                try:
                    sub.queue.put_nowait(committed)
                except asyncio.QueueFull:
                    # Drop everything queued: the subscriber re-reads from its last delivered event.
                    sub.overflowed = True
                    while not sub.queue.empty():
                        sub.queue.get_nowait()
                    sub.queue.put_nowait(OVERFLOW)


def _close(sub: Subscription) -> None:
    while not sub.queue.empty():
        sub.queue.get_nowait()
    sub.queue.put_nowait(cast(Any, _CLOSED))
