"""The console's HTTP routes: the page, the event stream, and the admin actions (translate, then delegate)."""

from __future__ import annotations

import asyncio
import json
import logging
from importlib import resources
from typing import Any

from aiohttp import web
from aipx.v1.orders_pb2 import OrderStatus

from aipx_console.adapters.oms import OmsCallError, OmsGateway
from aipx_console.domain.views import enum_name
from aipx_console.metrics import BROWSERS
from aipx_console.web.hub import Hub

log = logging.getLogger(__name__)

STATIC = resources.files("aipx_console.web") / "static"
ADMIN_HEADER = "X-Admin-Token"
HEARTBEAT_S = 15.0

hub_key = web.AppKey("hub", Hub)
oms_key = web.AppKey("oms", OmsGateway)


def _static(name: str, content_type: str) -> web.Response:
    return web.Response(body=(STATIC / name).read_bytes(), content_type=content_type, charset="utf-8")


async def index(_: web.Request) -> web.Response:
    return _static("index.html", "text/html")


async def asset(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    types = {".js": "application/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
    suffix = name[name.rfind(".") :] if "." in name else ""
    if "/" in name or ".." in name or suffix not in types or not (STATIC / name).is_file():
        raise web.HTTPNotFound(text=f"no asset {name!r}")
    return _static(name, types[suffix])


async def events(request: web.Request) -> web.StreamResponse:
    """Server-sent events: a snapshot, then deltas; a comment line every few seconds keeps proxies open."""
    hub = request.app[hub_key]
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )
    await response.prepare(request)
    client, first = hub.connect()
    BROWSERS.set(len(hub.clients))
    try:
        await response.write(first)
        while True:
            if client.resync:
                while not client.queue.empty():
                    client.queue.get_nowait()
                client.resync = False
                await response.write(hub.resync_frame())
                continue
            try:
                async with asyncio.timeout(HEARTBEAT_S):
                    frame = await client.queue.get()
            except TimeoutError:
                frame = b": keep-alive\n\n"
            await response.write(frame)
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        hub.disconnect(client)
        BROWSERS.set(len(hub.clients))
    return response


def _token(request: web.Request) -> str:
    token = request.headers.get(ADMIN_HEADER, "").strip()
    if not token:
        raise web.HTTPUnauthorized(
            text=json.dumps({"error": "UNAUTHENTICATED", "message": "enter the admin token first"}),
            content_type="application/json",
        )
    return token


async def _body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise _bad(f"the body is not JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise _bad("the body must be a JSON object")
    return body


def _bad(message: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(
        text=json.dumps({"error": "INVALID_ARGUMENT", "message": message}), content_type="application/json"
    )


def _text(body: dict[str, Any], name: str, default: str = "") -> str:
    value = body.get(name, default)
    if not isinstance(value, str) or len(value) > 500:
        raise _bad(f"{name} must be a string of at most 500 characters")
    return value


def _failed(exc: OmsCallError) -> web.Response:
    return web.json_response({"error": exc.code, "message": exc.details}, status=exc.http_status)


async def list_accounts(request: web.Request) -> web.Response:
    try:
        accounts = await request.app[oms_key].list_accounts(_token(request))
    except OmsCallError as exc:
        return _failed(exc)
    return web.json_response({"accounts": [a.account_id for a in accounts]})


async def cancel_order(request: web.Request) -> web.Response:
    body = await _body(request)
    try:
        order = await request.app[oms_key].cancel_order(
            _token(request),
            _text(body, "account_id"),
            request.match_info["order_id"],
            _text(body, "reason", "cancelled from the operator console"),
        )
    except OmsCallError as exc:
        return _failed(exc)
    return web.json_response(
        {"order_id": order.order_id, "status": enum_name(OrderStatus, order.status, "ORDER_STATUS_")}
    )


async def set_trading_state(request: web.Request) -> web.Response:
    body = await _body(request)
    cancel = body.get("cancel_working_orders", False)
    if not isinstance(cancel, bool):
        raise _bad("cancel_working_orders must be true or false")
    try:
        reply = await request.app[oms_key].set_trading_state(
            _token(request),
            request.match_info["account_id"],
            _text(body, "trading_state"),
            _text(body, "reason", "set from the operator console"),
            cancel_working_orders=cancel,
        )
    except OmsCallError as exc:
        return _failed(exc)
    return web.json_response(
        {"account_id": reply.account.account_id, "cancelled_order_ids": list(reply.cancelled_order_ids)}
    )


async def healthz(_: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def build_app(hub: Hub, oms: OmsGateway) -> web.Application:
    app = web.Application(client_max_size=64 * 1024)
    app[hub_key] = hub
    app[oms_key] = oms
    app.router.add_get("/", index)
    app.router.add_get("/static/{name}", asset)
    app.router.add_get("/events", events)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/api/accounts", list_accounts)
    app.router.add_post("/api/orders/{order_id}/cancel", cancel_order)
    app.router.add_post("/api/accounts/{account_id}/trading-state", set_trading_state)
    return app
