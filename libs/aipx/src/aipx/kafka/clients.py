"""aiokafka producer/consumer factories with the platform's settings, and a typed protobuf publisher.

Producers are idempotent with acks=all (no acknowledged record is lost or duplicated by producer retries),
compressed and batched (linger + batch size from KafkaSettings). Consumers never auto-commit: callers commit
what they have processed.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import inspect
import logging
import os
import socket
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

import aiokafka
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, codec
from aiokafka.abc import AbstractTokenProvider
from aiokafka.helpers import create_ssl_context
from aiokafka.partitioner import DefaultPartitioner, murmur2
from aiokafka.producer.message_accumulator import BatchBuilder, MessageAccumulator, MessageBatch
from aiokafka.structs import RecordMetadata
from google.protobuf.message import Message

from aipx.ids import now_ns
from aipx.serde import Encoded, Headers, dead_letter_headers, encode
from aipx.settings import KafkaSettings

log = logging.getLogger(__name__)


def client_config(settings: KafkaSettings, *, client_id: str) -> dict[str, Any]:
    """Connection settings common to producers, consumers and admin clients."""
    config: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap_servers,
        "client_id": f"{settings.client_id_prefix}-{client_id}-{socket.gethostname()}-{os.getpid()}",
        "security_protocol": settings.security_protocol,
        "request_timeout_ms": settings.request_timeout_ms,
    }
    if settings.security_protocol in ("SSL", "SASL_SSL"):
        config["ssl_context"] = create_ssl_context()
    if settings.sasl_mechanism == "OAUTHBEARER":
        # Amazon MSK IAM authentication: short-lived tokens signed with the task/function role.
        config["sasl_mechanism"] = "OAUTHBEARER"
        config["sasl_oauth_token_provider"] = MskIamTokenProvider(settings.aws_region)
    elif settings.sasl_mechanism:
        config["sasl_mechanism"] = settings.sasl_mechanism
        config["sasl_plain_username"] = settings.sasl_username
        config["sasl_plain_password"] = (
            settings.sasl_password.get_secret_value() if settings.sasl_password else None
        )
    return config


class MskIamTokenProvider(AbstractTokenProvider):  # type: ignore[misc]
    """SASL/OAUTHBEARER tokens for Amazon MSK IAM auth (aws-msk-iam-sasl-signer), reused until expiry."""

    def __init__(self, region: str) -> None:
        self.region = region
        self._token: str | None = None
        self._expires_ms = 0

    async def token(self) -> str:
        if self._token is None or time.time() * 1000 > self._expires_ms - 60_000:
            from aws_msk_iam_sasl_signer import MSKAuthTokenProvider

            token, expiry_ms = await asyncio.to_thread(MSKAuthTokenProvider.generate_auth_token, self.region)
            self._token, self._expires_ms = str(token), int(expiry_ms)
        return self._token


class CachedKeyPartitioner:
    """aiokafka's default partitioner (murmur2, the Java client's mapping) with each key's hash cached.

    Keys repeat (one per instrument or account), and murmur2 is pure Python in aiokafka: caching it takes a
    per-record cost off hot producers. Records without a key are spread as by the default partitioner.
    """

    def __init__(self, max_keys: int = 100_000) -> None:
        self.max_keys = max_keys
        self._hashes: dict[bytes, int] = {}

    def __call__(self, key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
        if key is None:
            partition: int = DefaultPartitioner()(key, all_partitions, available)
            return partition
        hashed = self._hashes.get(key)
        if hashed is None:
            hashed = murmur2(key) & 0x7FFFFFFF
            if len(self._hashes) < self.max_keys:
                self._hashes[key] = hashed
        return all_partitions[hashed % len(all_partitions)]


def producer_config(settings: KafkaSettings, *, client_id: str, **overrides: Any) -> dict[str, Any]:
    """Idempotent, acks=all, compressed, batched producer settings (key hashes cached)."""
    return {
        **client_config(settings, client_id=client_id),
        "enable_idempotence": True,
        "acks": "all",
        "compression_type": settings.compression_type,
        "linger_ms": settings.linger_ms,
        "max_batch_size": settings.max_batch_size,
        "partitioner": CachedKeyPartitioner(),
        **overrides,
    }


def consumer_config(
    settings: KafkaSettings, *, client_id: str, group_id: str | None, **overrides: Any
) -> dict[str, Any]:
    """Manual-commit consumer settings reading only committed data."""
    return {
        **client_config(settings, client_id=client_id),
        "group_id": group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "isolation_level": "read_committed",
        **overrides,
    }


# --- The one seam into aiokafka's private producer internals ---------------------------------------------
# aiokafka has no public hook for how the accumulator drains. `NodeDrainingAccumulator` needs its private
# surface (the accumulator's `_batches`/`_cluster`, a batch's `_linger_time`, the producer's
# `_message_accumulator`), so that surface is checked here, in one place, against the aiokafka version it was
# verified with (pinned in libs/aipx/pyproject.toml). `install_node_draining` only swaps the class in when
# the check passes; otherwise the producer keeps aiokafka's own accumulator (correct, just more produce
# requests) and says why. tests/foundation/test_aiokafka_seam.py fails loudly when an upgrade changes it.
AIOKAFKA_VERIFIED = "0.14.0"


def node_draining_unfit(producer: AIOKafkaProducer) -> str | None:
    """Why `NodeDrainingAccumulator` cannot replace this producer's accumulator (None: it can)."""
    if aiokafka.__version__ != AIOKAFKA_VERIFIED:
        return f"aiokafka {aiokafka.__version__} is not the verified {AIOKAFKA_VERIFIED}"
    accumulator = getattr(producer, "_message_accumulator", None)
    if type(accumulator) is not MessageAccumulator:
        return f"the producer's accumulator is {type(accumulator).__name__}, not MessageAccumulator"
    missing = [name for name in ("_batches", "_cluster") if not hasattr(accumulator, name)]
    if missing:
        return f"MessageAccumulator has no {', '.join(missing)}"
    drain = vars(MessageAccumulator).get("drain_by_nodes")
    if drain is None:
        return "MessageAccumulator.drain_by_nodes is gone"
    parameters = list(inspect.signature(drain).parameters)
    if parameters != ["self", "ignore_nodes", "muted_partitions"]:
        return f"MessageAccumulator.drain_by_nodes{tuple(parameters)} changed"
    if not callable(getattr(MessageBatch, "remaining_linger", None)):
        return "MessageBatch.remaining_linger is gone"
    if "_linger_time" not in MessageBatch.__init__.__code__.co_names:
        return "MessageBatch no longer keeps _linger_time"
    return None


