"""Ingestion benchmark (not a test): simulator -> ingestion -> Kafka, against its ceiling and its peer.

In one run:
  ceiling    a bare aiokafka producer (same producer settings: idempotent, acks=all, lz4, linger, batch size;
             same 12-partition topic, same keys) sending pre-serialized MarketDataEnvelopes as fast as it can;
  ingestion  `python -m aipx_ingestion` (its own process) on the simulated Binance feed (`python -m
             aipx_exchange_sim`, another process) at full speed, N symbols, aggTrade + bookTicker streams;
  latency    the same at a fixed ~10,000 messages/s: p50/p99 from exchange event time to the broker;
  peer       cryptofeed (PyPI, its own isolated environment: bench/ingestion_bench_cryptofeed.py) with its
             Kafka backend, on the same simulated Binance feed at full speed, same streams and symbols;
  baseline   with --baseline REF (repeatable): the ingestion service of commit REF, from a git worktree
             (/tmp/ingest-base-<sha>), on the same simulator at full speed, alternating with this tree's;
  bare       the "bare pipeline" ceiling (its own process, `--bare-worker`): the fastest client (picows'
             native API) reading the same frames, msgspec Structs decoding them, one envelope kept per
             instrument and kind, serialized with the topic contract's headers and published through the
             same BatchPublisher; no normalization, sequencing checks or bookkeeping;
  curve      CPU per message with 20, 200 and 1,000 symbols at the same paced rate (--curve, --curve-rate).
The simulator runs in its fast mode (AIPX_SIM_FAST: pre-generated frames; --sim-mode normal for the random
walk) and its CPU share is printed for every run.
Throughput and latency are read back from the broker: every topic is created with
message.timestamp.type=LogAppendTime, so a record's timestamp is when the broker appended it (with one broker
and acks=all, that is when it acknowledged it). Messages/s = records appended in the steady window / window.
CPU us/msg = CPU time of the publishing process (the ingestion service; the benchmark process itself for the
ceiling) in the steady window / records appended in it: less sensitive to other load than msg/s.
Latency = append time - exchange event time (the simulator stamps trades with the wall clock at
generation, in milliseconds, so figures carry +-1 ms of rounding).

    uv run python bench/ingestion_bench.py [--symbols 20] [--seconds 20] [--skip-peer] \
        [--baseline $(git merge-base HEAD main)] [--curve 20,200,1000]

Needs the local stack's Kafka (AIPX_KAFKA_BOOTSTRAP_SERVERS, default 127.0.0.1:19092) and, for the peer,
uv (it runs `uv run --isolated --no-project --with 'cryptofeed[kafka]' ...`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import picows
import uvloop
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition
from aipx.kafka import BatchPublisher, create_producer
from aipx.serde import encode
from aipx.settings import KafkaSettings
from aipx.topics import MARKET_DATA_RAW, catalogue
from aipx.v1.common_pb2 import SIDE_BUY, SIDE_SELL
from aipx.v1.market_data_pb2 import MarketDataEnvelope
from aipx_stack import scratch
from aipx_stack.ports import free_port
from aipx_stack.procstat import cpu_seconds, pin, unpin
from aipx_stack.select import pin_with_stack

ROOT = Path(__file__).resolve().parent
BASES = (
    "BTC",
    "ETH",
    "SOL",
    "BNB",
    "XRP",
    "ADA",
    "DOGE",
    "TRX",
    "DOT",
    "LINK",
    "AVAX",
    "LTC",
    "BCH",
    "ATOM",
    "UNI",
    "ETC",
    "XLM",
    "FIL",
    "APT",
    "NEAR",
    "ARB",
    "OP",
    "SUI",
    "INJ",
    "AAVE",
    "MKR",
    "RUNE",
    "SEI",
    "TIA",
    "PEPE",
)


def symbol_names(count: int) -> list[str]:
    """`count` canonical symbols: the real bases first, then synthetic ones (X0031-USDT, ...)."""
    bases = [*BASES[:count], *(f"X{i:04d}" for i in range(len(BASES), count))]
    return [f"{b}-USDT" for b in bases]


PRODUCE_TIMEOUT_MS = (
    120_000  # the ingestion service's produce_timeout_ms default: same settings for the ceiling
)
APPEND_TIME = {"message.timestamp.type": "LogAppendTime"}
SIM_READY_S = 30.0


@dataclass
class Measured:
    """What the broker saw of one run."""

    name: str
    records: int
    window_s: float
    latencies_ms: list[float]
    cpu_us_per_message: float = 0.0  # of the publishing process (the bench itself for the ceiling)
    sim_cores: float = 0.0  # the simulator's CPU over the window, in cores

    @property
    def rate(self) -> float:
        return self.records / self.window_s if self.window_s > 0 else 0.0

    def pct(self, q: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without other AIPX_* settings (the components reject unknown ones), plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIPX_") or k.startswith("AIPX_KAFKA_")}
    env.update(extra)
    return env


async def create_topics(bootstrap: str, specs: dict[str, int]) -> None:
    await scratch.create_topics(bootstrap, specs, config=APPEND_TIME)


async def delete_topics(bootstrap: str, names: list[str]) -> None:
    try:
        await scratch.delete_topics(bootstrap, names)
    except Exception as exc:  # leftover bench topics are harmless; say so and go on
        print(f"  (could not delete topics {names[:3]}...: {exc})")


async def read_back(
    bootstrap: str, topics: dict[str, int], start_ms: int, end_ms: int, *, envelopes: bool
) -> Measured:
    """Records appended in [start_ms, end_ms), and (for envelopes) their event-time -> append latency."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, max_partition_fetch_bytes=8 << 20
    )
    await consumer.start()
    try:
        partitions = [TopicPartition(t, p) for t, n in topics.items() for p in range(n)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        remaining = {tp for tp in partitions if ends[tp] > 0}
        count = 0
        latencies: list[float] = []
        while remaining:
            batch = await consumer.getmany(*remaining, timeout_ms=1000, max_records=50_000)
            for tp, messages in batch.items():
                for m in messages:
                    if start_ms <= m.timestamp < end_ms:
                        count += 1
                        if envelopes:
                            env = MarketDataEnvelope.FromString(m.value)
                            if env.exchange_time_ns:
                                latencies.append(m.timestamp - env.exchange_time_ns / 1e6)
                    if m.offset + 1 >= ends[tp]:
                        remaining.discard(tp)
        return Measured("", count, (end_ms - start_ms) / 1000, latencies)
    finally:
        await consumer.stop()


# -- ceiling -----------------------------------------------------------------------------------------------


async def ceiling(bootstrap: str, symbols: list[str], seconds: float, *, batched: bool = True) -> Measured:
    """A bare producer with the ingestion's settings sending pre-serialized envelopes (the same factory as the
    service: aipx.kafka.create_producer, per-broker draining included). `batched`: through the same
    aipx.kafka.BatchPublisher as the service (a record batch per partition, 512 records at a time); else one
    `producer.send` per record (how the service published until 2026-11-22 evening)."""
    topic = f"bench-ceiling-{uuid.uuid4().hex[:8]}"
    await create_topics(bootstrap, {topic: catalogue().get(MARKET_DATA_RAW).partitions})
    spec = catalogue().get(MARKET_DATA_RAW)
    settings = KafkaSettings(bootstrap_servers=bootstrap)
    producer = create_producer(settings, client_id="bench-ceiling", request_timeout_ms=PRODUCE_TIMEOUT_MS)
    await producer.start()
    # Pre-serialized, realistic envelopes (a trade per symbol, ids and sequences varying).
    payloads = []
    for i in range(4_096):
        symbol = symbols[i % len(symbols)]
        env = MarketDataEnvelope(
            venue="binance",
            symbol=symbol,
            venue_symbol=symbol.replace("-", ""),
            exchange_time_ns=time.time_ns(),
            ingest_time_ns=time.time_ns(),
            source_sequence=1_700_000_000_000_000 + i,
            event_id=f"binance:{symbol}:agg_trade:{5_000_000 + i}",
        )
        trade = env.trade
        trade.trade_id = str(5_000_000 + i)
        trade.price.value = "65012.34"
        trade.quantity.value = "0.125"
        trade.aggressor_side = SIDE_BUY
        trade.first_trade_id = trade.last_trade_id = 5_000_000 + i
        encoded = encode(env, event_id=env.event_id, event_time_ns=env.exchange_time_ns)
        payloads.append((spec.key_for(venue="binance", symbol=symbol), encoded))
    batches: BatchPublisher[None] = BatchPublisher(producer, topic)
    start = time.time()
    cpu_start = time.process_time()
    futures: list[asyncio.Future[Any]] = []
    sent = 0
    while time.time() - start < seconds:
        if batched:
            await batches.prepare()
            now_ms = time.time_ns() // 1_000_000
            for key, encoded in payloads[:512]:
                batches.add(key, encoded, now_ms, None)
            await batches.flush(lambda future, _: futures.append(future))
        else:
            for key, encoded in payloads[:512]:
                futures.append(await producer.send(topic, encoded.value, key=key, headers=encoded.headers))
        sent += 512
        payloads.append(payloads.pop(0))
        if len(futures) > 50_000:
            await asyncio.gather(*futures[:25_000])
            del futures[:25_000]
    await asyncio.gather(*futures)
    elapsed = time.time() - start
    cpu_us = (time.process_time() - cpu_start) / max(sent, 1) * 1e6
    await producer.stop()
    await delete_topics(bootstrap, [topic])
    how = "record batches per partition (BatchPublisher)" if batched else "send() per record"
    name = f"ceiling: bare aiokafka producer, pre-serialized envelopes, {how}"
    return Measured(name, sent, elapsed, [], cpu_us)


# -- processes ---------------------------------------------------------------------------------------------


class Simulator:
    """`python -m aipx_exchange_sim` in its own process, controlled over its HTTP API."""

    def __init__(self, symbols: list[str], rate: float, *, fast: bool = True) -> None:
        self.ws_port, self.rest_port = free_port(), free_port()
        self.env = clean_env(
            AIPX_SIM_FAST=str(fast).lower(),
            AIPX_SIM_WS_PORT=str(self.ws_port),
            AIPX_SIM_REST_PORT=str(self.rest_port),
            AIPX_SIM_RATE=str(rate),
            AIPX_SIM_SYMBOLS=",".join(symbols),
            AIPX_SIM_SEED="7",
            AIPX_LOG_LEVEL="WARNING",
        )
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.ws_port}"

    @property
    def rest(self) -> str:
        return f"http://127.0.0.1:{self.rest_port}"

    async def __aenter__(self) -> Simulator:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "aipx_exchange_sim", env=self.env
        )
        deadline = time.monotonic() + SIM_READY_S
        async with aiohttp.ClientSession() as http:
            while True:
                try:
                    async with http.get(f"{self.rest}/api/v3/ping") as r:
                        if r.status == 200:
                            return self
                except aiohttp.ClientError:
                    pass
                if (
                    time.monotonic() > deadline + len(symbols_of(self.env)) / 20
                    or self.proc.returncode is not None
                ):
                    raise RuntimeError("the simulator did not start")
                await asyncio.sleep(0.1)

    async def stats(self) -> dict[str, Any]:
        async with aiohttp.ClientSession() as http, http.get(f"{self.rest}/control/stats") as r:
            result: dict[str, Any] = await r.json()
            return result

    async def __aexit__(self, *_: object) -> None:
        await stop(self.proc)


