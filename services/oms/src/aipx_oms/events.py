"""EventBus: committed order events fanned out to live StreamOrderEvents subscribers, in log order."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

from aipx_oms.store.writer import CommittedEvent

OVERFLOW = None  # put on a subscriber's queue when it fell behind: it re-reads from the database


@dataclass(eq=False)
class Subscription:
    account_id: str
    queue: asyncio.Queue[CommittedEvent | None] = field(default_factory=lambda: asyncio.Queue(maxsize=10_000))
    overflowed: bool = False


class EventBus:
    """Delivers each committed event to its account's subscriptions (the writer calls it after commit)."""

    def __init__(self) -> None:
        self._subs: dict[str, set[Subscription]] = {}

    def subscribe(self, account_id: str) -> Subscription:
        sub = Subscription(account_id)
        self._subs.setdefault(account_id, set()).add(sub)
        return sub

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
