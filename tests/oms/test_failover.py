"""Hot standby, fencing and clean deploys, with real OMS processes (`python -m aipx_oms`) on one scratch
database: a standby answers NOT_SERVING / 503 and takes over when the leader exits, is SIGKILLed or is
SIGTERMed (rolling restart) under load; a leader whose session ends acknowledges nothing uncommitted."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import grpc
import pytest
from aipx.clients.oms import OmsClient
from aipx.v1 import common_pb2, oms_pb2, orders_pb2
from aipx_oms.store.leadership import WRITER_LOCK_KEY
from grpc_health.v1 import health_pb2

from tests.oms.conftest import KEY_A, OmsEnv, eventually
from tests.oms.helpers import CuttableProxy, read_events
from tests.oms.processes import Cluster, OmsProcess

pytestmark = pytest.mark.integration
BUY = common_pb2.SIDE_BUY
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
TAKEOVER_S = 10.0  # the bound: service back within 10 s of the leader's death
# What a client retries with the same client_order_id: UNAVAILABLE (a standby, a refused connection, a lost
# session), DEADLINE_EXCEEDED, and CANCELLED, which a server that is shutting down answers for a call it
# received but had not dispatched yet.
RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED)


@pytest.fixture
def cluster(oms_env: OmsEnv, tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(oms_env, tmp_path)
    try:
        yield c
    finally:
        c.stop_all()


@dataclass
class Ack:
    order_id: str
    at: float  # loop time of the answer
    target: str
    attempts: int
    waited: float  # seconds from the first attempt to the answer, retries included


class Load:
    """Clients submitting new orders as fast as they get answers, each retrying the same client_order_id on
    RETRYABLE codes across every OMS address (what a client behind a load balancer does) until it is
    acknowledged. A request that still fails after `give_up_s` of retries is a lost request."""

    def __init__(self, targets: list[str], *, workers: int = 8, give_up_s: float = 40.0) -> None:
        self.clients = [OmsClient(t, KEY_A, timeout_s=3.0) for t in targets]
        self.prefix = uuid.uuid4().hex[:6]
        self.workers = workers
        self.give_up_s = give_up_s
        self.acks: dict[str, Ack] = {}
        self.retries = 0
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def submit(self, coid: str, start: int = 0) -> tuple[oms_pb2.SubmitOrderResponse, str, int]:
        loop = asyncio.get_running_loop()
        until = loop.time() + self.give_up_s
        attempt = start
        while True:
            client = self.clients[attempt % len(self.clients)]
            attempt += 1
            try:
                response = await client.submit("BTC-USDT", BUY, "0.01", price="1000", client_order_id=coid)
                return response, client.target, attempt - start
            except grpc.aio.AioRpcError as exc:
                if exc.code() not in RETRYABLE or loop.time() > until:
                    raise AssertionError(f"{coid} lost: {exc.code().name} {exc.details()}") from exc
                self.retries += 1
                await asyncio.sleep(0.05)

    async def _worker(self, w: int) -> None:
        loop = asyncio.get_running_loop()
        i = 0
        while not self._stop.is_set():
            coid = f"{self.prefix}-{w}-{i}"
            started = loop.time()
            response, target, attempts = await self.submit(coid, start=w)
            assert response.order.status == orders_pb2.ORDER_STATUS_ACCEPTED, response.order
            now = loop.time()
            self.acks[coid] = Ack(response.order.order_id, now, target, attempts, now - started)
            i += 1

    def add_target(self, target: str) -> None:
        """A new OMS address (a load balancer registering a new task)."""
        self.clients.append(OmsClient(target, KEY_A, timeout_s=3.0))

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._worker(w)) for w in range(self.workers)]

    async def until_acked(self, n: int, timeout_s: float = 60.0) -> None:
        target = len(self.acks) + n

        async def enough() -> bool:
            for task in self._tasks:
                if task.done():
                    task.result()  # a worker failed: raise its error here
            return len(self.acks) >= target

        await eventually(enough, timeout_s, what=f"{n} more acknowledged orders")

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)  # a lost request fails the test here

    def first_ack_after(self, t: float, target: str | None = None) -> float:
        """Loop time of the first answer after `t` (from `target` only, when given)."""
        return min(a.at for a in self.acks.values() if a.at > t and target in (None, a.target))

    def longest_wait(self) -> float:
        return max(a.waited for a in self.acks.values())

    async def close(self) -> None:
        for c in self.clients:
            await c.close()


@contextlib.asynccontextmanager
async def load(targets: list[str], **kwargs: Any) -> AsyncIterator[Load]:
    running = Load(targets, **kwargs)
    try:
        yield running
    finally:
        running._stop.set()
        await asyncio.gather(*running._tasks, return_exceptions=True)
        await running.close()


async def check_acknowledged(env: OmsEnv, running: Load, target: str) -> None:
    """Every acknowledged order is stored under the id the client was given, and a client repeating any
    client_order_id gets that same order back (not a second one)."""
    rows = await env.sql("SELECT client_order_id, order_id FROM orders WHERE account_id = 'acct-a'")
    stored = {r["client_order_id"]: r["order_id"] for r in rows}
    lost = {c: a.order_id for c, a in running.acks.items() if stored.get(c) != a.order_id}
    assert not lost, f"{len(lost)} acknowledged orders missing or different: {sorted(lost.items())[:5]}"
    async with OmsClient(target, KEY_A, timeout_s=10.0) as client:
        for coid, ack in sorted(running.acks.items())[:: max(1, len(running.acks) // 200)]:
            again = await client.submit("BTC-USDT", BUY, "0.01", price="1000", client_order_id=coid)
            assert not again.created and again.order.order_id == ack.order_id, coid


async def test_standby_is_not_serving_until_the_leader_exits(cluster: Cluster) -> None:
    """(c) A second process waits as a standby: OmsService NOT_SERVING, /readyz 503, /healthz 200, calls
    UNAVAILABLE, the load-balancer check UNAVAILABLE; it leads once the leader exits (SIGTERM -> exit 0)."""
    a = cluster.spawn("a")
    await a.wait_health(SERVING)
    b = cluster.spawn("b")
    await eventually(lambda: _answers(b), 30, what="the standby's gRPC server")
    await asyncio.sleep(1.5)  # several lock polls: it must stay a standby
    assert b.alive(), b.tail()
    assert await b.health() == NOT_SERVING
    assert await b.health("") == NOT_SERVING
    assert await b.leader_check() == grpc.StatusCode.UNAVAILABLE
    assert await a.leader_check() == grpc.StatusCode.OK
    assert await b.http("/healthz") == (200, {"status": "ok"})
    status, ready = await b.http("/readyz")
    assert status == 503 and ready["checks"]["leader"] is False and ready["checks"]["postgres"] is True
    status, ready = await a.http("/readyz")
    assert status == 200 and ready["checks"]["leader"] is True
    async with OmsClient(b.target, KEY_A, timeout_s=5.0) as client:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await client.submit("BTC-USDT", BUY, "0.01", price="1000", client_order_id="on-standby")
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "standby" in (refused.value.details() or "")
    follower = OmsClient(a.target, KEY_A, timeout_s=5.0)
    async with OmsClient(a.target, KEY_A, timeout_s=5.0) as client:
        first = await client.submit("BTC-USDT", BUY, "0.01", price="1000", client_order_id="before")
    stream = follower.events().__aiter__()
    seen = await asyncio.wait_for(stream.__anext__(), 10)
    assert seen.order.client_order_id == "before"

    a.signal(signal.SIGTERM)
    loop = asyncio.get_running_loop()
    signalled = loop.time()
    # A live stream ends with UNAVAILABLE (resume at the new leader) rather than holding up the shutdown.
    with pytest.raises(grpc.aio.AioRpcError) as ended:
        await asyncio.wait_for(stream.__anext__(), 10)
    assert ended.value.code() == grpc.StatusCode.UNAVAILABLE
    await follower.close()
    assert await a.exit_code() == 0, a.tail()
    waited = await b.wait_health(SERVING, TAKEOVER_S)
    took = loop.time() - signalled
    print(f"\nstandby serving {took:.2f}s after SIGTERM of the leader ({waited:.2f}s after its exit)")
    assert loop.time() - signalled < TAKEOVER_S
    assert await b.leader_check() == grpc.StatusCode.OK
    assert (await b.http("/readyz"))[0] == 200
    async with OmsClient(b.target, KEY_A, timeout_s=5.0) as client:
        again = await client.submit("BTC-USDT", BUY, "0.01", price="1000", client_order_id="before")
        assert not again.created and again.order.order_id == first.order.order_id
        # The stream resumes at the new leader from the last event seen, without a gap.
        resumed = client.events(from_log_sequence=seen.log_sequence).__aiter__()
        await client.submit("BTC-USDT", BUY, "0.01", price="1000", client_order_id="after")
        sequences: list[int] = []
        while True:
            event = await asyncio.wait_for(resumed.__anext__(), 10)
            sequences.append(event.log_sequence)
            if event.order.client_order_id == "after":
                break
        stored = await cluster.env.sql(
            "SELECT log_sequence FROM order_events WHERE log_sequence > $1", seen.log_sequence
        )
        assert sorted(r["log_sequence"] for r in stored) == sequences
    terms = await cluster.env.sql("SELECT term FROM oms_leadership")
    assert terms[0]["term"] == 2


async def _answers(p: OmsProcess) -> bool:
    assert p.alive(), p.tail()
    return await p.health() is not None


async def test_leader_sigkill_under_load_standby_takes_over(cluster: Cluster) -> None:
    """(a) SIGKILL of the leader under load with a standby running: every acknowledged order is present,
    clients retrying with the same client_order_id get the same orders, service back within 10 s."""
    a = cluster.spawn("a")
    await a.wait_health(SERVING)
    b = cluster.spawn("b")
    await eventually(lambda: _answers(b), 30, what="the standby's gRPC server")
    async with load([a.target, b.target]) as running:
        running.start()
        await running.until_acked(150)
        loop = asyncio.get_running_loop()
        killed = loop.time()
        a.signal(signal.SIGKILL)
        await b.wait_health(SERVING, TAKEOVER_S + 5)
        await running.until_acked(150)
        await running.stop()
    gap = running.first_ack_after(killed, b.target) - killed
    print(
        f"\nSIGKILL -> first order acknowledged by the standby: {gap:.2f}s ({len(running.acks)} orders,"
        f" {running.retries} retries, longest wait of a request {running.longest_wait():.2f}s)"
    )
    assert gap < TAKEOVER_S, f"service back only after {gap:.2f}s"
    assert {ack.target for ack in running.acks.values() if ack.at > killed + gap} == {b.target}
    await check_acknowledged(cluster.env, running, b.target)


async def test_rolling_restart_under_load_loses_no_request(cluster: Cluster) -> None:
    """(b) Start the new process, SIGTERM the old one, under load: no request is lost beyond client retries,
    the old one exits 0 after releasing the lock, and every committed event reaches Kafka."""
    old = cluster.spawn("old")
    await old.wait_health(SERVING)
    async with load([old.target]) as running:
        running.start()
        await running.until_acked(50)
        new = cluster.spawn("new")  # the deploy starts the new task first ...
        await eventually(lambda: _answers(new), 30, what="the new process's gRPC server")
        assert await new.health() == NOT_SERVING
        running.add_target(new.target)  # ... clients can reach both (the balancer registers it) ...
        await running.until_acked(50)
        loop = asyncio.get_running_loop()
        terminated = loop.time()
        old.signal(signal.SIGTERM)  # ... then it stops the old one
        assert await old.exit_code() == 0, old.tail()
        await new.wait_health(SERVING, TAKEOVER_S)
        await running.until_acked(100)
        await running.stop()
    gap = running.first_ack_after(terminated, new.target) - terminated
    print(
        f"\nrolling restart: {len(running.acks)} orders, {running.retries} retries, first answer of the new"
        f" process {gap:.2f}s after SIGTERM, longest wait of a request {running.longest_wait():.2f}s"
    )
    assert running.longest_wait() < TAKEOVER_S
    assert running.acks, "requests answered"
    await check_acknowledged(cluster.env, running, new.target)
    events = {str(r["event_id"]) for r in await cluster.env.sql("SELECT event_id FROM order_events")}
    env = cluster.env
    published = await read_events(env.kafka, env.events_topic, expect=len(events), timeout_s=60)
    assert {e.event_id for e in published} == events, "every committed event published (after de-dup)"


async def test_sigterm_flushes_the_outbox_and_releases_the_lock(cluster: Cluster) -> None:
    """SIGTERM right after a burst: the relay publishes what was committed before the process exits 0."""
    # The relay lingers up to 1 s between partial batches, so events are still in the outbox at SIGTERM.
    a = cluster.spawn("a", relay_batch_interval_s="1.0")
    await a.wait_health(SERVING)
    async with OmsClient(a.target, KEY_A, timeout_s=5.0) as client:
        for i in range(30):
            await client.submit("BTC-USDT", BUY, "0.01", price="1000", client_order_id=f"flush-{i}")
    a.signal(signal.SIGTERM)
    assert await a.exit_code() == 0, a.tail()
    unpublished = await cluster.env.sql("SELECT count(*) AS n FROM outbox WHERE published_at IS NULL")
    assert unpublished[0]["n"] == 0, "events left in the outbox at exit"
    assert await cluster.lock_holder_pid() is None, "the writer lock was released"
    published = await read_events(cluster.env.kafka, cluster.env.events_topic, expect=30)
    assert len({e.event_id for e in published}) == 30


async def test_partitioned_leader_is_fenced_and_acknowledges_nothing_uncommitted(cluster: Cluster) -> None:
    """(d) The leader's link to PostgreSQL is cut under load while a standby polls: PostgreSQL ends its
    session (the lock goes with it), the standby takes over, the old leader turns NOT_SERVING at once and,
    once the link is back, finds its term over (fenced): it stays a standby, acknowledging nothing; every
    order any process acknowledged is stored. It leads again when the other process exits."""
    parts = urlsplit(cluster.env.dsn)
    proxy = CuttableProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    netloc = f"{parts.username}:{parts.password}@127.0.0.1:{await proxy.start()}"
    a = cluster.spawn("a", dsn=urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment)))
    try:
        await a.wait_health(SERVING)
        b = cluster.spawn("b")
        await eventually(lambda: _answers(b), 30, what="the standby's gRPC server")
        async with load([a.target, b.target]) as running:
            running.start()
            await running.until_acked(150)
            loop = asyncio.get_running_loop()
            cut = loop.time()
            proxy.cut()
            await a.wait_health(NOT_SERVING, TAKEOVER_S)
            await b.wait_health(SERVING, TAKEOVER_S)
            await running.until_acked(100)
            proxy.restore()
            await eventually(lambda: _logged(a, "fenced"), 20, what="the old leader fenced")
            await running.until_acked(100)
            await running.stop()
        gap = running.first_ack_after(cut, b.target) - cut
        print(f"\nlink cut -> first order acknowledged by the standby: {gap:.2f}s; longest wait of a request"
              f" {running.longest_wait():.2f}s")  # fmt: skip
        assert gap < TAKEOVER_S
        assert a.alive(), "a fenced leader becomes a standby; it does not exit"
        assert await a.health() == NOT_SERVING
        await check_acknowledged(cluster.env, running, b.target)
        assert not [c for c, ack in running.acks.items() if ack.target == a.target and ack.at > cut + 0.5]
        async with OmsClient(a.target, KEY_A, timeout_s=5.0) as client:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await client.submit("BTC-USDT", BUY, "0.01", price="1000", client_order_id="to-the-fenced")
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        assert await a.leader_check() == grpc.StatusCode.UNAVAILABLE
        assert not await cluster.env.sql("SELECT 1 FROM orders WHERE client_order_id = 'to-the-fenced'")

        b.signal(signal.SIGTERM)
        assert await b.exit_code() == 0, b.tail()
        await a.wait_health(SERVING, TAKEOVER_S)
        async with OmsClient(a.target, KEY_A, timeout_s=5.0) as client:
            back = await client.submit("BTC-USDT", BUY, "0.01", price="1000", client_order_id="after-fence")
            assert back.created
        assert (await cluster.env.sql("SELECT term FROM oms_leadership"))[0]["term"] == 3
    finally:
        await proxy.stop()


async def _logged(p: OmsProcess, text: str) -> bool:
    return text in p.log.read_text(errors="replace")


async def test_terminated_session_fences_the_leader_when_another_took_the_lock(cluster: Cluster) -> None:
    """(d) pg_terminate_backend on the leader's session under load, while another session is already queued
    for the lock and starts a term (as a process taking over does): the old leader's commits in flight fail,
    it cannot resume its term (fenced) and acknowledges nothing that was not committed; once that lock is
    released a standby leads."""
    a = cluster.spawn("a")
    await a.wait_health(SERVING)
    b = cluster.spawn("b")
    await eventually(lambda: _answers(b), 30, what="the standby's gRPC server")
    rival = await asyncpg.connect(cluster.env.dsn)
    try:
        async with load([a.target, b.target]) as running:
            running.start()
            await running.until_acked(150)
            pid = await cluster.lock_holder_pid()
            assert pid is not None
            queued = asyncio.create_task(rival.execute("SELECT pg_advisory_lock($1)", WRITER_LOCK_KEY))
            await eventually(lambda: _waiting_for_lock(cluster), what="the rival queued for the lock")
            assert await cluster.env.sql("SELECT pg_terminate_backend($1, 5000)", pid)
            await asyncio.wait_for(queued, TAKEOVER_S)
            await rival.execute("UPDATE oms_leadership SET term = term + 1, holder = 'rival'")
            await a.wait_health(NOT_SERVING, TAKEOVER_S)
            await eventually(lambda: _logged(a, "fenced"), TAKEOVER_S, what="the old leader fenced")
            loop = asyncio.get_running_loop()
            released = loop.time()
            await rival.close()  # the rival "exits": one of the two standbys takes over
            await running.until_acked(150)
            await running.stop()
        gap = running.first_ack_after(released) - released
        print(f"\nlock released -> first acknowledged order: {gap:.2f}s")
        serving = [p for p in (a, b) if await p.health() == SERVING]
        assert len(serving) == 1, "exactly one leader"
        await check_acknowledged(cluster.env, running, serving[0].target)
        assert (await cluster.env.sql("SELECT term FROM oms_leadership"))[0]["term"] == 3
    finally:
        if not rival.is_closed():
            await rival.close()


async def _waiting_for_lock(cluster: Cluster) -> bool:
    rows = await cluster.env.sql("SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
    return bool(rows)


async def test_lone_leader_resumes_its_term_after_losing_its_session(oms_env: OmsEnv) -> None:
    """Without a standby, a leader whose session was terminated re-takes the lock and continues the same
    term (nobody led in between); what it acknowledged is stored."""
    app = await oms_env.start()
    async with oms_env.client() as client:
        before = await client.submit("BTC-USDT", BUY, "0.01", price="1000", client_order_id="s-1")
        holder = await oms_env.sql(
            "SELECT pid FROM pg_stat_activity WHERE application_name = 'aipx-oms-writer'"
        )
        assert len(holder) == 1
        await oms_env.sql("SELECT pg_terminate_backend($1)", holder[0]["pid"])

        async def resumed() -> bool:
            try:
                await client.submit("BTC-USDT", BUY, "0.01", price="1000", client_order_id="s-2", timeout_s=2)
            except grpc.aio.AioRpcError as exc:
                assert exc.code() in RETRYABLE, exc
                return False
            return True

        await eventually(resumed, TAKEOVER_S, what="the leader's session re-established")
        again = await client.submit("BTC-USDT", BUY, "0.01", price="1000", client_order_id="s-1")
        assert again.order.order_id == before.order.order_id and not again.created
    assert app.leading and app.terms == 1
    assert (await oms_env.sql("SELECT term FROM oms_leadership"))[0]["term"] == 1
    stored = {r["client_order_id"] for r in await oms_env.sql("SELECT client_order_id FROM orders")}
    assert stored == {"s-1", "s-2"}


async def test_a_hung_leader_loses_its_lock_within_the_session_timeout(cluster: Cluster) -> None:
    """SIGSTOP the leader (hung: its kernel still answers TCP, so only the session settings can end its
    session): PostgreSQL ends the idle session after AIPX_OMS_LEADER_SESSION_TIMEOUT_S, the standby leads and,
    once the hung relay's session ends too (session timeout + Kafka request timeout), its events are
    published; after SIGCONT the old leader finds its term over and stays a standby."""
    a = cluster.spawn("a", kafka_timeout_ms=5000)
    await a.wait_health(SERVING)
    b = cluster.spawn("b", kafka_timeout_ms=5000)
    await eventually(lambda: _answers(b), 30, what="the standby's gRPC server")
    async with OmsClient(a.target, KEY_A, timeout_s=5.0) as client:
        before = await client.submit("BTC-USDT", BUY, "0.01", price="1000", client_order_id="before-hang")
    loop = asyncio.get_running_loop()
    stopped = loop.time()
    a.signal(signal.SIGSTOP)
    try:
        await b.wait_health(SERVING, TAKEOVER_S + 5)
        took = loop.time() - stopped
        print(f"\nleader hung (SIGSTOP) -> standby serving after {took:.2f}s (session timeout 5 s)")
        assert took < TAKEOVER_S
        async with OmsClient(b.target, KEY_A, timeout_s=5.0) as client:
            await client.submit("BTC-USDT", BUY, "0.01", price="1000", client_order_id="during-hang")
        env = cluster.env
        published = await read_events(env.kafka, env.events_topic, expect=2, timeout_s=30)
        assert {e.order.client_order_id for e in published} == {"before-hang", "during-hang"}
        print(f"the new leader's event published {loop.time() - stopped:.2f}s after the hang (bound 10 s)")
    finally:
        a.signal(signal.SIGCONT)
    await eventually(lambda: _logged(a, "fenced"), TAKEOVER_S, what="the resumed leader fenced")
    assert await a.health() == NOT_SERVING
    async with OmsClient(b.target, KEY_A, timeout_s=5.0) as client:
        again = await client.submit("BTC-USDT", BUY, "0.01", price="1000", client_order_id="before-hang")
        assert again.order.order_id == before.order.order_id and not again.created


async def test_an_idle_leader_keeps_its_session(oms_env: OmsEnv) -> None:
    """The heartbeat keeps an idle leader's session (and lock) alive past idle_session_timeout."""
    app = await oms_env.start(leader_session_timeout_s=1.5, leader_heartbeat_s=0.5)
    query = "SELECT pid FROM pg_stat_activity WHERE application_name = 'aipx-oms-writer'"
    writer = await oms_env.sql(query)
    assert len(writer) == 1
    loop = asyncio.get_running_loop()
    until = loop.time() + 5.0  # more than three session timeouts without a write
    while loop.time() < until:
        assert app.leading
        await asyncio.sleep(0.1)
    assert await oms_env.sql(query) == writer, "the same session all along"
    async with oms_env.client() as client:
        assert (await client.submit("BTC-USDT", BUY, "0.01", price="1000", client_order_id="idle")).created
