"""StreamOrderEvents: an account's events from a log sequence, first from the database, then live from the
in-process bus, without gaps or repeats (the bus falls back to the database when a subscriber overflows)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from aipx_oms.events import OVERFLOW, EventBus
from aipx_oms.store.postgres import OmsStore, StoredEvent

_STREAM_PAGE = 500


class EventStream:
    """The StreamOrderEvents use case (see the module docstring)."""

    def __init__(self, store: OmsStore, bus: EventBus, *, page: int = _STREAM_PAGE) -> None:
        self.store = store
        self.bus = bus
        self.page = page

    async def events(
        self, account_id: str, after: int, symbols: Sequence[str] = (), order_id: str = ""
    ) -> AsyncIterator[tuple[int, bytes]]:
        """The account's events after log sequence `after`: first from the log, then live, without gaps."""
        sub = self.bus.subscribe(account_id)
        wanted = set(symbols)
        try:
            last = after
            while True:
                while True:  # catch up from the database
                    rows: list[StoredEvent] = await self.store.events_after(
                        account_id, last, self.page, symbols=symbols, order_id=order_id
                    )
                    for row in rows:
                        yield row.log_sequence, row.payload
                        last = row.log_sequence
                    if len(rows) < self.page:
                        break
                while True:  # live
                    item = await sub.queue.get()
                    if item is OVERFLOW:
                        sub.overflowed = False
                        break
                    if item.log_sequence <= last:
                        continue
                    last = item.log_sequence
                    if wanted and item.event.order.symbol not in wanted:
                        continue
                    if order_id and item.event.order.order_id != order_id:
                        continue
                    yield item.log_sequence, item.payload
        finally:
            self.bus.unsubscribe(sub)
