"""MarketDataCache: latest quote and last trade per instrument, fed from `market-data-raw`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from aiokafka.errors import KafkaError
from aipx.aio import cancel_and_wait
from aipx.kafka import create_consumer
from aipx.logs import SampledLogger
from aipx.money import from_pb
from aipx.numbers import InvalidNumberError
from aipx.serde import DecodeError, decode
from aipx.settings import KafkaSettings
from aipx.v1.common_pb2 import Decimal as PbDecimal
from aipx.v1.market_data_pb2 import MarketDataEnvelope

from aipx_oms import metrics
from aipx_oms.domain.risk import MarketSnapshot

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Touch:
    """Best bid/ask with sizes and the last trade of one instrument. `version` changes with every quote."""

    bid: Decimal | None = None
    bid_size: Decimal = Decimal(0)
    ask: Decimal | None = None
    ask_size: Decimal = Decimal(0)
    last_trade: Decimal | None = None
    version: int = 0


MarketListener = Callable[[str, MarketDataEnvelope], None]


class MarketDataCache:
    """Keeps the latest market per symbol and tells listeners (the paper venue) about every update."""

    def __init__(self, venue: str | None = None) -> None:
        self.venue = venue
        self.touches: dict[str, Touch] = {}
        self.listeners: list[MarketListener] = []
        self._bad = SampledLogger(log, every=1000)
        self.malformed = 0
        """Records skipped because a number was malformed or out of range."""

    def snapshot(self, symbol: str) -> MarketSnapshot:
        touch = self.touches.get(symbol)
        if touch is None:
            return MarketSnapshot()
        return MarketSnapshot(last_trade=touch.last_trade, bid=touch.bid, ask=touch.ask)

    def touch(self, symbol: str) -> Touch | None:
        return self.touches.get(symbol)

    def apply(self, envelope: MarketDataEnvelope) -> bool:
        """Update from one envelope; True when it changed a quote or trade (listeners were told).

        Every number of the envelope is parsed (aipx.money.parse_decimal) before anything changes: a record
        with one malformed or non-positive price or a negative size is counted, logged (sampled) and skipped
        whole, so that no listener sees half of it.
        """
        if self.venue and envelope.venue != self.venue:
            return False
        kind = envelope.WhichOneof("payload")
        try:
            if kind == "quote":
                quote = envelope.quote
                bid, ask = (
                    _price(quote.bid_price, "quote.bid_price"),
                    _price(quote.ask_price, "quote.ask_price"),
                )
                bid_size, ask_size = (
                    _size(quote.bid_size, "quote.bid_size"),
                    _size(quote.ask_size, "quote.ask_size"),
                )
                touch = self.touches.setdefault(envelope.symbol, Touch())
                touch.bid, touch.ask, touch.bid_size, touch.ask_size = bid, ask, bid_size, ask_size
                touch.version += 1
            elif kind == "book_snapshot" and envelope.book_snapshot.bids and envelope.book_snapshot.asks:
                best_bid, best_ask = envelope.book_snapshot.bids[0], envelope.book_snapshot.asks[0]
                bid, bid_size = (
                    _price(best_bid.price, "bids[0].price"),
                    _size(best_bid.quantity, "bids[0].quantity"),
                )
                ask, ask_size = (
                    _price(best_ask.price, "asks[0].price"),
                    _size(best_ask.quantity, "asks[0].quantity"),
                )
                touch = self.touches.setdefault(envelope.symbol, Touch())
                touch.bid, touch.ask, touch.bid_size, touch.ask_size = bid, ask, bid_size, ask_size
                touch.version += 1
            elif kind == "trade":
                price = _price(envelope.trade.price, "trade.price")
                _size(envelope.trade.quantity, "trade.quantity")
                self.touches.setdefault(envelope.symbol, Touch()).last_trade = price
            else:
                return False
        except InvalidNumberError as exc:
            self.malformed += 1
            metrics.MARKET_DATA_MALFORMED.inc()
            self._bad.warning("malformed market data %s skipped: %s", envelope.event_id, exc)
            return False
        for listener in self.listeners:
            listener(envelope.symbol, envelope)
        return True


def _price(pb: PbDecimal, field: str) -> Decimal | None:
    """A price: unset (None) or a positive decimal."""
    value = from_pb(pb, field=field)
    if value is not None and value <= 0:
        raise InvalidNumberError(field, f"must be positive, got {value}")
    return value


def _size(pb: PbDecimal, field: str) -> Decimal:
    """A size: unset (0) or a non-negative decimal."""
    value = from_pb(pb, field=field)
    if value is None:
        return Decimal(0)
    if value < 0:
        raise InvalidNumberError(field, f"must not be negative, got {value}")
    return value


class MarketDataFeed:
    """Consumes market data into a MarketDataCache (no consumer group: every partition, no commits)."""

    def __init__(
        self,
        cache: MarketDataCache,
        *,
        topic: str,
        settings: KafkaSettings,
        offset_reset: str = "latest",
        retry_s: float = 2.0,
    ) -> None:
        self.cache = cache
        self.topic = topic
        self.settings = settings
        self.offset_reset = offset_reset
        self.retry_s = retry_s
        self.connected = False
        self._task: asyncio.Task[None] | None = None
        self._bad = SampledLogger(log, every=1000)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="market-data-feed")

    async def stop(self) -> None:
        await cancel_and_wait(self._task, what="market data cache")

    async def _run(self) -> None:
        while True:
            consumer = create_consumer(
                self.topic,
                settings=self.settings,
                client_id="oms-market-data",
                group_id=None,
                auto_offset_reset=self.offset_reset,
            )
            try:
                await consumer.start()
                self.connected = True
                log.info("following market data on %s", self.topic)
                async for record in consumer:
                    try:
                        envelope = decode(
                            record.value,
                            record.headers,
                            MarketDataEnvelope,
                            topic=record.topic,
                            partition=record.partition,
                            offset=record.offset,
                        )
                    except DecodeError as exc:
                        self._bad.warning("skipping undecodable market data: %s", exc)
                        continue
                    self.cache.apply(envelope)
            except KafkaError as exc:
                log.warning("market data consumer failed (%s); retrying in %.1fs", exc, self.retry_s)
            finally:
                self.connected = False
                with contextlib.suppress(Exception):
                    await consumer.stop()
            await asyncio.sleep(self.retry_s)
