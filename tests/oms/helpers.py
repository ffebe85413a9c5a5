"""Test helpers: read a topic to the end, publish market data, a cuttable TCP proxy."""

from __future__ import annotations

import asyncio
import contextlib

from aipx.kafka import Publisher, create_consumer, create_producer
from aipx.serde import decode
from aipx.settings import KafkaSettings
from aipx.v1 import common_pb2
from aipx.v1.market_data_pb2 import MarketDataEnvelope, Quote, Trade
from aipx.v1.orders_pb2 import OrderEvent


async def read_events(
    bootstrap: str, topic: str, *, expect: int, timeout_s: float = 20.0
) -> list[OrderEvent]:
    """Every record of the topic (decoded), waiting until at least `expect` arrived or the timeout."""
    consumer = create_consumer(
        topic, settings=KafkaSettings(bootstrap_servers=bootstrap), client_id="oms-test", group_id=None
    )
    await consumer.start()
    events: list[OrderEvent] = []
    try:
        loop = asyncio.get_running_loop()
        until = loop.time() + timeout_s
        while len(events) < expect and loop.time() < until:
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                for r in records:
                    events.append(decode(r.value, r.headers, OrderEvent))
        # Anything straggling (re-sends) within a short grace.
        for records in (await consumer.getmany(timeout_ms=300)).values():
            events.extend(decode(r.value, r.headers, OrderEvent) for r in records)
    finally:
        await consumer.stop()
    return events


async def publish_market(bootstrap: str, topic: str, envelopes: list[MarketDataEnvelope]) -> None:
    producer = create_producer(KafkaSettings(bootstrap_servers=bootstrap), client_id="oms-test-md")
    await producer.start()
    try:
        publisher = Publisher(producer)
        for i, envelope in enumerate(envelopes):
            await publisher.publish(
                topic,
                f"{envelope.venue}:{envelope.symbol}".encode(),
                envelope,
                event_id=f"md-{i}",
                event_time_ns=i,
            )
    finally:
        await producer.stop()


def quote(symbol: str, bid: str, bid_size: str, ask: str, ask_size: str) -> MarketDataEnvelope:
    return MarketDataEnvelope(
        venue="binance",
        symbol=symbol,
        quote=Quote(
            bid_price=common_pb2.Decimal(value=bid),
            bid_size=common_pb2.Decimal(value=bid_size),
            ask_price=common_pb2.Decimal(value=ask),
            ask_size=common_pb2.Decimal(value=ask_size),
        ),
    )


def trade(symbol: str, price: str, quantity: str = "1") -> MarketDataEnvelope:
    return MarketDataEnvelope(
        venue="binance",
        symbol=symbol,
        trade=Trade(price=common_pb2.Decimal(value=price), quantity=common_pb2.Decimal(value=quantity)),
    )


class CuttableProxy:
    """A TCP proxy to a real server whose link the test can cut (connections dropped, new ones refused)."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.listen_port = 0
        self.open = True
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._armed = False
        self._swallow = False
        self.cuts_after_request = 0

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.listen_port = self._server.sockets[0].getsockname()[1]
        return self.listen_port

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.open:
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(self.host, self.port)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}
        for src, dst, upstream in ((reader, up_writer, True), (up_reader, writer, False)):
            task = asyncio.create_task(self._pipe(src, dst, upstream))
            self._pipes.add(task)
            task.add_done_callback(self._pipes.discard)

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, upstream: bool) -> None:
        with contextlib.suppress(OSError, asyncio.CancelledError):
            while data := await src.read(65536):
                if not upstream and self._swallow:
                    continue  # the server's answer is lost
                dst.write(data)
                await dst.drain()
                if upstream and self._armed:
                    self._armed = False
                    self._swallow = True
                    asyncio.get_running_loop().call_later(self.hold_s, self._cut_after_request)
        dst.close()

    hold_s = 0.3

    def cut_after_next_request(self) -> None:
        """The next request goes through; its answer is lost and the link cut `hold_s` later (the server
        has done the work, the client never learns it): a connection lost during COMMIT."""
        self._armed = True

    def _cut_after_request(self) -> None:
        self.cut()
        self._swallow = False
        self.cuts_after_request += 1
        self.restore()

    def cut(self) -> None:
        self.open = False
        for writer in self._writers:
            writer.transport.abort()
        self._writers.clear()

    def restore(self) -> None:
        self.open = True

    async def stop(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
