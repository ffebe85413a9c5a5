"""BinanceRestClient: signed REST calls of the Binance spot API (HMAC-SHA256 over the query string)."""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any
from urllib.parse import urlencode

import aiohttp

from aipx_oms.venues.base import VenueUnavailableError


class BinanceApiError(RuntimeError):
    """An error answer of the API: HTTP status plus Binance's code and message."""

    def __init__(self, status: int, code: int, message: str) -> None:
        self.status = status
        self.code = code
        super().__init__(f"Binance error {code} (HTTP {status}): {message}")


# Binance error codes the venue reacts to.
UNKNOWN_ORDER = -2011
NO_SUCH_ORDER = -2013
ORDER_REJECTED = -2010


def sign(secret: str, query: str) -> str:
    """The signature Binance expects for a query string."""
    return hmac.new(secret.encode(), query.encode(), hashlib.sha256).hexdigest()


def venue_symbol(symbol: str) -> str:
    """Canonical "BTC-USDT" -> Binance "BTCUSDT"."""
    return symbol.replace("-", "")


class BinanceRestClient:
    """The few REST endpoints order entry needs."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        api_secret: str,
        *,
        recv_window_ms: int = 5000,
        timeout_s: float = 10.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self._secret = api_secret
        self.recv_window_ms = recv_window_ms
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> BinanceRestClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=self._timeout, headers={"X-MBX-APIKEY": self.api_key}
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @staticmethod
    def now_ms() -> int:
        """The local clock as Binance's `timestamp` counts it."""
        return int(time.time() * 1000)

    def signed_query(self, params: dict[str, Any], timestamp_ms: int | None = None) -> str:
        """The query string with timestamp (now unless given), recvWindow and signature appended. Binance
        refuses a signed request that reaches it (the API and, for orders, the matching engine) after
        timestamp + recvWindow by its clock."""
        stamp = self.now_ms() if timestamp_ms is None else timestamp_ms
        full = {**params, "recvWindow": self.recv_window_ms, "timestamp": stamp}
        query = urlencode({k: v for k, v in full.items() if v is not None})
        return f"{query}&signature={sign(self._secret, query)}"

    async def _call(
        self,
        method: str,
        path: str,
        params: dict[str, Any],
        *,
        signed: bool = True,
        timestamp_ms: int | None = None,
    ) -> Any:
        """The answer's JSON. A 4xx is Binance's definite refusal (BinanceApiError); no answer, a broken
        connection, an unreadable body or a 5xx leave the outcome unknown (VenueUnavailableError): Binance
        documents that a 5xx request may or may not have been executed."""
        query = self.signed_query(params, timestamp_ms) if signed else urlencode(params)
        url = f"{self.base_url}{path}" + (f"?{query}" if query else "")
        try:
            async with self._http().request(method, url) as response:
                if response.status >= 500:
                    text = await response.text()
                    raise VenueUnavailableError(
                        f"Binance {method} {path}: HTTP {response.status} {text[:200]}"
                    )
                body = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise VenueUnavailableError(f"Binance {method} {path}: {type(exc).__name__} {exc}") from exc
        if response.status >= 400:
            code = int(body.get("code", 0)) if isinstance(body, dict) else 0
            message = str(body.get("msg", body)) if isinstance(body, dict) else str(body)
            raise BinanceApiError(response.status, code, message)
        return body

    async def new_order(self, params: dict[str, Any], *, timestamp_ms: int | None = None) -> dict[str, Any]:
        """POST /api/v3/order, signed with `timestamp_ms` when given (the caller keeps it: until
        timestamp + recvWindow the request may still reach the venue)."""
        result: dict[str, Any] = await self._call("POST", "/api/v3/order", params, timestamp_ms=timestamp_ms)
        return result

    async def cancel_order(self, symbol: str, client_order_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._call(
            "DELETE", "/api/v3/order", {"symbol": symbol, "origClientOrderId": client_order_id}
        )
        return result

    async def cancel_replace(self, params: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("POST", "/api/v3/order/cancelReplace", params)
        return result

    async def query_order(self, symbol: str, client_order_id: str) -> dict[str, Any] | None:
        """The order as the venue knows it; None when the venue never saw it."""
        try:
            result: dict[str, Any] = await self._call(
                "GET", "/api/v3/order", {"symbol": symbol, "origClientOrderId": client_order_id}
            )
        except BinanceApiError as exc:
            if exc.code == NO_SUCH_ORDER:
                return None
            raise
        return result

    async def my_trades(self, symbol: str, order_id: str) -> list[dict[str, Any]]:
        """GET /api/v3/myTrades of one venue order: each trade's id, price, qty, commission, commissionAsset,
        isMaker and time."""
        result: list[dict[str, Any]] = await self._call(
            "GET", "/api/v3/myTrades", {"symbol": symbol, "orderId": order_id}
        )
        return result

    async def all_orders(self, symbol: str, start_ms: int) -> list[dict[str, Any]]:
        """GET /api/v3/allOrders: the symbol's orders (any status) placed from `start_ms` on, at most 1000."""
        result: list[dict[str, Any]] = await self._call(
            "GET", "/api/v3/allOrders", {"symbol": symbol, "startTime": start_ms, "limit": 1000}
        )
        return result

    async def open_orders(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self._call("GET", "/api/v3/openOrders", {})
        return result

    async def account(self) -> dict[str, Any]:
        """GET /api/v3/account: the account's balances (and permissions)."""
        result: dict[str, Any] = await self._call("GET", "/api/v3/account", {})
        return result

    async def new_listen_key(self) -> str:
        body = await self._call("POST", "/api/v3/userDataStream", {}, signed=False)
        return str(body["listenKey"])

    async def keepalive_listen_key(self, listen_key: str) -> None:
        await self._call("PUT", "/api/v3/userDataStream", {"listenKey": listen_key}, signed=False)