def install_node_draining(producer: AIOKafkaProducer) -> bool:
    """Make `producer` drain per broker (NodeDrainingAccumulator) when the seam fits; True if it does."""
    reason = node_draining_unfit(producer)
    if reason is not None:
        log.warning("producer keeps aiokafka's accumulator (no per-broker draining): %s", reason)
        return False
    producer._message_accumulator.__class__ = NodeDrainingAccumulator
    return True


class NodeDrainingAccumulator(MessageAccumulator):  # type: ignore[misc]
    """aiokafka's accumulator, draining like the Java producer: once one partition's batch on a broker is
    ready (its linger is over, or it is full), the batches of all that broker's partitions go in the same
    produce request, instead of each partition's batch waiting for its own linger to end.

    aiokafka sends only the batches whose own linger is over, so with records spread over many partitions at
    a moderate rate every produce request carries one or two records (each request costs ~0.3 ms of Python
    in aiokafka). Lingering still bounds the latency of every record; batches only leave earlier. Installed
    only through `install_node_draining` (the seam above).
    """

    def drain_by_nodes(
        self, ignore_nodes: Any, muted_partitions: Any = frozenset()
    ) -> tuple[dict[int, dict[Any, Any]], bool]:
        waiting = []
        ready_nodes = set()
        for tp, batches in self._batches.items():
            if not batches or tp in muted_partitions:
                continue
            leader = self._cluster.leader_for_partition(tp)
            if leader is None or leader == -1 or (ignore_nodes and leader in ignore_nodes):
                continue
            if batches[0].remaining_linger() is None:
                ready_nodes.add(leader)
            else:
                waiting.append((leader, batches[0]))
        for leader, batch in waiting:
            if leader in ready_nodes:
                batch._linger_time = 0  # sendable now, with its node's ready batch
        drained: tuple[dict[int, dict[Any, Any]], bool]
        drained = super().drain_by_nodes(ignore_nodes, muted_partitions)
        return drained


