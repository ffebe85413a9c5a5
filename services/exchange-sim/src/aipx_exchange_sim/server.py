"""The simulator: WebSocket feeds (Binance combined streams, Bybit v5 public), the Binance REST depth
snapshot, and a control API for fault injection and statistics.

WebSocket paths: /binance/stream (or /stream; `?streams=a/b` subscribes at connect), /binance/ws (raw
frames), /bybit/v5/public/spot and /bybit/v5/public/linear. REST: GET /api/v3/depth, /api/v3/exchangeInfo,
/api/v3/ping. Control: POST /control/{drop,duplicate,malformed,disconnect,stall,snapshot_failures,rate,clear}
with a JSON body, plus accept_then_drop (accept the next connections, drop each soon after), mute (stop
reading clients' frames, so their pings go unanswered), inject (send given frames as they are) and
used_weight (the REST weight reported in X-MBX-USED-WEIGHT-1M); GET /control/stats.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import random
import ssl
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
from aiohttp import web
from aipx.aio import cancel_and_wait
from aipx.money import parse_decimal
from aipx.numbers import InvalidNumberError, parse_int
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from aipx_exchange_sim import binance, bybit, fast
from aipx_exchange_sim.faults import Faults, malformed_frames
from aipx_exchange_sim.market import SymbolMarket
from aipx_exchange_sim.settings import SimSettings

log = logging.getLogger(__name__)

_conn_ids = itertools.count(1)
_FRAMES = {binance.VENUE: "binance.frames", bybit.VENUE: "bybit.frames"}
_BYBIT_FIRST_ID = 18_521_288  # like the venue's: large; u = 1 would announce a venue restart


@dataclass(eq=False)
class Client:
    """One connected WebSocket client with its subscriptions and outgoing queue."""

    venue: str
    ws: ServerConnection
    raw: bool
    queue: asyncio.Queue[str]
    subscriptions: set[str] = field(default_factory=set)
    out: list[bytes] = field(default_factory=list)
    """Fast mode: encoded WebSocket frames waiting for the next write."""
    conn_id: str = field(default_factory=lambda: f"sim-{next(_conn_ids)}")


class ExchangeSimulator:
    """Serves simulated venue feeds; `start()` binds the ports (0 = any free port), `stop()` closes."""

    def __init__(self, settings: SimSettings | None = None) -> None:
        self.settings = settings or SimSettings()
        self.rng = random.Random(self.settings.seed)
        self.markets: dict[str, SymbolMarket] = {}
        for symbol in self.settings.symbols:
            base, quote = symbol.split("-")
            market = SymbolMarket.create(base, quote, self.rng, self.settings.book_levels)
            self.markets[market.venue_symbol] = market
        self._market_list = list(self.markets.values())
        self.rate = self.settings.rate
        self.faults = Faults()
        self.stats: Counter[str] = Counter()
        self.clients: set[Client] = set()
        self._subscribers: dict[str, set[Client]] = {}
        self._bybit_ids: dict[str, int] = {}  # topic -> last update id pushed
        self._overflow: list[tuple[Client, str]] = []
        self._subscribed = asyncio.Event()
        self._names = {
            vs: {**binance.streams(m), **{f"bybit_{k}": v for k, v in bybit.topics(m).items()}}
            for vs, m in self.markets.items()
        }
        self._malformed = {v: malformed_frames(v) for v in (binance.VENUE, bybit.VENUE)}
        self._canned: dict[str, bytes] = {}
        self._ws_server: Server | None = None
        self._runner: web.AppRunner | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.ws_port = 0
        self.rest_port = 0
        self.connection_times: list[float] = []  # monotonic, each accepted WebSocket connection
        self._weight_minute = 0
        self._weight_used = 0
        self._weight_pinned = False  # set by the used_weight control: no reset at the minute

    # -- lifecycle ---------------------------------------------------------------------------------------

    async def start(self) -> None:
        s = self.settings
        tls: ssl.SSLContext | None = None
        if s.tls_cert_file:
            tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            tls.load_cert_chain(s.tls_cert_file, s.tls_key_file)
        self._ws_server = await serve(
            self._serve_client, s.host, s.ws_port, compression=None, max_size=2**20, ping_interval=20, ssl=tls
        )
        self.ws_port = next(iter(self._ws_server.sockets)).getsockname()[1]
        app = web.Application()
        app.router.add_get("/api/v3/depth", self._depth)
        app.router.add_get("/api/v3/exchangeInfo", self._exchange_info)
        app.router.add_get("/api/v3/ping", self._ping)
        app.router.add_get("/control/stats", self._stats)
        app.router.add_post("/control/{action}", self._control)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, s.host, s.rest_port)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self.rest_port = sockets[0].getsockname()[1] if sockets else s.rest_port
        if s.replay_file:
            self._tasks.append(asyncio.create_task(self._replay(Path(s.replay_file)), name="sim-replay"))
        else:
            if s.fast:
                frames, events = fast.plan(self._market_list, self.rng, s.fast_plan_events)
                generate = self._generate_fast(frames, len(frames) / max(events, 1))
            else:
                generate = self._generate()
            self._tasks.append(asyncio.create_task(generate, name="sim-generate"))
            self._tasks.append(asyncio.create_task(self._push_depth(), name="sim-depth"))
            self._tasks.append(asyncio.create_task(self._push_klines(), name="sim-klines"))
        log.info(
            "exchange simulator on ws://%s:%d (REST %d), %d symbols, rate %s/s",
            s.host,
            self.ws_port,
            self.rest_port,
            len(self.markets),
            self.rate or "max",
        )

    async def stop(self) -> None:
        await cancel_and_wait(*self._tasks, what="simulator")
        self._tasks.clear()
        for client in list(self.clients):
            client.ws.transport.abort()
        if self._ws_server is not None:
            self._ws_server.close()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5):
                    await self._ws_server.wait_closed()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def ws_url(self) -> str:
        scheme = "wss" if self.settings.tls_cert_file else "ws"
        return f"{scheme}://{self.settings.host}:{self.ws_port}"

    @property
    def rest_url(self) -> str:
        return f"http://{self.settings.host}:{self.rest_port}"

    # -- clients -----------------------------------------------------------------------------------------

    async def _serve_client(self, ws: ServerConnection) -> None:
        target = urlsplit(ws.request.path if ws.request else "/")
        path = target.path.rstrip("/")
        if path.startswith("/bybit/"):
            venue, raw = bybit.VENUE, False
        elif path in ("/binance/stream", "/stream", "/binance/ws", "/ws") or path.startswith("/ws/"):
            venue, raw = binance.VENUE, path.endswith("/ws") or path.startswith("/ws/")
        else:
            await ws.close(1008, f"unknown path {path[:50]}")
            return
        client = Client(venue, ws, raw, asyncio.Queue(self.settings.client_queue))
        self.clients.add(client)
        self.stats[f"{venue}.connections"] += 1
        self.connection_times.append(time.monotonic())
        drop_after = self.faults.take_accept_then_drop(venue)
        if drop_after is not None:  # a venue that accepts, then drops the connection (no close handshake)
            self.stats["accepted_then_dropped"] += 1
            asyncio.get_running_loop().call_later(drop_after, ws.transport.abort)
        if venue == binance.VENUE:
            streams = parse_qs(target.query).get("streams", [""])[0]
            for stream in filter(None, streams.split("/")):
                self._subscribe(client, stream)
        writer = asyncio.create_task(self._write(client))
        try:
            async for message in ws:
                self._on_request(client, message)
        except ConnectionClosed:
            pass
        finally:
            writer.cancel()
            self.clients.discard(client)
            for stream in client.subscriptions:
                self._subscribers.get(stream, set()).discard(client)

    async def _write(self, client: Client) -> None:
        queue, ws = client.queue, client.ws
        with contextlib.suppress(ConnectionClosed):
            while True:
                await ws.send(await queue.get())

    def _subscribe(self, client: Client, stream: str) -> None:
        client.subscriptions.add(stream)
        self._subscribers.setdefault(stream, set()).add(client)
        self._subscribed.set()

    def _on_request(self, client: Client, message: str | bytes) -> None:
        if client.venue == binance.VENUE:
            reply, added, removed = binance.handle_request(message, client.subscriptions)
        else:
            reply, added, removed = bybit.handle_request(message, client.subscriptions, client.conn_id)
        self._enqueue(client, reply)
        for stream in removed:
            self._subscribers.get(stream, set()).discard(client)
        for stream in added:
            self._subscribe(client, stream)
            if client.venue == bybit.VENUE and stream.startswith("orderbook."):
                self._bybit_snapshot(client, stream)

    def _enqueue(self, client: Client, frame: str) -> None:
        with contextlib.suppress(asyncio.QueueFull):  # replies are few; a client this far behind is stuck
            client.queue.put_nowait(frame)

    def _bybit_snapshot(self, client: Client, topic: str) -> None:
        _, depth_text, symbol = topic.split(".", 2)
        market = self.markets.get(symbol)
        try:
            depth = parse_int(depth_text, field="depth", minimum=1, maximum=1000)
        except InvalidNumberError:
            return
        if market is None:
            return
        bids, asks = market.top(depth)
        update_id = self._bybit_ids.setdefault(topic, _BYBIT_FIRST_ID)
        msg = bybit.book(
            market, depth, "snapshot", update_id, levels=(bids, asks), now_ms=int(time.time() * 1000)
        )
        # Enqueued in the same step as the subscription: no delta can slip in before the snapshot.
        self._enqueue(client, bybit.frame(msg))

    # -- publishing --------------------------------------------------------------------------------------

    def _publish(self, venue: str, stream: str, build: Callable[..., str], *args: Any) -> None:
        """Queue build(*args) for the subscribers of `stream` (built only if anyone listens), with faults.

        Synchronous (no await per frame); frames that do not fit a full client queue wait in `_overflow`
        until `_drain()` (called before the next event), which is where a slow client slows the feed down.
        """
        clients = self._subscribers.get(stream)
        if not clients:
            return
        copies = self.faults.copies(venue, stream) if self.faults.active else 1
        if copies == 0:
            self.stats[f"{venue}.dropped"] += 1
            return
        frame = build(*args)
        if copies == 2:
            self.stats[f"{venue}.duplicated"] += 1
        for client in clients:
            for _ in range(copies):
                if self._overflow or client.queue.full():
                    self._overflow.append((client, frame))
                else:
                    client.queue.put_nowait(frame)
        self.stats[_FRAMES[venue]] += len(clients) * copies

    async def _drain(self) -> None:
        """Wait until every overflowed frame found room in its client's queue (backpressure)."""
        while self._overflow:
            client, frame = self._overflow.pop(0)
            if client in self.clients:
                await client.queue.put(frame)

    async def _inject_malformed(self) -> None:
        for venue in (binance.VENUE, bybit.VENUE):
            count = self.faults.take_malformed(venue)
            frames = self._malformed[venue]
            for _ in range(count):
                frame = next(frames)
                for client in [c for c in self.clients if c.venue == venue]:
                    await client.queue.put(frame)
                self.stats[f"{venue}.malformed"] += 1

    def _publish_trade(self, market: SymbolMarket, now_ms: int) -> None:
        trade, top_changed = market.step_trade(now_ms)
        names = self._names[market.venue_symbol]
        stream = names["trade"]
        self._publish(binance.VENUE, stream, _binance, stream, binance.trade, market, trade, now_ms)
        stream = names["aggTrade"]
        self._publish(binance.VENUE, stream, _binance, stream, binance.agg_trade, market, trade, now_ms)
        self._publish(bybit.VENUE, names["bybit_trade"], _bybit, bybit.public_trade, market, trade, now_ms)
        if top_changed:
            self._publish_top(market, now_ms)

    def _publish_top(self, market: SymbolMarket, now_ms: int) -> None:
        names = self._names[market.venue_symbol]
        stream = names["bookTicker"]
        self._publish(binance.VENUE, stream, _binance, stream, binance.book_ticker, market)
        topic = names["bybit_bbo"]
        if self._subscribers.get(topic):
            update_id = self._bybit_ids[topic] = self._bybit_ids.get(topic, _BYBIT_FIRST_ID) + 1
            bid, ask = market.best_bid, market.best_ask
            levels = ([(bid, market.bids.get(bid, 0))], [(ask, market.asks.get(ask, 0))])
            msg = bybit.book(market, 1, "delta", update_id, levels=levels, now_ms=now_ms)
            self._publish(bybit.VENUE, topic, bybit.frame, msg)

    def _step(self, now_ms: int) -> None:
        """One market event on a random symbol: a trade (45%) or a book change."""
        rng = self.rng
        market = self._market_list[int(rng.random() * len(self._market_list))]
        if rng.random() < 0.45:
            self._publish_trade(market, now_ms)
        elif market.step_book():
            self._publish_top(market, now_ms)
        self.stats["events"] += 1

    async def _generate(self) -> None:
        started = time.monotonic()
        produced = 0
        while True:
            if (stall := self.faults.stalled()) > 0:
                await asyncio.sleep(stall)
                started, produced = time.monotonic(), 0
                continue
            if not self.clients:  # nobody listens: idle instead of spinning (matters at full speed)
                await asyncio.sleep(0.05)
                started, produced = time.monotonic(), 0
                continue
            if self.faults.malformed:
                await self._inject_malformed()
            if self.rate <= 0:
                due = 64
            else:
                due = min(int((time.monotonic() - started) * self.rate) - produced, 1_000)
                if due <= 0:
                    await asyncio.sleep(max(0.001, min(0.05, 1 / self.rate)))
                    continue
            now_ms = int(time.time() * 1000)
            for _ in range(due):
                self._step(now_ms)
                if self._overflow:
                    await self._drain()
            produced += due
            if self.rate <= 0:
                await asyncio.sleep(0)

    async def _generate_fast(self, frames: list[fast.PlannedFrame], frames_per_event: float) -> None:
        """Fast mode: the planned frames in a cycle, paced like `_generate` (rate = market events/s)."""
        subscribers = self._subscribers
        n, i, cycle = len(frames), 0, 0
        started, produced = time.monotonic(), 0
        high_water = self.settings.client_queue * 256  # bytes buffered per client before we wait
        stats = self.stats
        while True:
            if (stall := self.faults.stalled()) > 0:
                await asyncio.sleep(stall)
                started, produced = time.monotonic(), 0
                continue
            if not self.clients:
                await asyncio.sleep(0.05)
                started, produced = time.monotonic(), 0
                continue
            if self.rate <= 0:
                due = 256
            else:
                due = min(int((time.monotonic() - started) * self.rate * frames_per_event) - produced, 2_000)
                if due <= 0:
                    await asyncio.sleep(max(0.001, min(0.05, 1 / (self.rate * frames_per_event))))
                    continue
            now_ms = int(time.time() * 1000)
            written = 0
            for _ in range(due):
                planned = frames[i]
                clients = subscribers.get(planned.stream)
                if clients:
                    data = fast.ws_text_frame(planned.render(cycle, now_ms))
                    for client in clients:
                        client.out.append(data)
                    written += len(clients)
                i += 1
                if i == n:
                    i, cycle = 0, cycle + 1
            produced += due
            stats["binance.frames"] += written
            stats["events"] += round(due / frames_per_event)
            for client in list(self.clients):
                if client.out:
                    transport = client.ws.transport
                    if not transport.is_closing():
                        # A client going away may have half-closed (write_eof) without closing yet.
                        with contextlib.suppress(RuntimeError):
                            transport.write(b"".join(client.out))
                    client.out.clear()
                    # A slow reader slows the feed down (TCP backpressure), as the queues do in normal mode;
                    # the transport's buffer offers no public awaitable, so it is polled.
                    while not transport.is_closing() and transport.get_write_buffer_size() > high_water:  # noqa: ASYNC110
                        await asyncio.sleep(0.001)
            if self.rate <= 0:
                await asyncio.sleep(0)

    async def _push_depth(self) -> None:
        interval = self.settings.depth_interval_ms / 1000
        while True:
            await asyncio.sleep(interval)
            if self.faults.stalled():
                continue
            now_ms = int(time.time() * 1000)
            for market in self._market_list:
                diff = market.take_diff(now_ms)
                if diff is None:
                    continue
                stream = f"{market.venue_symbol.lower()}@depth@100ms"
                self._publish(binance.VENUE, stream, _binance, stream, binance.depth_update, market, diff)
                topic = f"orderbook.{bybit.BOOK_DEPTH}.{market.venue_symbol}"
                if self._subscribers.get(topic):
                    update_id = self._bybit_ids[topic] = self._bybit_ids.get(topic, _BYBIT_FIRST_ID) + 1
                    levels = (diff.bids, diff.asks)
                    msg = bybit.book(
                        market, bybit.BOOK_DEPTH, "delta", update_id, levels=levels, now_ms=now_ms
                    )
                    self._publish(bybit.VENUE, topic, bybit.frame, msg)

    async def _push_klines(self) -> None:
        interval = self.settings.kline_interval_ms / 1000
        while True:
            await asyncio.sleep(interval)
            if self.faults.stalled():
                continue
            now_ms = int(time.time() * 1000)
            for market in self._market_list:
                candle, closed = market.current_candle(now_ms)
                stream = f"{market.venue_symbol.lower()}@kline_1m"
                args = (market, candle, closed, now_ms)
                self._publish(binance.VENUE, stream, _binance, stream, binance.kline, *args)
                self._publish(bybit.VENUE, f"kline.1.{market.venue_symbol}", _bybit, bybit.kline, *args)
                await self._drain()

    async def _replay(self, path: Path) -> None:
        """Replay a JSON-lines recording: {"venue", "stream", "frame" (object or text), "delay_ms"}; lines
        with "rest" and "body" register canned REST answers (e.g. "/api/v3/depth?symbol=BTCUSDT")."""
        speed = self.settings.replay_speed
        await self._subscribed.wait()  # start with the first subscription: no client misses the beginning
        with path.open("rb") as lines:
            for number, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                try:
                    entry = orjson.loads(line)
                    if "rest" in entry:
                        self._canned[str(entry["rest"])] = orjson.dumps(entry["body"])
                        continue
                    venue, stream, frame = str(entry["venue"]), entry.get("stream"), entry["frame"]
                except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
                    log.warning("replay %s:%d skipped: %s", path, number, exc)
                    continue
                delay = float(entry.get("delay_ms", 0)) / 1000
                if delay and speed:
                    await asyncio.sleep(delay / speed)
                text = frame if isinstance(frame, str) else orjson.dumps(frame).decode()
                if stream is None:
                    for client in [c for c in self.clients if c.venue == venue]:
                        await client.queue.put(text)
                else:
                    self._publish(venue, str(stream), str, text)
                    await self._drain()
                self.stats["replayed"] += 1
        log.info("replay of %s finished (%d frames)", path, self.stats["replayed"])

    # -- faults ------------------------------------------------------------------------------------------

    async def disconnect(self, venue: str | None = None, *, abort: bool = False) -> int:
        """Close every client connection (of `venue`); abort=True drops TCP without a close handshake."""
        victims = [c for c in self.clients if venue is None or c.venue == venue]
        for client in victims:
            if abort:
                client.ws.transport.abort()
            else:
                await client.ws.close(1001, "simulator disconnect")
        self.stats["disconnects"] += len(victims)
        return len(victims)

    # -- REST --------------------------------------------------------------------------------------------

    async def _depth(self, request: web.Request) -> web.Response:
        canned = self._canned.get(request.path_qs)
        if canned is not None:
            return web.Response(body=canned, content_type="application/json")
        symbol = request.query.get("symbol", "")
        market = self.markets.get(symbol)
        if market is None:
            return web.json_response({"code": -1121, "msg": "Invalid symbol."}, status=400)
        if self.faults.snapshot_failures > 0:
            self.faults.snapshot_failures -= 1
            return web.json_response(
                {"code": -1003, "msg": "Too many requests."}, status=429, headers={"Retry-After": "1"}
            )
        try:
            limit = min(5000, max(1, parse_int(request.query.get("limit", "100"), field="limit")))
        except InvalidNumberError:
            return web.json_response(
                {"code": -1100, "msg": "Illegal characters in parameter 'limit'."}, status=400
            )
        self.stats["snapshots"] += 1
        headers = {"X-MBX-USED-WEIGHT-1M": str(self._use_weight(_depth_weight(limit)))}
        return web.Response(
            body=binance.depth_snapshot(market, limit), content_type="application/json", headers=headers
        )

    def _use_weight(self, weight: int) -> int:
        """Add a request's weight to the current minute's (Binance's IP weight), returning the total."""
        minute = int(time.time() // 60)
        if minute != self._weight_minute and not self._weight_pinned:
            self._weight_minute, self._weight_used = minute, 0
        self._weight_used += weight
        return self._weight_used

    async def _exchange_info(self, _: web.Request) -> web.Response:
        symbols = [
            {
                "symbol": m.venue_symbol,
                "status": "TRADING",
                "baseAsset": m.base,
                "quoteAsset": m.quote,
                "baseAssetPrecision": 8,
                "quoteAssetPrecision": 8,
                "orderTypes": ["LIMIT", "MARKET"],
                "isSpotTradingAllowed": True,
                "permissions": ["SPOT"],
                "filters": [
                    {
                        "filterType": "PRICE_FILTER",
                        "minPrice": "0.01",
                        "maxPrice": "1000000.00",
                        "tickSize": "0.01",
                    },
                    {
                        "filterType": "LOT_SIZE",
                        "minQty": "0.001",
                        "maxQty": "100000.000",
                        "stepSize": "0.001",
                    },
                ],
            }
            for m in self._market_list
        ]
        return web.json_response(
            {
                "timezone": "UTC",
                "serverTime": int(time.time() * 1000),
                "symbols": symbols,
                "rateLimits": [],
                "exchangeFilters": [],
            }
        )

    async def _ping(self, _: web.Request) -> web.Response:
        return web.json_response({})

    async def _stats(self, _: web.Request) -> web.Response:
        return web.json_response({**self.stats, "clients": len(self.clients), "rate": self.rate})

    async def _control(self, request: web.Request) -> web.Response:
        action = request.match_info["action"]
        try:
            body: dict[str, Any] = await request.json() if request.can_read_body else {}
            if not isinstance(body, dict):
                raise TypeError("body must be a JSON object")
            result = await self.control(action, body)
        except (ValueError, TypeError, KeyError) as exc:
            return web.json_response({"ok": False, "error": f"{type(exc).__name__}: {exc}"}, status=400)
        return web.json_response({"ok": True, **result})

    async def control(self, action: str, body: dict[str, Any]) -> dict[str, Any]:
        """Apply a control action (the HTTP API calls this; tests may call it directly)."""
        venue = body.get("venue")
        stream = body.get("stream")
        if action == "drop":
            self.faults.drop(_count(body), venue, stream)
        elif action == "duplicate":
            self.faults.duplicate(_count(body), venue, stream)
        elif action == "malformed":
            for v in [venue] if venue else [binance.VENUE, bybit.VENUE]:
                self.faults.add_malformed(_count(body), v)
        elif action == "disconnect":
            return {"disconnected": await self.disconnect(venue, abort=bool(body.get("abort", False)))}
        elif action == "stall":
            self.faults.stall(_number(body["seconds"], "seconds", MAX_STALL_S))
        elif action == "snapshot_failures":
            self.faults.snapshot_failures += _count(body)
        elif action == "rate":
            self.rate = _number(body["rate"], "rate", MAX_RATE)
        elif action == "accept_then_drop":
            self.faults.drop_after_accept(
                _count(body), _number(body.get("after_s", 0.1), "after_s", MAX_STALL_S), venue
            )
        elif action == "mute":
            muted = [c for c in self.clients if venue is None or c.venue == venue]
            for client in muted:
                client.ws.transport.pause_reading()
            return {"muted": len(muted)}
        elif action == "inject":
            frames = body["frames"]
            if not isinstance(frames, list) or not all(isinstance(f, str) for f in frames):
                raise TypeError("frames must be a list of strings")
            targets = [c for c in self.clients if venue is None or c.venue == venue]
            for client in targets:
                for frame in frames:
                    await client.queue.put(frame)
            return {"clients": len(targets)}
        elif action == "used_weight":
            used = body.get("used")
            self._weight_pinned = used is not None
            self._weight_used = (
                0 if used is None else parse_int(used, field="used", minimum=0, maximum=MAX_COUNT)
            )
        elif action == "clear":
            self.faults.clear()
        else:
            raise KeyError(f"unknown action {action!r}")
        return {}


MAX_COUNT = 1_000_000
"""Most frames one control call may drop, duplicate or corrupt (or snapshots fail)."""
MAX_STALL_S = 3600.0
MAX_RATE = 1_000_000.0
"""Messages per second; the generator publishes at most 1,000 per step anyway."""


def _count(body: dict[str, Any]) -> int:
    """The control body's "count" (default 1): an integer (JSON number or ASCII digits) in [0, MAX_COUNT]."""
    return parse_int(body.get("count", 1), field="count", minimum=0, maximum=MAX_COUNT)


def _number(value: object, field: str, maximum: float) -> float:
    """A finite number in [0, maximum] from a JSON number or a decimal string (InvalidNumberError, a
    ValueError: the control API answers 400). Never NaN or infinity: they stopped the generator."""
    if isinstance(value, bool):
        raise InvalidNumberError(field, "must be a number, got a boolean")
    if isinstance(value, int):
        number = float(value) if abs(value) <= maximum else math.inf
    elif isinstance(value, float):
        number = value
    else:
        number = float(parse_decimal(value, field=field))
    if not 0 <= number <= maximum:  # NaN fails this too
        raise InvalidNumberError(field, f"{field} must be >= 0 and <= {maximum:g}, got {value!r}"[:200])
    return number


def _depth_weight(limit: int) -> int:
    """Binance's weight of GET /api/v3/depth by limit."""
    return 5 if limit <= 100 else 25 if limit <= 500 else 50 if limit <= 1000 else 250


def _binance(stream: str, build: Callable[..., dict[str, Any]], *args: Any) -> str:
    return binance.combined(stream, build(*args))


def _bybit(build: Callable[..., dict[str, Any]], *args: Any) -> str:
    return bybit.frame(build(*args))
