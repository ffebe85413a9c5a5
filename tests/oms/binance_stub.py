"""A local stand-in for the Binance spot API (REST + user-data stream) for tests: checks API key and HMAC
signature like Binance, keeps orders, pushes executionReport events over a WebSocket. Never the internet."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import itertools
import json
import time
import uuid
from decimal import Decimal
from enum import StrEnum
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import WSMsgType, web


class Fault(StrEnum):
    """What goes wrong with a new-order request (fault injection)."""

    ACCEPT_THEN_TIMEOUT = "accept-then-timeout"  # the order is live at the venue; the answer never comes
    ACCEPT_THEN_5XX = "accept-then-5xx"  # the order is live; the answer is a 503
    DROP_THEN_TIMEOUT = "drop-then-timeout"  # the request never reached the matching engine; no answer
    DROP_THEN_5XX = "drop-then-5xx"  # never reached it; the answer is a 503
    # The request reaches the matching engine `late_accept_s` after it was sent (no answer before the client
    # gives up): accepted then if within its timestamp + recvWindow (or `ignore_recv_window`), else refused.
    LATE = "late"


class BinanceStub:
    """`await start()` -> (rest base url, ws base url). Tests drive fills with `fill(...)`, and inject faults:
    `submit_faults` (one Fault per next new-order request), `query_faults` (that many next order queries
    answer 503), `silent_fill_price` (an order accepted under a fault is filled at once, its event lost), and
    hold new orders on their way (`hold_new_orders`: they reach the book when `release_new_orders` is called;
    meanwhile the venue does not know them). Signed requests past their timestamp + recvWindow are refused
    (-1021) like Binance does. Each fill is a trade (GET /api/v3/myTrades) with its fee and liquidity."""

    def __init__(self, api_key: str, secret: str) -> None:
        self.api_key = api_key
        self.secret = secret
        self.orders: dict[str, dict[str, Any]] = {}  # by client order id: the latest with that id
        self.by_id: dict[int, dict[str, Any]] = {}  # every order by its orderId (a replaced one included)
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.market_price = Decimal("100")
        self._ids = itertools.count(1000)
        self._trades = itertools.count(1)
        self._sockets: set[web.WebSocketResponse] = set()
        self._runner: web.AppRunner | None = None
        self.port = 0
        self.connections_total = 0
        self.submit_faults: list[Fault] = []
        self.cancel_faults: list[
            Fault
        ] = []  # *_THEN_5XX only; a cancel applied under a fault pushes no event
        self.query_faults = 0
        self.silent_fill_price: Decimal | None = None
        self.late_accept_s = 2.0
        self.ignore_recv_window = False  # a venue clock far behind ours: late requests are still accepted
        self.late_fill: tuple[Decimal, Decimal] | None = None  # (quantity, price) filled at a late accept
        self.late_fill_push = True
        self.not_found_answers = 0  # order queries answered -2013
        self.trades: dict[int, list[dict[str, Any]]] = {}  # venue order id -> its trades
        self.balances_time_ms = 0  # the account's last change (0: never): the account endpoint's updateTime
        self._background: set[asyncio.Task[None]] = set()
        # The account's balances, asset -> (free, locked): GET /api/v3/account; `push_balances` streams them.
        self.balances: dict[str, tuple[Decimal, Decimal]] = {}
        self._closed = asyncio.Event()
        self._released: asyncio.Event | None = None
        self.held = 0  # new-order requests waiting for release_new_orders

    def hold_new_orders(self) -> None:
        self._released = asyncio.Event()

    def release_new_orders(self) -> None:
        if self._released is not None:
            self._released.set()
            self._released = None

    async def start(self) -> tuple[str, str]:
        app = web.Application()
        app.router.add_post("/api/v3/order", self._new_order)
        app.router.add_delete("/api/v3/order", self._cancel)
        app.router.add_get("/api/v3/order", self._query)
        app.router.add_get("/api/v3/openOrders", self._open_orders)
        app.router.add_get("/api/v3/allOrders", self._all_orders)
        app.router.add_get("/api/v3/myTrades", self._my_trades)
        app.router.add_get("/api/v3/account", self._account)
        app.router.add_post("/api/v3/order/cancelReplace", self._cancel_replace)
        app.router.add_post("/api/v3/userDataStream", self._listen_key)
        app.router.add_put("/api/v3/userDataStream", self._listen_key)
        app.router.add_get("/ws/{listen_key}", self._ws)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return f"http://127.0.0.1:{self.port}", f"ws://127.0.0.1:{self.port}"

    async def stop(self) -> None:
        self._closed.set()
        for task in list(self._background):
            task.cancel()
        for ws in list(self._sockets):
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def connected(self) -> int:
        return len(self._sockets)

    def requests_for(self, method: str, path: str, client_order_id: str) -> int:
        """How many requests of this kind named this client order id (new or original)."""
        return sum(
            1
            for m, p, params in self.requests
            if (m, p) == (method, path)
            and client_order_id in (params.get("newClientOrderId"), params.get("origClientOrderId"))
        )

    # --- auth ------------------------------------------------------------------------------------------

    def _check(self, request: web.Request, *, signed: bool = True) -> dict[str, str]:
        if request.headers.get("X-MBX-APIKEY") != self.api_key:
            raise web.HTTPUnauthorized(
                text=json.dumps({"code": -2015, "msg": "Invalid API-key"}), content_type="application/json"
            )
        query = request.rel_url.raw_query_string
        params = dict(parse_qsl(query))
        self.requests.append((request.method, request.path, params))
        if signed:
            body, _, signature = query.rpartition("&signature=")
            expected = hmac.new(self.secret.encode(), body.encode(), hashlib.sha256).hexdigest()
            if not signature or not hmac.compare_digest(signature, expected) or "timestamp" not in params:
                raise web.HTTPBadRequest(
                    text=json.dumps({"code": -1022, "msg": "Signature for this request is not valid."}),
                    content_type="application/json",
                )
            if not self._in_window(params):
                raise web.HTTPBadRequest(
                    text=json.dumps(
                        {"code": -1021, "msg": "Timestamp for this request is outside of the recvWindow."}
                    ),
                    content_type="application/json",
                )
        return params

    def _in_window(self, params: dict[str, str]) -> bool:
        deadline = int(params["timestamp"]) + int(params.get("recvWindow", "5000"))
        return self.ignore_recv_window or int(time.time() * 1000) <= deadline

    @staticmethod
    def _error(code: int, msg: str, status: int = 400) -> web.Response:
        return web.json_response({"code": code, "msg": msg}, status=status)

    # --- orders ----------------------------------------------------------------------------------------

    def _view(self, o: dict[str, Any]) -> dict[str, Any]:
        return {
            "symbol": o["symbol"], "orderId": o["orderId"], "clientOrderId": o["clientOrderId"],
            "price": str(o["price"]), "origQty": str(o["origQty"]), "executedQty": str(o["executedQty"]),
            "cummulativeQuoteQty": str(o["cummulativeQuoteQty"]), "status": o["status"],
            "timeInForce": o["timeInForce"], "type": o["type"], "side": o["side"], "time": o["time"],
        }  # fmt: skip

    def add_order(self, params: dict[str, str]) -> dict[str, Any]:
        order: dict[str, Any] = {
            "symbol": params["symbol"],
            "orderId": next(self._ids),
            "clientOrderId": params.get("newClientOrderId") or uuid.uuid4().hex,
            "side": params["side"],
            "type": params["type"],
            "timeInForce": params.get("timeInForce", "GTC"),
            "price": Decimal(params.get("price", "0")),
            "origQty": Decimal(params["quantity"]),
            "executedQty": Decimal(0),
            "cummulativeQuoteQty": Decimal(0),
            "status": "NEW",
            "time": int(time.time() * 1000),
        }
        self.orders[order["clientOrderId"]] = order
        self.by_id[order["orderId"]] = order
        return order

    async def _new_order(self, request: web.Request) -> web.Response:
        params = self._check(request)
        released = self._released
        if released is not None:  # on its way: the matching engine has not seen it yet
            self.held += 1
            try:
                await released.wait()
            finally:
                self.held -= 1
        for required in ("symbol", "side", "type", "quantity"):
            if required not in params:
                return self._error(-1102, f"Mandatory parameter '{required}' was not sent.")
        existing = self.orders.get(params.get("newClientOrderId", ""))
        if existing is not None and existing["status"] in ("NEW", "PARTIALLY_FILLED"):
            return self._error(-2010, "Duplicate order sent.")
        if (
            params["type"] == "LIMIT_MAKER"
            and Decimal(params.get("price", "0")) >= self.market_price
            and params["side"] == "BUY"
        ):
            return self._error(-2010, "Order would immediately match and take.")
        fault = self.submit_faults.pop(0) if self.submit_faults else None
        if fault is Fault.LATE:
            task = asyncio.create_task(self._accept_late(params))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
            return await self._fail(Fault.DROP_THEN_TIMEOUT)
        if fault in (Fault.DROP_THEN_TIMEOUT, Fault.DROP_THEN_5XX):
            return await self._fail(fault)
        order = self.add_order(params)
        await self._push(order, "NEW")
        if order["type"] == "MARKET":
            await self.fill(order["clientOrderId"], order["origQty"], self.market_price)
        if fault is not None:
            if self.silent_fill_price is not None:
                await self.fill(order["clientOrderId"], order["origQty"], self.silent_fill_price, push=False)
            return await self._fail(fault)
        return web.json_response(
            {"symbol": order["symbol"], "orderId": order["orderId"], "clientOrderId": order["clientOrderId"],
             "transactTime": int(time.time() * 1000)}
        )  # fmt: skip

    async def _accept_late(self, params: dict[str, str]) -> None:
        await asyncio.sleep(self.late_accept_s)
        if not self._in_window(params):
            return  # Binance's matching engine refuses it too: it never exists
        order = self.add_order(params)
        await self._push(order, "NEW")
        if self.late_fill is not None:
            quantity, price = self.late_fill
            await self.fill(order["clientOrderId"], quantity, price, push=self.late_fill_push)

    async def _my_trades(self, request: web.Request) -> web.Response:
        params = self._check(request)
        return web.json_response(self.trades.get(int(params.get("orderId", "0")), []))

    async def _cancel(self, request: web.Request) -> web.Response:
        params = self._check(request)
        fault = self.cancel_faults.pop(0) if self.cancel_faults else None
        if fault is Fault.DROP_THEN_5XX:
            return await self._fail(fault)
        order = self.orders.get(params.get("origClientOrderId", ""))
        if order is None or order["status"] not in ("NEW", "PARTIALLY_FILLED"):
            return self._error(-2011, "Unknown order sent.")
        order["status"] = "CANCELED"
        if fault is not None:
            return await self._fail(fault)  # canceled; the answer and the event are lost
        await self._push(order, "CANCELED")
        return web.json_response(self._view(order))

    async def _fail(self, fault: Fault) -> web.Response:
        if fault in (Fault.ACCEPT_THEN_TIMEOUT, Fault.DROP_THEN_TIMEOUT):
            # No answer before the client gives up (it times out well before this).
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closed.wait(), 30)
        return self._error(-1001, "Internal error; unable to process your request. Please try again.", 503)

    async def _query(self, request: web.Request) -> web.Response:
        params = self._check(request)
        if self.query_faults > 0:
            self.query_faults -= 1
            return self._error(-1001, "Internal error; unable to process your request.", 503)
        order = self.orders.get(params.get("origClientOrderId", ""))
        if order is None:
            self.not_found_answers += 1
            return self._error(-2013, "Order does not exist.")
        return web.json_response(self._view(order))

    async def _open_orders(self, request: web.Request) -> web.Response:
        self._check(request)
        return web.json_response(
            [self._view(o) for o in self.orders.values() if o["status"] in ("NEW", "PARTIALLY_FILLED")]
        )

    async def _all_orders(self, request: web.Request) -> web.Response:
        params = self._check(request)
        start = int(params.get("startTime", "0"))
        rows = [
            self._view(o)
            for o in sorted(self.by_id.values(), key=lambda o: o["orderId"])
            if o["symbol"] == params.get("symbol") and o["time"] >= start
        ]
        return web.json_response(rows[: int(params.get("limit", "500"))])

    async def _cancel_replace(self, request: web.Request) -> web.Response:
        params = self._check(request)
        old = self.orders.get(params.get("cancelOrigClientOrderId", ""))
        if old is None or old["status"] not in ("NEW", "PARTIALLY_FILLED"):
            return self._error(-2022, "Order cancel-replace failed.")
        old["status"] = "CANCELED"
        cancel_id = params.get("cancelNewClientOrderId") or f"cr-{uuid.uuid4().hex[:8]}"
        await self._push(old, "CANCELED", cancel_id=cancel_id)
        new = self.add_order(params)
        await self._push(new, "NEW")
        now = int(time.time() * 1000)
        # As Binance answers (spot REST API, "Cancel an Existing Order and Send a New Order"): the cancel's
        # answer carries the canceled order's final executedQty and cummulativeQuoteQty.
        cancel_response = {
            "symbol": old["symbol"], "origClientOrderId": old["clientOrderId"], "orderId": old["orderId"],
            "orderListId": -1, "clientOrderId": cancel_id, "transactTime": now, "price": str(old["price"]),
            "origQty": str(old["origQty"]), "executedQty": str(old["executedQty"]),
            "cummulativeQuoteQty": str(old["cummulativeQuoteQty"]), "status": "CANCELED",
            "timeInForce": old["timeInForce"], "type": old["type"], "side": old["side"],
            "selfTradePreventionMode": "NONE",
        }  # fmt: skip
        new_response = {
            "symbol": new["symbol"], "orderId": new["orderId"], "orderListId": -1,
            "clientOrderId": new["clientOrderId"], "transactTime": now, "price": str(new["price"]),
            "origQty": str(new["origQty"]), "executedQty": "0", "cummulativeQuoteQty": "0", "status": "NEW",
            "timeInForce": new["timeInForce"], "type": new["type"], "side": new["side"], "fills": [],
            "selfTradePreventionMode": "NONE",
        }  # fmt: skip
        return web.json_response(
            {"cancelResult": "SUCCESS", "newOrderResult": "SUCCESS", "cancelResponse": cancel_response,
             "newOrderResponse": new_response}
        )  # fmt: skip

    async def _account(self, request: web.Request) -> web.Response:
        self._check(request)
        rows = [{"asset": a, "free": str(f), "locked": str(lk)} for a, (f, lk) in self.balances.items()]
        body: dict[str, Any] = {"accountType": "SPOT", "canTrade": True, "balances": rows}
        if self.balances_time_ms:
            body["updateTime"] = self.balances_time_ms
        return web.json_response(body)

    async def _listen_key(self, request: web.Request) -> web.Response:
        self._check(request, signed=False)
        return web.json_response({"listenKey": "stub-listen-key"})

    async def _ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=10)
        await ws.prepare(request)
        self._sockets.add(ws)
        self.connections_total += 1
        try:
            async for message in ws:
                if message.type in (WSMsgType.CLOSE, WSMsgType.ERROR):
                    break
        finally:
            self._sockets.discard(ws)
        return ws

    # --- test controls ---------------------------------------------------------------------------------

    async def fill(
        self,
        client_order_id: str,
        quantity: Decimal,
        price: Decimal,
        *,
        push: bool = True,
        maker: bool = False,
        fee: tuple[Decimal, str] | None = None,
        balances_first: dict[str, tuple[Decimal, Decimal]] | None = None,
        report_delay_s: float = 0.0,
        venue_order_id: int | None = None,
    ) -> str:
        """Execute part of an order (the latest with that client id, or the order `venue_order_id`): one
        trade (fee: 0.1% of the quote in USDT unless given as (amount, asset)); pushes the TRADE
        executionReport unless push=False (a missed event, or one to `push_raw` later: it is returned).
        `balances_first`: the balances the trade leaves, pushed (outboundAccountPosition, its "u" the trade's
        time) before the executionReport (`report_delay_s` earlier), as Binance may."""
        order = self.orders[client_order_id] if venue_order_id is None else self.by_id[venue_order_id]
        order["executedQty"] += quantity
        order["cummulativeQuoteQty"] += quantity * price
        order["status"] = "FILLED" if order["executedQty"] == order["origQty"] else "PARTIALLY_FILLED"
        commission, asset = fee if fee is not None else (quantity * price * Decimal("0.001"), "USDT")
        now = int(time.time() * 1000)
        trade = {
            "symbol": order["symbol"], "id": next(self._trades), "orderId": order["orderId"],
            "price": str(price), "qty": str(quantity), "quoteQty": str(quantity * price),
            "commission": str(commission), "commissionAsset": asset, "time": now,
            "isBuyer": order["side"] == "BUY", "isMaker": maker, "isBestMatch": True,
        }  # fmt: skip
        self.trades.setdefault(order["orderId"], []).append(trade)
        if balances_first is not None:
            await self.push_balances(balances_first, at_ms=now)
            await asyncio.sleep(report_delay_s)
        event = self._event(order, "TRADE", trade=trade)
        if push:
            await self.push_raw(event)
        return event

    async def push_balances(
        self, changed: dict[str, tuple[Decimal, Decimal]], *, at_ms: int | None = None
    ) -> None:
        """Set some balances and push the outboundAccountPosition event Binance sends for them (its "u", the
        account's last change, `at_ms` or now)."""
        self.balances.update(changed)
        now = int(time.time() * 1000)
        self.balances_time_ms = at_ms or now
        event = {
            "e": "outboundAccountPosition", "E": now, "u": self.balances_time_ms,
            "B": [{"a": a, "f": str(f), "l": str(lk)} for a, (f, lk) in changed.items()],
        }  # fmt: skip
        for ws in list(self._sockets):
            await ws.send_str(json.dumps(event))

    async def push_raw(self, frame: str) -> None:
        """Send `frame` as it is to every user-stream connection (a malformed report, for instance)."""
        for ws in list(self._sockets):
            await ws.send_str(frame)
        await asyncio.sleep(0)

    async def drop_connections(self) -> None:
        for ws in list(self._sockets):
            await ws.close()

    async def _push(
        self,
        order: dict[str, Any],
        execution: str,
        *,
        trade: dict[str, Any] | None = None,
        cancel_id: str = "",
    ) -> None:
        event = self._event(order, execution, trade=trade, cancel_id=cancel_id)
        for ws in list(self._sockets):
            await ws.send_str(event)
        await asyncio.sleep(0)

    @staticmethod
    def _event(
        order: dict[str, Any], execution: str, *, trade: dict[str, Any] | None = None, cancel_id: str = ""
    ) -> str:
        canceled = execution == "CANCELED"
        now = int(time.time() * 1000)
        t = trade or {"qty": "0", "price": "0", "commission": "0", "commissionAsset": "USDT", "time": now,
                      "id": -1, "isMaker": False}  # fmt: skip
        event = {
            "e": "executionReport", "E": int(time.time() * 1000), "s": order["symbol"],
            "c": (cancel_id or f"web_{uuid.uuid4().hex[:10]}") if canceled else order["clientOrderId"],
            "C": order["clientOrderId"] if canceled else "",
            "S": order["side"], "o": order["type"], "f": order["timeInForce"], "q": str(order["origQty"]),
            "p": str(order["price"]), "x": execution, "X": order["status"], "r": "NONE",
            "i": order["orderId"],
            "l": t["qty"], "z": str(order["executedQty"]), "L": t["price"],
            "n": t["commission"], "N": t["commissionAsset"], "T": t["time"], "t": t["id"],
            "m": t["isMaker"], "Z": str(order["cummulativeQuoteQty"]),
        }  # fmt: skip
        return json.dumps(event)