# aiokafka compresses a record batch with its module-level `lz4_encode(data)` at level 9 and has no setting
# for the level: the record batch builders (the Cython one and the pure-Python fallback) look the function
# up in their module's globals, so the level is set there. The output is the same LZ4 frame format (blocks
# independent, no content checksum: what Kafka's KIP-57 framing requires); only the compressor's effort
# differs. Process-wide: every producer of the process compresses at the last level installed.
_LZ4_BUILDER_MODULES = ("aiokafka.record.default_records", "aiokafka.record._crecords.default_records")
_lz4_level: int | None = None


def install_lz4_level(level: int) -> bool:
    """Make aiokafka's record batches compress with LZ4 at `level`; False (and a warning) if the seam does
    not fit this aiokafka, which then keeps its own level."""
    global _lz4_level
    if level == _lz4_level:
        return True
    if aiokafka.__version__ != AIOKAFKA_VERIFIED:
        log.warning("LZ4 stays at aiokafka's level: aiokafka %s is not the verified %s",
                    aiokafka.__version__, AIOKAFKA_VERIFIED)  # fmt: skip
        return False
    modules = [importlib.import_module(name) for name in _LZ4_BUILDER_MODULES]
    unfit = [m.__name__ for m in modules if getattr(m, "lz4_encode", None) is None]
    if unfit or inspect.signature(codec.lz4_encode).parameters.keys() != {"payload", "level"}:
        log.warning("LZ4 stays at aiokafka's level: its codec changed (%s)", ", ".join(unfit) or "lz4_encode")
        return False
    if _lz4_level is not None:
        log.warning("LZ4 level changed from %d to %d for every producer of this process", _lz4_level, level)
    encode_at_level = functools.partial(codec.lz4_encode, level=level)
    for module in modules:
        module.lz4_encode = encode_at_level  # type: ignore[attr-defined]
    _lz4_level = level
    return True


def create_producer(
    settings: KafkaSettings | None = None, *, client_id: str, **overrides: Any
) -> AIOKafkaProducer:
    """A producer configured from the settings (call `await producer.start()`), draining per broker, with
    LZ4 at the settings' level."""
    settings = settings or KafkaSettings()
    config = producer_config(settings, client_id=client_id, **overrides)
    producer = AIOKafkaProducer(**config)
    install_node_draining(producer)
    if config["compression_type"] == "lz4":
        install_lz4_level(settings.lz4_level)
    return producer


def create_consumer(
    *topics: str,
    settings: KafkaSettings | None = None,
    client_id: str,
    group_id: str | None,
    **overrides: Any,
) -> AIOKafkaConsumer:
    """A consumer subscribed to `topics` (none: assign partitions yourself)."""
    config = consumer_config(settings or KafkaSettings(), client_id=client_id, group_id=group_id, **overrides)
    return AIOKafkaConsumer(*topics, **config)


class Publisher:
    """Publishes protobuf messages with the standard headers through one shared producer."""

    def __init__(self, producer: AIOKafkaProducer) -> None:
        self.producer = producer

    async def send(
        self,
        topic: str,
        key: bytes,
        message: Message,
        *,
        event_id: str,
        event_time_ns: int,
        trace_id: str | None = None,
    ) -> asyncio.Future[RecordMetadata]:
        """Enqueue a message; returns the delivery future (resolves once the broker acknowledged it).

        Awaiting this coroutine applies backpressure: it blocks while the producer's buffer is full.
        """
        record = encode(message, event_id=event_id, event_time_ns=event_time_ns, trace_id=trace_id)
        future: asyncio.Future[RecordMetadata] = await self.producer.send(
            topic, record.value, key=key, headers=record.headers, timestamp_ms=event_time_ns // 1_000_000
        )
        return future

    async def publish(
        self,
        topic: str,
        key: bytes,
        message: Message,
        *,
        event_id: str,
        event_time_ns: int,
        trace_id: str | None = None,
    ) -> RecordMetadata:
        """Send and wait for the broker's acknowledgement."""
        future = await self.send(
            topic, key, message, event_id=event_id, event_time_ns=event_time_ns, trace_id=trace_id
        )
        return await future


T = TypeVar("T")