def symbols_of(env: dict[str, str]) -> list[str]:
    return env.get("AIPX_SIM_SYMBOLS", "").split(",")


async def stop(
    proc: asyncio.subprocess.Process | None, sig: int = signal.SIGTERM, grace_s: float = 30.0
) -> None:
    """Signal a child process and wait for it (killed after `grace_s`)."""
    if proc is None or proc.returncode is not None:
        return
    proc.send_signal(sig)
    try:
        await asyncio.wait_for(proc.wait(), grace_s)
    except TimeoutError:
        proc.kill()
        await proc.wait()


SIM_FAST = True  # set from --sim-mode
PUBLISHER_CPUS: set[int] | None = None  # set from --pin: the CPU of the publisher under test


def place_publisher(pid: int) -> None:
    """Put a publisher under test (with the threads and children it starts later) on its own CPU."""
    if PUBLISHER_CPUS is not None:
        pin([pid], PUBLISHER_CPUS)


def ingestion_command(
    symbols: list[str], sim: Simulator, topic: str, extra_env: dict[str, str]
) -> tuple[list[str], dict[str, str]]:
    """`python -m aipx_ingestion` on the simulated Binance feed (aggTrade + bookTicker of `symbols`)."""
    env = clean_env(
        AIPX_INGESTION_VENUES="binance",
        AIPX_INGESTION_SYMBOLS=",".join(symbols),
        AIPX_INGESTION_CHANNELS=json.dumps({"binance": ["aggTrade", "bookTicker"]}),
        AIPX_INGESTION_WS_URLS=json.dumps({"binance": f"{sim.ws}/binance/stream"}),
        AIPX_INGESTION_REST_URLS=json.dumps({"binance": sim.rest}),
        AIPX_INGESTION_TOPIC=topic,
        AIPX_INGESTION_SUBSCRIBE_INTERVAL_S="0.01",
        AIPX_METRICS_PORT=str(free_port()),
        AIPX_LOG_LEVEL="WARNING",
        **extra_env,
    )
    return [sys.executable, "-m", "aipx_ingestion"], env


