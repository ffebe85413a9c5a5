"""BinanceSpotVenue: orders over signed REST, fills and state changes from the user-data stream."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import websockets
from aipx.aio import cancel_and_wait
from aipx.money import format_decimal, parse_decimal
from aipx.numbers import parse_int
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential_jitter

from aipx_oms import metrics
from aipx_oms.domain.model import Order, OrderType, RejectReason, TimeInForce
from aipx_oms.settings import OmsSettings
from aipx_oms.venues.base import (
    BalanceHandler,
    BalanceSnapshot,
    ExecutionReport,
    NotYetKnownError,
    ReportHandler,
    ReportKind,
    RoomWaiter,
    VenuePlugin,
    VenueUnavailableError,
    always_room,
)
from aipx_oms.venues.binance.chain import Chain, Leg, in_order_terms
from aipx_oms.venues.binance.http import (
    ORDER_REJECTED,
    UNKNOWN_ORDER,
    BinanceApiError,
    BinanceRestClient,
    venue_symbol,
)
from aipx_oms.venues.binance.user_stream import (
    VENUE,
    account_position_time_ns,
    account_time_ns,
    parse_account,
    parse_account_position,
    parse_execution_report,
    parse_trades,
)
from aipx_oms.venues.market_data import MarketDataCache

log = logging.getLogger(__name__)

_TERMINAL = {"CANCELED": ReportKind.CANCELED, "EXPIRED": ReportKind.EXPIRED, "REJECTED": ReportKind.REJECTED}


def order_params(order: Order, quantity: Decimal) -> dict[str, Any]:
    """New-order parameters; post-only LIMIT orders are LIMIT_MAKER (which takes no time in force); STOP and
    STOP_LIMIT are Binance's STOP_LOSS and STOP_LOSS_LIMIT (triggered by the last price reaching stopPrice:
    from below for buys, from above for sells)."""
    params: dict[str, Any] = {
        "symbol": venue_symbol(order.symbol),
        "side": order.side.value,
        "quantity": format_decimal(quantity),
        "newClientOrderId": order.order_id,
        "newOrderRespType": "ACK",
    }
    if order.stop_price is not None:
        params["stopPrice"] = format_decimal(order.stop_price)
    if order.type in (OrderType.MARKET, OrderType.STOP):
        params["type"] = "MARKET" if order.type is OrderType.MARKET else "STOP_LOSS"
        return params
    assert order.price is not None
    params["price"] = format_decimal(order.price)
    if order.type is OrderType.STOP_LIMIT:
        params["type"] = "STOP_LOSS_LIMIT"
        params["timeInForce"] = order.time_in_force.value
    elif order.post_only:
        params["type"] = "LIMIT_MAKER"
    else:
        params["type"] = "LIMIT"
        params["timeInForce"] = order.time_in_force.value
    return params


class BinanceSpotVenue:
    """ExecutionVenue for Binance spot (see module docstring). DAY is not a Binance time in force: refused."""

    name = VENUE
    reconcile_while_running = True

    def __init__(
        self,
        rest: BinanceRestClient,
        ws_url: str,
        *,
        keepalive_s: float = 1800.0,
        clock_skew_margin_ms: int = 1000,
    ) -> None:
        self.rest = rest
        self.ws_url = ws_url.rstrip("/")
        self.keepalive_s = keepalive_s
        self.clock_skew_margin_ms = clock_skew_margin_ms
        # Orders whose new-order request went unanswered: until this local time (ms) it may still reach
        # Binance, so "order does not exist" is not yet an answer.
        self._undecided_until_ms: dict[str, int] = {}
        self.connected = asyncio.Event()
        self._on_report: ReportHandler | None = None
        self._room: RoomWaiter = always_room
        self._connections = 0
        self._working: dict[str, Order] = {}
        # Per OMS order, its Binance orders (a cancelReplace makes a new one): see chain.py.
        self._chains: dict[str, Chain] = {}
        # Stream reports about an order whose cancelReplace is unanswered, held until the answer says which
        # Binance order is which (then handled in their order).
        self._replacing: dict[str, list[ExecutionReport]] = {}
        self._task: asyncio.Task[None] | None = None
        self._on_balances: BalanceHandler | None = None
        self._balances_every_s = 60.0
        self._balances_task: asyncio.Task[None] | None = None

    def follow_balances(self, handler: BalanceHandler, every_s: float) -> None:
        """BalanceSource: the account endpoint at start and every `every_s`, and outboundAccountPosition."""
        self._on_balances = handler
        self._balances_every_s = every_s

    async def start(self, on_report: ReportHandler, room: RoomWaiter = always_room) -> None:
        self._on_report = on_report
        self._room = room
        self._task = asyncio.create_task(self._stream(), name="binance-user-stream")
        if self._on_balances is not None:
            self._balances_task = asyncio.create_task(self._poll_balances(), name="binance-balances")

    async def stop(self) -> None:
        await cancel_and_wait(self._task, self._balances_task, what="Binance execution")
        await self.rest.close()

    async def _poll_balances(self) -> None:
        """The account endpoint's balances, now and every `_balances_every_s` (failures counted, retried at
        the next turn)."""
        while True:
            try:
                body = await self.rest.account()
                totals, as_of_ns = parse_account(body), account_time_ns(body)
            except (
                BinanceApiError,
                VenueUnavailableError,
                ValueError,
                KeyError,
                TypeError,
                ArithmeticError,
            ) as exc:
                metrics.VENUE_ERRORS.labels(self.name, "account").inc()
                log.warning("Binance account query failed: %s", exc)
            else:
                self._balances(
                    BalanceSnapshot(
                        self.name, totals, complete=True, source="GET /api/v3/account", as_of_ns=as_of_ns
                    )
                )
            await asyncio.sleep(self._balances_every_s)

    def _balances(self, snapshot: BalanceSnapshot) -> None:
        if self._on_balances is not None:
            self._on_balances(snapshot)

    def _report(self, report: ExecutionReport) -> None:
        if report.kind in (ReportKind.CANCELED, ReportKind.EXPIRED, ReportKind.REJECTED):
            self._working.pop(report.order_id, None)
        if self._on_report is not None:
            self._on_report(report)

    def _rejected(self, order: Order, exc: BinanceApiError) -> None:
        reason = RejectReason.VENUE_REJECTED
        if order.post_only and exc.code == ORDER_REJECTED:
            reason = RejectReason.POST_ONLY_WOULD_CROSS
        self._report(
            ExecutionReport(ReportKind.REJECTED, order.order_id, self.name, reason=reason, message=str(exc))
        )

    async def submit(self, order: Order) -> None:
        if order.time_in_force is TimeInForce.DAY:
            self._report(
                ExecutionReport(
                    ReportKind.REJECTED,
                    order.order_id,
                    self.name,
                    reason=RejectReason.VENUE_REJECTED,
                    message="Binance spot has no DAY time in force",
                )
            )
            return
        self._working[order.order_id] = order
        sent_ms = self.rest.now_ms()
        self._undecided_until_ms[order.order_id] = (
            sent_ms + self.rest.recv_window_ms + self.clock_skew_margin_ms
        )
        params = order_params(order, order.quantity - order.filled_quantity)
        try:
            answer = await self.rest.new_order(params, timestamp_ms=sent_ms)
        except BinanceApiError as exc:
            self._undecided_until_ms.pop(order.order_id, None)  # answered: the venue has decided
            # "Duplicate order": the venue already has this client order id (an earlier send whose answer was
            # lost): it is that order, not a refusal.
            duplicate = exc.code == ORDER_REJECTED and "duplicate" in str(exc).lower()
            if duplicate and await self.query(order):
                return
            self._rejected(order, exc)
            return
        self._undecided_until_ms.pop(order.order_id, None)
        venue_order_id = str(answer.get("orderId", ""))
        self._chains[order.order_id] = Chain(Leg(venue_order_id))
        self._report(
            ExecutionReport(ReportKind.ACKNOWLEDGED, order.order_id, self.name, venue_order_id=venue_order_id)
        )

    async def cancel(self, order: Order) -> None:
        try:
            await self.rest.cancel_order(venue_symbol(order.symbol), order.order_id)
        except BinanceApiError as exc:
            if exc.code != UNKNOWN_ORDER:
                raise
            # "Unknown order" also answers a cancel of an order already finished (an earlier cancel whose
            # answer was lost, a fill): what the venue has decides, not the refusal.
            remote = await self.rest.query_order(venue_symbol(order.symbol), order.order_id)
            if remote is not None and str(remote.get("status")) not in ("NEW", "PARTIALLY_FILLED"):
                self._working.pop(order.order_id, None)
                await self._known(order, remote)
                return
            self._report(
                ExecutionReport(
                    ReportKind.CANCEL_REJECTED,
                    order.order_id,
                    self.name,
                    reason=RejectReason.ORDER_NOT_OPEN,
                    message=str(exc),
                )
            )
            return
        self._report(ExecutionReport(ReportKind.CANCELED, order.order_id, self.name))

    async def replace(self, order: Order) -> None:
        params = order_params(order, order.quantity - order.filled_quantity)
        params.pop("newOrderRespType")
        params.update({"cancelReplaceMode": "STOP_ON_FAILURE", "cancelOrigClientOrderId": order.order_id})
        held = self._replacing.setdefault(order.order_id, [])
        try:
            answer = await self.rest.cancel_replace(params)
            self._replaced(order, answer)
        finally:
            if self._replacing.get(order.order_id) is held:
                del self._replacing[order.order_id]
            for report in held:  # after a failure, about the Binance order as it was (a cancel included)
                self._handle(report)

    def _replaced(self, order: Order, answer: dict[str, Any]) -> None:
        """A cancelReplace's answer: the new Binance order continues the chain, its base what the canceled
        one and its predecessors executed (cancelResponse's executedQty and cummulativeQuoteQty)."""
        canceled, new = answer.get("cancelResponse") or {}, answer.get("newOrderResponse") or {}
        new_id = str(new.get("orderId", ""))
        if not new_id:
            return
        canceled_id = str(canceled["orderId"])
        executed = parse_decimal(canceled["executedQty"], field="cancelResponse.executedQty")
        executed_quote = parse_decimal(
            canceled["cummulativeQuoteQty"], field="cancelResponse.cummulativeQuoteQty"
        )
        chain = self._chains.get(order.order_id)
        leg = chain.leg(canceled_id) if chain is not None else None
        if chain is None or leg is None:
            # Not placed or replaced since this process started: what earlier Binance orders of this OMS
            # order executed is unknown (README, known limits); taken as nothing.
            log.warning("Binance order %s of %s: its chain is unknown, base taken as 0", canceled_id,
                        order.order_id)  # fmt: skip
            leg = Leg(canceled_id)
            chain = self._chains[order.order_id] = Chain(leg)
        chain.replaced(leg, executed, executed_quote, new_id)
        self._working[order.order_id] = order
        self._report(
            ExecutionReport(ReportKind.ACKNOWLEDGED, order.order_id, self.name, venue_order_id=new_id)
        )

    async def query(self, order: Order) -> bool:
        """GET /api/v3/order by origClientOrderId (our order id): report what the OMS missed. "Order does
        not exist" answers only once an unanswered new-order request can no longer reach Binance (its
        timestamp + recvWindow + the clock-skew margin); before that it raises NotYetKnownError."""
        remote = await self.rest.query_order(venue_symbol(order.symbol), order.order_id)
        if remote is None:
            if self._undecided(order.order_id):
                raise NotYetKnownError(
                    f"Binance does not know order {order.order_id} yet; its new-order request may still "
                    f"arrive until {self._undecided_until_ms[order.order_id]} ms"
                )
            self._undecided_until_ms.pop(order.order_id, None)
            return False
        await self._known(order, remote)
        return True

    def _undecided(self, order_id: str) -> bool:
        """An unanswered new-order request for this order may still reach Binance."""
        until = self._undecided_until_ms.get(order_id)
        return until is not None and self.rest.now_ms() <= until

    async def _known(self, order: Order, remote: dict[str, Any]) -> None:
        self._undecided_until_ms.pop(order.order_id, None)
        venue_order_id = str(remote["orderId"])
        if str(remote.get("status")) in ("NEW", "PARTIALLY_FILLED"):
            self._working[order.order_id] = order
        chain = self._chains.get(order.order_id)
        if chain is None:
            chain = self._chains[order.order_id] = await self._rebuild(order, remote)
        elif chain.leg(venue_order_id) is None:
            # A Binance order of ours the chain lacks (a cancelReplace whose answer was lost): its base is
            # unknown, its figures cannot be translated (README, known limits).
            metrics.VENUE_ERRORS.labels(self.name, "unknown_venue_order").inc()
            log.error("Binance order %s of %s is not in its chain: not reconciled", venue_order_id,
                      order.order_id)  # fmt: skip
            return
        if order.venue_order_id != venue_order_id:
            self._report(
                ExecutionReport(
                    ReportKind.ACKNOWLEDGED, order.order_id, self.name, venue_order_id=venue_order_id
                )
            )
        await self._catch_up(order.order_id, venue_symbol(order.symbol), order.filled_quantity, remote)

    async def _rebuild(self, order: Order, remote: dict[str, Any]) -> Chain:
        """The chain of an order this process has not placed nor replaced (after a restart). When the Binance
        order `remote` may not be its first (its quantity is not the order's, or the OMS has more filled than
        it executed), from GET /api/v3/allOrders: the symbol's orders since the order was created with our
        order id as client id, in orderId order, each one's base what the earlier ones executed."""
        venue_order_id = str(remote["orderId"])
        original = parse_decimal(remote.get("origQty", "0"), field="order.origQty")
        executed = parse_decimal(remote.get("executedQty", "0"), field="order.executedQty")
        if original == order.quantity and order.filled_quantity <= executed:
            return Chain(Leg(venue_order_id))
        try:
            rows = await self.rest.all_orders(
                venue_symbol(order.symbol), order.created_time_ns // 1_000_000 - self.clock_skew_margin_ms
            )
            ours = sorted(
                (row for row in rows if str(row.get("clientOrderId")) == order.order_id),
                key=lambda row: parse_int(row["orderId"], field="allOrders.orderId", minimum=0),
            )
            legs = [str(row["orderId"]) for row in ours]
            if venue_order_id not in legs:
                raise ValueError(f"allOrders lacks Binance order {venue_order_id}")
            last = legs.index(venue_order_id)
            chain = Chain(Leg(legs[0]))
            for row, next_id in zip(ours[:last], legs[1 : last + 1], strict=True):
                chain.replaced(
                    chain.current,
                    parse_decimal(row["executedQty"], field="allOrders.executedQty"),
                    parse_decimal(row["cummulativeQuoteQty"], field="allOrders.cummulativeQuoteQty"),
                    next_id,
                )
        except (BinanceApiError, VenueUnavailableError, ValueError, KeyError, TypeError) as exc:
            metrics.VENUE_ERRORS.labels(self.name, "chain_rebuild").inc()
            log.error("Binance orders of %s not rebuilt (%s): counted from order %s", order.order_id, exc,
                      venue_order_id)  # fmt: skip
            return Chain(Leg(venue_order_id))
        return chain

    async def reconcile(self, open_orders: Sequence[Order]) -> list[Order]:
        """Compare the OMS's open orders with the venue: report missed acknowledgements, fills and terminal
        states, return the orders it never got. An open venue order the OMS does not count as open is
        reported too (acknowledgement and trades): when it is one of ours that the OMS rejected, the OMS
        records its fills and cancels it (usecases/reports.py)."""
        remote_open = {str(o["clientOrderId"]): o for o in await self.rest.open_orders()}
        unknown: list[Order] = []
        for order in open_orders:
            remote = remote_open.pop(order.order_id, None)
            if remote is None:
                remote = await self.rest.query_order(venue_symbol(order.symbol), order.order_id)
            if remote is None:
                if not self._undecided(order.order_id):  # else its request may still arrive: not lost
                    unknown.append(order)
                continue
            await self._known(order, remote)
        for orphan in remote_open.values():
            metrics.VENUE_ERRORS.labels(self.name, "orphan_order").inc()
            log.error(
                "Binance has open order %s (client id %s) the OMS does not count as open: reporting it",
                orphan["orderId"],
                orphan["clientOrderId"],
            )
            client_order_id, venue_order_id = str(orphan["clientOrderId"]), str(orphan["orderId"])
            self._report(
                ExecutionReport(
                    ReportKind.ACKNOWLEDGED, client_order_id, self.name, venue_order_id=venue_order_id
                )
            )
            await self._catch_up(client_order_id, str(orphan["symbol"]), Decimal(0), orphan)
        return unknown

    async def _catch_up(self, order_id: str, symbol: str, filled: Decimal, remote: dict[str, Any]) -> None:
        """Report the venue order's trades (`symbol`: Binance's) when the OMS order has executed more than
        `filled` (each trade as its own fill, its id the stream's, its cumulative figures the OMS order's: the
        OMS stores each once), first those of the Binance orders a replace superseded that the OMS may lack,
        then its final state."""
        venue_order_id = str(remote["orderId"])
        executed = parse_decimal(remote.get("executedQty", "0"), field="order.executedQty")
        chain = self._chains.get(order_id)
        leg = (chain.leg(venue_order_id) if chain is not None else None) or Leg(venue_order_id)
        for old, end in chain.earlier(leg) if chain is not None else []:
            if end > filled:
                await self._report_trades(order_id, symbol, old, end - old.base_quantity)
        if leg.base_quantity + executed > filled:
            await self._report_trades(order_id, symbol, leg, executed)
        kind = _TERMINAL.get(str(remote.get("status")))
        if kind is not None:
            self._report(ExecutionReport(kind, order_id, self.name, venue_order_id=venue_order_id))

    async def _report_trades(self, order_id: str, symbol: str, leg: Leg, executed: Decimal) -> None:
        """Report the trades of the Binance order `leg` (which executed `executed`) as fills."""
        trades = await self.rest.my_trades(symbol, leg.venue_order_id)
        fills = parse_trades(order_id, leg.venue_order_id, trades)
        traded = fills[-1].cumulative_quantity if fills else Decimal(0)
        if traded != executed:  # the trades endpoint lags the order: the next query finds the rest
            metrics.VENUE_ERRORS.labels(self.name, "trades_lag").inc()
            log.warning("Binance order %s: executedQty %s, its trades sum to %s", leg.venue_order_id,
                        executed, traded)  # fmt: skip
        for fill in fills:
            self._report(in_order_terms(fill, leg))

    async def _resync(self) -> None:
        """After a stream gap: ask the venue about every order we have working there."""
        for order in list(self._working.values()):
            try:
                remote = await self.rest.query_order(venue_symbol(order.symbol), order.order_id)
                chain = self._chains.get(order.order_id)
                current = chain.current.venue_order_id if chain is not None else None
                if remote is not None and str(remote["orderId"]) == current:
                    await self._catch_up(
                        order.order_id, venue_symbol(order.symbol), order.filled_quantity, remote
                    )
            except (BinanceApiError, VenueUnavailableError, ValueError, KeyError, TypeError) as exc:
                log.warning("resync of %s failed: %s", order.order_id, exc)

    async def _stream(self) -> None:
        """Follow the user-data stream forever: (re)connect with jittered exponential backoff (1 s .. 30 s,
        reset after each established connection) and resync what a gap may have hidden."""

        def before_sleep(state: RetryCallState) -> None:
            self.connected.clear()
            metrics.VENUE_ERRORS.labels(self.name, "user_stream").inc()
            outcome = state.outcome
            log.warning(
                "Binance user stream down (%s); reconnecting", outcome.exception() if outcome else None
            )

        while True:
            retrying = AsyncRetrying(
                retry=retry_if_exception_type(Exception),
                wait=wait_exponential_jitter(multiplier=1.0, jitter=1.0, max=30.0),
                before_sleep=before_sleep,
            )
            async for attempt in retrying:
                with attempt:
                    await self._connection()
            self.connected.clear()
            metrics.VENUE_ERRORS.labels(self.name, "user_stream").inc()

    async def _connection(self) -> None:
        """One connection of the user-data stream; returns when an established connection closes."""
        listen_key = await self.rest.new_listen_key()
        async with websockets.connect(f"{self.ws_url}/ws/{listen_key}", open_timeout=10) as ws:
            self.connected.set()
            if self._connections:
                await self._resync()
            self._connections += 1
            keepalive = asyncio.create_task(self._keepalive(listen_key))
            try:
                while True:
                    await self._room()  # backpressure: the OMS stores what it has before it reads more
                    try:
                        raw = await ws.recv()
                    except websockets.ConnectionClosed as exc:
                        log.warning("Binance user stream closed (%s); reconnecting", exc)
                        return
                    self._handle_frame(raw)  # a frame we cannot read is counted and skipped
            finally:
                await cancel_and_wait(keepalive, what="listen-key keepalive")

    async def _keepalive(self, listen_key: str) -> None:
        while True:
            await asyncio.sleep(self.keepalive_s)
            with contextlib.suppress(Exception):
                await self.rest.keepalive_listen_key(listen_key)

    def _handle_frame(self, raw: str | bytes) -> None:
        """One user-stream frame. A malformed one (bad JSON, a missing field, a number the boundary parsers
        refuse) is counted and skipped: the connection stays up."""
        try:
            message = json.loads(raw)
            changed = parse_account_position(message) if isinstance(message, dict) else None
            as_of_ns = account_position_time_ns(message) if changed is not None else None
            report = (
                parse_execution_report(message) if isinstance(message, dict) and changed is None else None
            )
        except (ValueError, KeyError, TypeError) as exc:  # JSONDecodeError and InvalidNumberError included
            metrics.VENUE_ERRORS.labels(self.name, "malformed_report").inc()
            log.warning("malformed Binance user-stream frame skipped: %s", str(exc)[:200])
            return
        if changed is not None:
            self._balances(
                BalanceSnapshot(
                    self.name, changed, complete=False, source="outboundAccountPosition", as_of_ns=as_of_ns
                )
            )
        if report is not None:
            self._handle(report)

    def _handle(self, report: ExecutionReport) -> None:
        if report.kind is ReportKind.ACKNOWLEDGED:
            return  # acknowledgements come from the REST answer
        held = self._replacing.get(report.order_id)
        if held is not None:  # which Binance order is which: the cancelReplace's answer says
            held.append(report)
            return
        chain = self._chains.get(report.order_id)
        if chain is not None and report.venue_order_id:
            leg = chain.leg(report.venue_order_id)
            if leg is None:
                metrics.VENUE_ERRORS.labels(self.name, "unknown_venue_order").inc()
                log.error("%s report about Binance order %s, not in the chain of %s: skipped", report.kind,
                          report.venue_order_id, report.order_id)  # fmt: skip
                return
            if leg is not chain.current:  # a Binance order a cancelReplace superseded
                if report.kind is ReportKind.FILL:  # executed before the cancel: recorded
                    self._report(in_order_terms(report, leg))
                return  # its cancel is the replace's
            report = in_order_terms(report, leg)
        if report.kind is ReportKind.CANCELED and report.order_id not in self._working:
            return  # already reported from the cancel's REST answer
        self._report(report)


def _check(settings: OmsSettings) -> str | None:
    if settings.binance_api_key is None or settings.binance_api_secret is None:
        return "venue binance needs AIPX_OMS_BINANCE_API_KEY and AIPX_OMS_BINANCE_API_SECRET"
    return None


def _build(settings: OmsSettings, market: MarketDataCache) -> BinanceSpotVenue:
    assert settings.binance_api_key is not None and settings.binance_api_secret is not None  # _check
    rest = BinanceRestClient(
        settings.binance_base_url,
        settings.binance_api_key.get_secret_value(),
        settings.binance_api_secret.get_secret_value(),
        recv_window_ms=settings.binance_recv_window_ms,
        timeout_s=settings.binance_request_timeout_s,
    )
    return BinanceSpotVenue(
        rest, settings.binance_ws_url, clock_skew_margin_ms=settings.binance_clock_skew_margin_ms
    )


PLUGIN = VenuePlugin(VENUE, _build, _check)