class BatchPublisher(Generic[T]):
    """Publishes many records with one aiokafka record batch per partition instead of one `send` per record.

    `add` appends an encoded record to the open batch of its partition (the key -> partition mapping of
    `producer_config`'s partitioner, i.e. the Java client's), together with a caller's token; `flush` hands
    the batches to the producer (`send_batch`) and reports each submitted batch's delivery future with the
    tokens of its records. It is the same producer with the same guarantees: idempotent, acks=all,
    compressed, retrying per batch, sequence numbers assigned when batches are drained. Batches are
    submitted closed, so the producer sends them at once: the caller decides when a batch is complete (the
    ingestion sink lingers before it takes one). It costs about a third of `send`'s CPU per record (one
    coroutine and future per batch, not per record).

    `flush` waits while a partition already has a batch queued in the producer (that is the backpressure);
    if it raises (the producer is closed, or could not take a batch within its request timeout), the batches
    not yet submitted stay here and the next `flush` submits them.
    """

    def __init__(self, producer: AIOKafkaProducer, topic: str) -> None:
        self.producer = producer
        self.topic = topic
        self._partitioner = CachedKeyPartitioner()
        self._partitions: list[int] = []
        self._checked = 0.0
        self._open: dict[int, tuple[BatchBuilder, list[T]]] = {}
        self._ready: deque[tuple[int, BatchBuilder, list[T]]] = deque()

    @property
    def pending(self) -> int:
        """Records added and not yet submitted."""
        return sum(len(t) for _, t in self._open.values()) + sum(len(t) for _, _, t in self._ready)

    def discard(self) -> int:
        """Forget the records not yet submitted; returns how many there were."""
        count = self.pending
        self._open.clear()
        self._ready.clear()
        return count

    async def prepare(self) -> None:
        """Load the topic's partitions (waits for metadata the first time, then rereads the producer's cached
        metadata at most once a second); call before `add`s."""
        now = time.monotonic()
        if self._partitions and now - self._checked < 1.0:
            return
        partitions = await self.producer.partitions_for(self.topic)
        self._checked = now
        if len(partitions) != len(self._partitions):
            self._partitions = sorted(partitions)

    def add(self, key: bytes, record: Encoded, timestamp_ms: int, token: T) -> None:
        """Append a record to its partition's open batch (after `prepare`)."""
        partitions = self._partitions
        if not partitions:
            raise RuntimeError("BatchPublisher.prepare() must run before add()")
        partition = self._partitioner(key, partitions, partitions)
        batch = self._open.get(partition)
        if batch is None:
            batch = self._open[partition] = (self.producer.create_batch(), [])
        builder, tokens = batch
        value, headers = record.value, record.headers
        if builder.append(timestamp=timestamp_ms, key=key, value=value, headers=headers) is None:
            # Full: it is submitted as it is, and the record opens the partition's next batch (a record larger
            # than a whole batch still goes, alone in its batch, as with `send`).
            self._ready.append((partition, builder, tokens))
            builder = self.producer.create_batch()
            tokens = []
            self._open[partition] = (builder, tokens)
            if builder.append(timestamp=timestamp_ms, key=key, value=value, headers=headers) is None:
                raise ValueError(f"record of {len(value)} bytes does not fit in an empty batch")
        tokens.append(token)

    async def flush(
        self, submitted: Callable[[asyncio.Future[Any], list[T]], None] | None = None
    ) -> list[asyncio.Future[Any]]:
        """Submit every batch; returns their delivery futures, and calls `submitted(future, tokens)` for each
        batch as it is queued (so that a caller learns what went out even when a later batch fails)."""
        for partition, (builder, tokens) in self._open.items():
            self._ready.append((partition, builder, tokens))
        self._open.clear()
        ready = self._ready
        futures: list[asyncio.Future[Any]] = []
        while ready:
            partition, builder, tokens = ready[0]
            builder.close()
            future = await self.producer.send_batch(builder, self.topic, partition=partition)
            ready.popleft()
            futures.append(future)
            if submitted is not None:
                submitted(future, tokens)
        return futures


class DeadLetterPublisher:
    """Sends records that cannot be processed to a dead-letter topic, raw bytes kept, error in headers."""

    def __init__(self, producer: AIOKafkaProducer, *, consumer: str) -> None:
        self.producer = producer
        self.consumer = consumer

    async def publish(
        self,
        dlq_topic: str,
        *,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes]] | None,
        error: BaseException | str,
        topic: str,
        partition: int,
        offset: int,
    ) -> RecordMetadata:
        """Dead-letter one record and wait for the acknowledgement."""
        dlq_headers: Headers = dead_letter_headers(
            headers,
            error=error,
            topic=topic,
            partition=partition,
            offset=offset,
            consumer=self.consumer,
            time_ns=now_ns(),
        )
        future = await self.producer.send(dlq_topic, value, key=key, headers=dlq_headers)
        result: RecordMetadata = await future
        return result