def bare_command(
    symbols: list[str], sim: Simulator, topic: str, extra_env: dict[str, str]
) -> tuple[list[str], dict[str, str]]:
    """The bare pipeline worker (this file, --bare-worker) on the same feed."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--bare-worker", "--ws", f"{sim.ws}/binance/stream",
           "--topic", topic, "--symbols", str(len(symbols))]  # fmt: skip
    return cmd, clean_env(**extra_env)


async def run_ingestion(
    bootstrap: str,
    symbols: list[str],
    sim_rate: float,
    *,
    seconds: float,
    warmup: float,
    name: str,
    extra_env: dict[str, str] | None = None,
    command: Any = ingestion_command,
) -> tuple[Measured, dict[str, Any]]:
    """One publisher process (the service, a baseline's service, or the bare worker) on the simulator."""
    topic = f"bench-ingestion-{uuid.uuid4().hex[:8]}"
    partitions = catalogue().get(MARKET_DATA_RAW).partitions
    await create_topics(bootstrap, {topic: partitions})
    async with Simulator(symbols, sim_rate, fast=SIM_FAST) as sim:
        assert sim.proc is not None
        cmd, env = command(symbols, sim, topic, extra_env or {})
        proc = await asyncio.create_subprocess_exec(*cmd, env=env)
        place_publisher(proc.pid)
        try:
            start = time.time()
            await asyncio.sleep(warmup)
            cpu_start = cpu_seconds([proc.pid])
            sim_start = cpu_seconds([sim.proc.pid])
            wall_start = time.monotonic()
            await asyncio.sleep(seconds - warmup - 1)
            cpu_used = cpu_seconds([proc.pid]) - cpu_start
            sim_cores = (cpu_seconds([sim.proc.pid]) - sim_start) / (time.monotonic() - wall_start)
            await asyncio.sleep(1)
            end = time.time()
            stats = await sim.stats()
        finally:
            await stop(proc)  # SIGTERM: graceful, flushes the producer
        if proc.returncode not in (0, -signal.SIGTERM):
            raise RuntimeError(f"{name}: exited with {proc.returncode}")
    window = (int((start + warmup) * 1000), int((end - 1) * 1000))
    measured = await read_back(bootstrap, {topic: partitions}, *window, envelopes=True)
    measured.name = name
    measured.cpu_us_per_message = cpu_used / max(measured.records, 1) * 1e6
    measured.sim_cores = sim_cores
    await delete_topics(bootstrap, [topic])
    return measured, stats


# -- baseline: an older commit's service, from a git worktree -----------------------------------------------


def baseline_env(ref: str) -> tuple[str, dict[str, str]]:
    """A worktree of `ref` (created once under the temp dir) and the PYTHONPATH that runs its ingestion
    service and shared library with this environment's dependencies; returns (short sha, env)."""
    repo = ROOT.parent
    sha = subprocess.run(["git", "-C", str(repo), "rev-parse", "--verify", f"{ref}^{{commit}}"],
                         capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    tree = Path(tempfile.gettempdir()) / f"ingest-base-{sha[:12]}"
    if not (tree / ".git").exists():
        subprocess.run(["git", "-C", str(repo), "worktree", "add", "--detach", str(tree), sha], check=True,
                       capture_output=True)  # fmt: skip
    paths = [tree / "services" / "ingestion" / "src", tree / "libs" / "aipx" / "src"]
    env = {"PYTHONPATH": os.pathsep.join(str(p) for p in paths)}
    probe = subprocess.run([sys.executable, "-c", "import aipx, aipx_ingestion; print(aipx.__file__); "
                            "print(aipx_ingestion.__file__)"], env={**os.environ, **env}, capture_output=True,
                           text=True, check=True).stdout.split()  # fmt: skip
    if not all(p.startswith(str(tree)) for p in probe):
        raise RuntimeError(f"the baseline {ref} would not run from its worktree: {probe}")
    return sha[:10], env


async def run_cryptofeed(bootstrap: str, symbols: list[str], seconds: float, warmup: float) -> Measured:
    topics = [f"{kind}-BINANCE-{s}" for kind in ("trades", "ticker") for s in symbols]
    await create_topics(bootstrap, dict.fromkeys(topics, 1))
    # cryptofeed stalls against a writer that puts many frames in one socket write (bench/RESULTS.md,
    # 2026-11-22 19:38, "tried and not kept"): it gets the simulator's normal mode, one frame per write.
    async with Simulator(symbols, 0, fast=False) as sim:
        cmd = [
            "uv",
            "run",
            "--isolated",
            "--no-project",
            "--python",
            f"{sys.version_info.major}.{sys.version_info.minor}",
            "--with",
            "cryptofeed[kafka]",
            "python",
            str(ROOT / "ingestion_bench_cryptofeed.py"),
            "--ws",
            sim.ws,
            "--rest",
            sim.rest,
            "--bootstrap",
            bootstrap,
            "--symbols",
            ",".join(symbols),
        ]
        proc = await asyncio.create_subprocess_exec(
            *cmd, env=clean_env(), stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
        )
        place_publisher(proc.pid)
        try:
            # The isolated environment is installed on first use: start the clock at its first record.
            first = await first_record(bootstrap, topics, within_s=180.0)
            start = max(time.time(), first)
            await asyncio.sleep(seconds)
            end = time.time()
        finally:
            await stop(proc, signal.SIGINT)
        if proc.returncode not in (0, -signal.SIGINT, 1):
            err = (await proc.stderr.read()).decode(errors="replace")[-2000:] if proc.stderr else ""
            raise RuntimeError(f"cryptofeed exited with {proc.returncode}: {err}")
    window = (int((start + warmup) * 1000), int((end - 1) * 1000))
    measured = await read_back(bootstrap, dict.fromkeys(topics, 1), *window, envelopes=False)
    measured.name = "peer: cryptofeed 2.4 + Kafka backend (JSON, topic per symbol, acks=1, awaits each ack)"
    await delete_topics(bootstrap, topics)
    return measured


async def first_record(bootstrap: str, topics: list[str], within_s: float) -> float:
    consumer = AIOKafkaConsumer(*topics, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    try:
        deadline = time.monotonic() + within_s
        while time.monotonic() < deadline:
            if await consumer.getmany(timeout_ms=500):
                return time.time()
        raise RuntimeError(f"cryptofeed produced nothing within {within_s}s")
    finally:
        await consumer.stop()


def machine() -> str:
    model = "unknown CPU"
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        model = next(
            (line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name")),
            model,
        )
    except OSError:
        pass
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    python = platform.python_version()
    return f"{platform.machine()}, {model}, {os.cpu_count()} vCPU, Python {python}, load average {load}"


def row(m: Measured) -> str:
    lat = f"{m.pct(0.5):7.1f} {m.pct(0.99):7.1f}" if m.latencies_ms else f"{'-':>7} {'-':>7}"
    cpu = f"{m.cpu_us_per_message:9.1f}" if m.cpu_us_per_message else f"{'-':>9}"
    sim = f"{m.sim_cores:9.2f}" if m.sim_cores else f"{'-':>9}"
    return f"  {m.name:<88} {m.rate:9,.0f} {lat} {cpu} {sim}"


# -- the bare pipeline worker (its own process) -------------------------------------------------------------


class Combined(msgspec.Struct):
    """A Binance combined-stream frame; `data` decoded in a second step (spot bookTicker has no "e" field)."""

    stream: str
    data: msgspec.Raw


class AggTrade(msgspec.Struct):
    s: str
    a: int
    p: str
    q: str
    f: int
    l: int  # noqa: E741 - Binance's field name
    T: int
    m: bool


class BookTicker(msgspec.Struct):
    u: int
    s: str
    b: str
    B: str
    a: str
    A: str


BARE_HIGH_WATER = 20_000


async def bare_worker(ws_url: str, topic: str, symbol_count: int) -> None:
    """Read the simulator's aggTrade + bookTicker frames with picows' native API, decode them into msgspec
    Structs, overwrite one envelope per instrument and kind, serialize it with the topic contract's headers
    and publish through BatchPublisher, until SIGTERM. No normalization, sequencing checks or bookkeeping."""
    combined = msgspec.json.Decoder(Combined)
    agg_decoder, ticker_decoder = msgspec.json.Decoder(AggTrade), msgspec.json.Decoder(BookTicker)
    spec = catalogue().get(MARKET_DATA_RAW)
    symbols = symbol_names(symbol_count)
    keys: dict[str, bytes] = {}
    trades: dict[str, tuple[MarketDataEnvelope, str]] = {}
    quotes: dict[str, tuple[MarketDataEnvelope, str]] = {}
    for symbol in symbols:
        venue_symbol = symbol.replace("-", "")
        keys[venue_symbol] = spec.key_for(venue="binance", symbol=symbol)
        for table, kind in ((trades, "agg_trade"), (quotes, "quote")):
            env = MarketDataEnvelope(venue="binance", symbol=symbol, venue_symbol=venue_symbol)
            table[venue_symbol] = (env, f"binance:{symbol}:{kind}:")
    producer = create_producer(KafkaSettings(), client_id="bench-bare", request_timeout_ms=PRODUCE_TIMEOUT_MS)
    await producer.start()
    batches: BatchPublisher[None] = BatchPublisher(producer, topic)
    pending: list[tuple[bytes, Any, int]] = []
    ready = asyncio.Event()
    sequence = [0]
    paused = [False]
    socket_transport: list[asyncio.Transport] = []

    def on_frame(payload: bytes) -> None:
        try:
            frame = combined.decode(payload)
        except msgspec.ValidationError:
            return  # subscription replies
        now = time.time_ns()
        sequence[0] += 1
        if frame.stream.endswith("@aggTrade"):
            t = agg_decoder.decode(frame.data)
            env, prefix = trades[t.s]
            env.exchange_time_ns = t.T * 1_000_000
            env.ingest_time_ns = now
            env.source_sequence = sequence[0]
            env.event_id = f"{prefix}{t.a}"
            trade = env.trade
            trade.trade_id = str(t.a)
            trade.price.value = t.p
            trade.quantity.value = t.q
            trade.aggressor_side = SIDE_SELL if t.m else SIDE_BUY
            trade.first_trade_id, trade.last_trade_id = t.f, t.l
            event_time = env.exchange_time_ns
        else:
            b = ticker_decoder.decode(frame.data)
            env, prefix = quotes[b.s]
            env.ingest_time_ns = now
            env.source_sequence = sequence[0]
            env.event_id = f"{prefix}{b.u}"
            quote = env.quote
            quote.bid_price.value, quote.bid_size.value = b.b, b.B
            quote.ask_price.value, quote.ask_size.value = b.a, b.A
            quote.update_id = b.u
            event_time = now
        pending.append((keys[env.venue_symbol], encode(env, event_id=env.event_id, event_time_ns=event_time),
                        event_time // 1_000_000))  # fmt: skip
        ready.set()
        if len(pending) >= BARE_HIGH_WATER and not paused[0]:
            paused[0] = True  # bounded like the service's buffer: stop reading (TCP backpressure)
            socket_transport[0].pause_reading()

    class Listener(picows.WSListener):
        def on_ws_frame(self, transport: picows.WSTransport, frame: picows.WSFrame) -> None:
            if frame.msg_type == picows.WSMsgType.TEXT:
                on_frame(frame.get_payload_as_bytes())
            elif frame.msg_type == picows.WSMsgType.PING:
                transport.send_pong(frame.get_payload_as_bytes())

    transport, _ = await picows.ws_connect(Listener, ws_url, enable_auto_pong=False)
    socket_transport.append(transport.underlying_transport)
    streams = [f"{s.replace('-', '').lower()}@{c}" for s in symbols for c in ("aggTrade", "bookTicker")]
    for i in range(0, len(streams), 50):
        request = {"method": "SUBSCRIBE", "params": streams[i : i + 50], "id": i + 1}
        transport.send(picows.WSMsgType.TEXT, json.dumps(request).encode())
    stopping = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopping.set)
    futures: deque[asyncio.Future[Any]] = deque()
    while not stopping.is_set():
        ready.clear()
        if not pending:
            waiter = asyncio.ensure_future(ready.wait())
            stopper = asyncio.ensure_future(stopping.wait())
            await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            stopper.cancel()
            continue
        if len(pending) < 2_000:
            await asyncio.sleep(0.005)  # the service's linger (AIPX_KAFKA_LINGER_MS): batches gather
        await batches.prepare()
        items = pending[:2_000]
        del pending[:2_000]
        for key, record, ts_ms in items:
            batches.add(key, record, ts_ms, None)
        await batches.flush(lambda future, _: futures.append(future))
        while futures and futures[0].done():
            futures.popleft()
        if paused[0] and len(pending) < BARE_HIGH_WATER // 2:
            paused[0] = False
            socket_transport[0].resume_reading()
        await asyncio.sleep(0)
    transport.disconnect()
    await producer.flush()
    await producer.stop()
    print(f"bare worker: {sequence[0]} envelopes built, {len(pending)} not published", file=sys.stderr)


# -- main ---------------------------------------------------------------------------------------------------


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b else "n/a"


async def main() -> None:
    global SIM_FAST
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--symbols", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=15.0, help="length of each run")
    parser.add_argument("--warmup", type=float, default=4.0, help="seconds excluded at the start of each run")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds; the best of each is kept")
    parser.add_argument(
        "--latency-rates", default="2000,5000,10000", help="messages/s of the paced latency runs"
    )
    parser.add_argument("--skip-peer", action="store_true")
    parser.add_argument("--skip-ceiling", action="store_true", help="skip the bare-producer ceilings")
    parser.add_argument("--baseline", action="append", default=[], metavar="REF",
                        help="a commit whose service is measured in the same run (repeatable)")  # fmt: skip
    parser.add_argument("--curve", default="20,200,1000", help="symbol counts of the CPU-per-message curve")
    parser.add_argument("--curve-rate", type=float, default=5_000, help="messages/s of the curve's runs")
    parser.add_argument("--sim-mode", choices=("fast", "normal"), default="fast")
    parser.add_argument("--pin", action=argparse.BooleanOptionalAction, default=None,
                        help="give the publisher under test a CPU of its own (default: on with 2 or more "
                             "CPUs)")  # fmt: skip
    parser.add_argument("--bare-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--ws", help=argparse.SUPPRESS)
    parser.add_argument("--topic", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare_worker:
        logging.basicConfig(level=logging.WARNING)  # picows reports a failing listener through logging
        await bare_worker(args.ws, args.topic, args.symbols)
        return
    SIM_FAST = args.sim_mode == "fast"
    placed = place(args.pin)
    try:
        await measure(args)
    finally:
        unpin(placed)


def place(wanted: bool | None) -> list[tuple[int, set[int]]]:
    """As bench/oms_bench.py places its servers: with --pin (the default on 2+ CPUs) each publisher under test
    (this tree's service, a baseline's, the bare worker, cryptofeed) runs on the last CPU, alone; the
    simulator, the broker (the local stack) and this process (the ceilings, the read-back) share the others.
    Without it, everything competes for every CPU and a publisher's CPU per message moves with where the
    scheduler puts the broker (0.39-0.59 of the baseline between rounds of one run, 2026-12-05)."""
    global PUBLISHER_CPUS
    cpus = sorted(os.sched_getaffinity(0))
    if not (wanted if wanted is not None else len(cpus) >= 2):
        print("  placement: every process on every CPU (--pin: the publisher under test on a CPU of its own)")
        return []
    if len(cpus) < 2:
        raise SystemExit("--pin needs at least 2 CPUs")
    PUBLISHER_CPUS, others = {cpus[-1]}, set(cpus[:-1])
    placed, stack = pin_with_stack(others)
    print(f"  placement: the publisher under test on CPU {sorted(PUBLISHER_CPUS)}; the simulator, this "
          f"process and {stack} on CPU {sorted(others)}")  # fmt: skip
    return placed


async def measure(args: argparse.Namespace) -> None:
    bootstrap = KafkaSettings().bootstrap_servers
    symbols = symbol_names(args.symbols)
    baselines = [baseline_env(ref) for ref in args.baseline]
    print(f"ingestion benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {machine()}")
    print(
        f"  {len(symbols)} symbols, Binance aggTrade + bookTicker, runs of {args.seconds:.0f}s "
        f"(first {args.warmup:.0f}s excluded), {args.rounds} alternating rounds, Kafka {bootstrap}, "
        f"simulator in {args.sim_mode} mode"
    )
    header = f"  {'run':<88} {'msg/s':>9} {'p50 ms':>7} {'p99 ms':>7} {'CPU us/msg':>9} {'sim cores':>9}"
    print(header)
    runs: dict[str, list[Measured]] = {}

    def keep(m: Measured, r: int) -> None:
        runs.setdefault(m.name, []).append(m)
        print(row(m) + f"   (round {r})")

    frames_per_event = 0.0
    full_name = "ingestion (this tree), simulator at full speed"
    bare_name = "bare pipeline: picows native + msgspec Structs + reused envelope + BatchPublisher"
    for r in range(1, args.rounds + 1):
        if not args.skip_ceiling:
            keep(await ceiling(bootstrap, symbols, args.seconds / 2), r)
            keep(await ceiling(bootstrap, symbols, args.seconds / 2, batched=False), r)
        full, stats = await run_ingestion(bootstrap, symbols, 0, seconds=args.seconds, warmup=args.warmup,
                                          name=full_name)  # fmt: skip
        frames_per_event = stats.get("binance.frames", 0) / max(1, stats.get("events", 1))
        keep(full, r)
        for sha, env in baselines:
            keep((await run_ingestion(bootstrap, symbols, 0, seconds=args.seconds, warmup=args.warmup,
                                      name=f"ingestion at baseline {sha}, simulator at full speed",
                                      extra_env=env))[0], r)  # fmt: skip
        keep((await run_ingestion(bootstrap, symbols, 0, seconds=args.seconds, warmup=args.warmup,
                                  name=bare_name, command=bare_command))[0], r)  # fmt: skip
        if not args.skip_peer:
            keep(await run_cryptofeed(bootstrap, symbols, args.seconds, args.warmup), r)
    paced: list[Measured] = []
    for target in (float(x) for x in args.latency_rates.split(",") if x):
        name = f"ingestion, simulator paced at ~{target:,.0f} msg/s"
        rate = target / max(frames_per_event, 1e-6)
        paced.append((await run_ingestion(bootstrap, symbols, rate, seconds=args.seconds, warmup=args.warmup,
                                          name=name))[0])  # fmt: skip
        print(row(paced[-1]))
    curve: list[tuple[int, Measured]] = []
    for count in (int(x) for x in args.curve.split(",") if x):
        name = f"ingestion, {count:,} symbols, paced at ~{args.curve_rate:,.0f} msg/s"
        rate = args.curve_rate / max(frames_per_event, 1e-6)
        curve.append((count, (await run_ingestion(bootstrap, symbol_names(count), rate, seconds=args.seconds,
                                                  warmup=args.warmup, name=name))[0]))  # fmt: skip
        print(row(curve[-1][1]))

    best = {name: max(ms, key=lambda m: m.rate) for name, ms in runs.items()}
    # CPU per message: the lowest of the rounds (least disturbed by other load), as for msg/s the highest.
    cpu = {name: min(m.cpu_us_per_message for m in ms) for name, ms in runs.items()}
    print()
    print(f"  best of {args.rounds} rounds (msg/s: highest; CPU us/msg: lowest):")
    print(header)
    for name, m in best.items():
        m.cpu_us_per_message = cpu[name]
        print(row(m))
    for m in paced:
        print(row(m))
    for _, m in curve:
        print(row(m))
    print()
    full = best[full_name]
    bare = best[bare_name]
    for sha, _ in baselines:
        base = best[f"ingestion at baseline {sha}, simulator at full speed"]
        cpu_ratio = ratio(full.cpu_us_per_message, base.cpu_us_per_message)
        print(f"  CPU/msg this tree / baseline {sha} = {cpu_ratio}   (target <= 0.40); "
              f"msg/s ratio {ratio(full.rate, base.rate)}")  # fmt: skip
    print(
        f"  ingestion / bare pipeline: msg/s {ratio(full.rate, bare.rate)} (target >= 0.60); "
        f"CPU/msg bare / ingestion {ratio(bare.cpu_us_per_message, full.cpu_us_per_message)}"
    )
    if not args.skip_ceiling:
        top = best["ceiling: bare aiokafka producer, pre-serialized envelopes, record batches per partition "
                    "(BatchPublisher)"]  # fmt: skip
        print(f"  ingestion / batched-producer ceiling = {ratio(full.rate, top.rate)}   (reference)")
    peer = next((m for n, m in best.items() if n.startswith("peer:")), None)
    if peer:
        print(f"  ingestion / cryptofeed = {ratio(full.rate, peer.rate)}   (target >= 50)")
    for m in paced:
        print(f"  p99 at {m.rate:,.0f} msg/s = {m.pct(0.99):.1f} ms   (target < 10 ms at 10,000 msg/s); "
              f"simulator {m.sim_cores:.2f} cores (target < 0.25 at 10,000 msg/s)")  # fmt: skip
    if curve:
        costs = [m.cpu_us_per_message for _, m in curve]
        points = ", ".join(f"{n:,}: {m.cpu_us_per_message:.1f}" for n, m in curve)
        print(
            f"  CPU us/msg by symbols: {points}; max/min = {ratio(max(costs), min(costs))}   (target <= 1.5)"
        )


if __name__ == "__main__":
    uvloop.run(main())  # the event loop the ingestion service runs on: the ceiling gets the same
