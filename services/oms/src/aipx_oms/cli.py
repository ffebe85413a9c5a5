"""`aipx-oms-cli`: an account's command line for the OMS (place, cancel, replace, orders, positions, account,
follow).

Connection: --target (or AIPX_CLI_TARGET, default 127.0.0.1:50051) and --api-key (or AIPX_CLI_API_KEY).
`account-state` (the kill switch) goes through the admin service with an operator token (--admin-token or
AIPX_ADMIN_TOKEN); `aipx-admin` has every admin action.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from decimal import Decimal

import grpc
from aipx.clients.admin import AdminClient
from aipx.clients.oms import OmsClient
from aipx.money import parse_decimal
from aipx.numbers import parse_int
from aipx.v1 import admin_pb2, common_pb2, oms_pb2, orders_pb2
from google.protobuf.json_format import MessageToDict

SIDES = {"buy": common_pb2.SIDE_BUY, "sell": common_pb2.SIDE_SELL}
TYPES = {
    "market": orders_pb2.ORDER_TYPE_MARKET,
    "limit": orders_pb2.ORDER_TYPE_LIMIT,
    "stop": orders_pb2.ORDER_TYPE_STOP,
    "stop-limit": orders_pb2.ORDER_TYPE_STOP_LIMIT,
}
TIFS = {
    "gtc": orders_pb2.TIME_IN_FORCE_GTC,
    "ioc": orders_pb2.TIME_IN_FORCE_IOC,
    "fok": orders_pb2.TIME_IN_FORCE_FOK,
    "day": orders_pb2.TIME_IN_FORCE_DAY,
}


def _short(value: common_pb2.Decimal) -> str:
    return value.value or "-"


def format_order(order: orders_pb2.Order) -> str:
    status = orders_pb2.OrderStatus.Name(order.status).removeprefix("ORDER_STATUS_")
    side = common_pb2.Side.Name(order.side).removeprefix("SIDE_")
    kind = orders_pb2.OrderType.Name(order.type).removeprefix("ORDER_TYPE_")
    reason = ""
    if order.reject_reason:
        name = orders_pb2.RejectReason.Name(order.reject_reason).removeprefix("REJECT_REASON_")
        reason = f"  {name}: {order.reject_message}"
    return (
        f"{order.order_id}  {order.client_order_id:<24} {order.symbol:<9} {side:<4} {kind:<6} "
        f"qty {_short(order.quantity):<12} px {_short(order.price):<12} "
        f"filled {_short(order.filled_quantity):<12} "
        f"{status}{reason}"
    )


# Argument types: the boundary parsers (argparse reports their ValueError as "invalid <name> value").
def decimal(text: str) -> Decimal:
    return parse_decimal(text, field="decimal")


def count(text: str) -> int:
    return parse_int(text, field="count", minimum=1, maximum=1_000_000)


def log_sequence(text: str) -> int:
    return parse_int(text, field="log sequence", minimum=0)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aipx-oms-cli", description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", default=os.environ.get("AIPX_CLI_TARGET", "127.0.0.1:50051"))
    parser.add_argument("--api-key", default=os.environ.get("AIPX_CLI_API_KEY", ""))
    parser.add_argument("--admin-token", default=os.environ.get("AIPX_ADMIN_TOKEN", ""))
    parser.add_argument("--json", action="store_true", help="print protobuf JSON instead of a table")
    sub = parser.add_subparsers(dest="command", required=True)
    place = sub.add_parser("place", help="submit an order")
    place.add_argument("side", choices=SIDES)
    place.add_argument("quantity", type=decimal)
    place.add_argument("symbol")
    place.add_argument("--price", type=decimal)
    place.add_argument("--stop-price", type=decimal, help="trigger price of stop and stop-limit orders")
    place.add_argument(
        "--type",
        choices=TYPES,
        default=None,
        help="default: limit with --price, else market (stop / stop-limit with --stop-price)",
    )
    place.add_argument("--tif", choices=TIFS, default="gtc")
    place.add_argument("--client-order-id")
    place.add_argument("--reduce-only", action="store_true")
    place.add_argument("--post-only", action="store_true")
    place.add_argument("--venue", default="")
    cancel = sub.add_parser("cancel", help="cancel an order")
    cancel.add_argument("order_id", nargs="?", default="")
    cancel.add_argument("--client-order-id", default="")
    cancel.add_argument("--idempotency-key")
    orders = sub.add_parser("orders", help="list orders (newest first)")
    orders.add_argument("--symbol", action="append", default=[])
    orders.add_argument("--open", action="store_true")
    orders.add_argument("--limit", type=count, default=50)
    sub.add_parser("positions", help="show positions")
    sub.add_parser("instruments", help="list tradeable instruments")
    follow = sub.add_parser("follow", help="follow the order event stream")
    follow.add_argument(
        "--from", dest="from_seq", type=log_sequence, default=0, help="resume after this log sequence"
    )
    follow.add_argument("--symbol", action="append", default=[])
    replace = sub.add_parser("replace", help="change the quantity and/or price of an open order")
    replace.add_argument("order_id", nargs="?", default="")
    replace.add_argument("--client-order-id", default="")
    replace.add_argument("--quantity")
    replace.add_argument("--price")
    replace.add_argument("--idempotency-key")
    sub.add_parser("account", help="balances (total/free/locked), equity, P&L and trading state")
    state = sub.add_parser("account-state", help="set an account's trading state (kill switch; admin token)")
    state.add_argument("account_id")
    state.add_argument("state", choices=list(STATES))
    state.add_argument("--reason", default="")
    state.add_argument("--cancel-working-orders", action="store_true")
    return parser


STATES = {
    "ACTIVE": admin_pb2.TRADING_STATE_ACTIVE,
    "REDUCING": admin_pb2.TRADING_STATE_REDUCING,
    "HALTED": admin_pb2.TRADING_STATE_HALTED,
}


def format_account(account: oms_pb2.AccountSnapshot) -> str:
    state = admin_pb2.TradingState.Name(account.trading_state).removeprefix("TRADING_STATE_")
    lines = [
        f"{account.account_id}  {state}"
        + (f" ({account.trading_state_reason})" if account.trading_state_reason else "")
        + ("  PLATFORM HALTED" if account.platform_halted else ""),
        f"equity {_short(account.equity)} {account.valuation_asset}  realized {_short(account.realized_pnl)}"
        f"  unrealized {_short(account.unrealized_pnl)}",
    ]
    for b in account.balances:
        lines.append(
            f"  {b.asset:<6} total {_short(b.total):<20} free {_short(b.free):<20} locked {_short(b.locked)}"
        )
    return "\n".join(lines)


async def run(args: argparse.Namespace) -> int:
    if args.command == "account-state":
        if not args.admin_token:
            print("an operator token is needed: --admin-token or AIPX_ADMIN_TOKEN", file=sys.stderr)
            return 2
        async with AdminClient(args.target, args.admin_token) as admin:
            changed = await admin.set_trading_state(
                args.account_id,
                STATES[args.state],
                args.reason,
                cancel_working_orders=args.cancel_working_orders,
            )
        print(MessageToDict(changed) if args.json else f"{args.account_id}: {args.state}")
        return 0
    if not args.api_key:
        print("an API key is needed: --api-key or AIPX_CLI_API_KEY", file=sys.stderr)
        return 2
    async with OmsClient(args.target, args.api_key) as client:
        if args.command == "place":
            order_type = args.type or ("limit" if args.price else "market")
            if args.type is None and args.stop_price:
                order_type = "stop-limit" if args.price else "stop"
            response = await client.submit(
                args.symbol,
                SIDES[args.side],
                args.quantity,
                order_type=TYPES[order_type],
                price=args.price,
                stop_price=args.stop_price,
                time_in_force=TIFS[args.tif],
                client_order_id=args.client_order_id,
                reduce_only=args.reduce_only,
                post_only=args.post_only,
                venue=args.venue,
            )
            print(
                MessageToDict(response)
                if args.json
                else ("created " if response.created else "existing ") + format_order(response.order)
            )
        elif args.command == "cancel":
            order = await client.cancel(
                order_id=args.order_id,
                client_order_id=args.client_order_id,
                idempotency_key=args.idempotency_key,
            )
            print(MessageToDict(order) if args.json else format_order(order))
        elif args.command == "replace":
            order = await client.replace(
                order_id=args.order_id,
                client_order_id=args.client_order_id,
                quantity=args.quantity,
                price=args.price,
                idempotency_key=args.idempotency_key,
            )
            print(MessageToDict(order) if args.json else format_order(order))
        elif args.command == "account":
            account = await client.account()
            print(MessageToDict(account) if args.json else format_account(account))
        elif args.command == "orders":
            count = 0
            async for order in client.all_orders(symbols=args.symbol, open_only=args.open):
                print(MessageToDict(order) if args.json else format_order(order))
                count += 1
                if count >= args.limit:
                    break
        elif args.command == "positions":
            for position in await client.positions():
                print(
                    MessageToDict(position)
                    if args.json
                    else f"{position.symbol:<9} qty {_short(position.quantity):<14} "
                    f"avg {_short(position.average_price):<14} "
                    f"realized {_short(position.realized_pnl)}"
                )
        elif args.command == "instruments":
            for instrument in await client.instruments():
                print(MessageToDict(instrument))
        elif args.command == "follow":
            async for event in client.events(from_log_sequence=args.from_seq, symbols=args.symbol):
                kind = orders_pb2.OrderEventType.Name(event.type).removeprefix("ORDER_EVENT_TYPE_")
                print(
                    MessageToDict(event)
                    if args.json
                    else f"#{event.log_sequence} {kind:<16} {format_order(event.order)}",
                    flush=True,
                )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return asyncio.run(run(args))
    except grpc.aio.AioRpcError as exc:
        print(f"{exc.code().name}: {exc.details()}", file=sys.stderr)
        return 1
    except ValueError as exc:  # a malformed number, caught before sending
        print(f"invalid input: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
