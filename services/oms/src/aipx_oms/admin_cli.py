"""aipx-admin: the operator's command line for the OMS admin service (aipx.v1.AdminService).

Target from --target / AIPX_CLI_TARGET (127.0.0.1:50051), operator token from --token / AIPX_ADMIN_TOKEN.
Every answer is printed as JSON (one object per line). Every action is audited server-side (ListAuditLog).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import sys
from collections.abc import Sequence

import grpc
from aipx.clients.admin import AdminClient
from aipx.money import to_pb
from aipx.v1 import admin_pb2, common_pb2, orders_pb2
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message

STATES = {
    "ACTIVE": admin_pb2.TRADING_STATE_ACTIVE,
    "REDUCING": admin_pb2.TRADING_STATE_REDUCING,
    "HALTED": admin_pb2.TRADING_STATE_HALTED,
}
ENTRY_TYPES = {
    "deposit": admin_pb2.LEDGER_ENTRY_TYPE_DEPOSIT,
    "withdrawal": admin_pb2.LEDGER_ENTRY_TYPE_WITHDRAWAL,
    "adjustment": admin_pb2.LEDGER_ENTRY_TYPE_ADJUSTMENT,
}


def _print(message: Message) -> None:
    print(json.dumps(MessageToDict(message, preserving_proto_field_name=True), sort_keys=True), flush=True)


def _dec(value: str | None) -> common_pb2.Decimal:
    return to_pb(value) if value else common_pb2.Decimal()


def _limits(args: argparse.Namespace) -> admin_pb2.RiskLimits:
    return admin_pb2.RiskLimits(
        max_order_notional=_dec(args.max_order_notional),
        max_position_notional=_dec(args.max_position_notional),
        max_open_orders=args.max_open_orders or 0,
        max_orders_per_second=args.max_orders_per_second or 0,
        price_band_bps=args.price_band_bps or 0,
    )


def _add_limits(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--max-order-notional")
    parser.add_argument("--max-position-notional")
    parser.add_argument("--max-open-orders", type=int)
    parser.add_argument("--max-orders-per-second", type=int)
    parser.add_argument("--price-band-bps", type=int)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aipx-admin", description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", default=os.environ.get("AIPX_CLI_TARGET", "127.0.0.1:50051"))
    parser.add_argument("--token", default=os.environ.get("AIPX_ADMIN_TOKEN", ""))
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("create-account", help="create an account (risk limits optional)")
    p.add_argument("account_id")
    p.add_argument("--name", default="")
    p.add_argument("--allow-negative-balances", action="store_true", help="a margin account")
    _add_limits(p)
    sub.add_parser("list-accounts", help="every account with its state and limits")
    p = sub.add_parser("issue-key", help="issue an API key (the secret is printed once)")
    p.add_argument("account_id")
    p.add_argument("--label", default="")
    p = sub.add_parser("revoke-key", help="revoke an API key (effective within a second everywhere)")
    p.add_argument("key_id")
    p.add_argument("--reason", default="")
    p = sub.add_parser("rotate-key", help="issue a new key for the key's account and revoke the old one")
    p.add_argument("key_id")
    p.add_argument("--reason", default="")
    p = sub.add_parser("list-keys", help="API keys (ids, never secrets)")
    p.add_argument("--account", default="")
    p = sub.add_parser("set-limits", help="set an account's risk limits (omitted = the OMS default)")
    p.add_argument("account_id")
    _add_limits(p)
    p = sub.add_parser(
        "set-fees", help="an account's maker/taker fee rates (omitted = its instruments' rates)"
    )
    p.add_argument("account_id")
    p.add_argument("--maker", default="", help="fraction, e.g. 0.0008")
    p.add_argument("--taker", default="", help="fraction, e.g. 0.001")
    p = sub.add_parser("upsert-instrument", help="add or update an instrument")
    p.add_argument("symbol")
    p.add_argument("--base", required=True)
    p.add_argument("--quote", required=True)
    p.add_argument("--tick-size", required=True)
    p.add_argument("--lot-size", required=True)
    p.add_argument("--min-quantity", default="0")
    p.add_argument("--min-notional", default="0")
    p.add_argument("--not-trading", action="store_true")
    p = sub.add_parser("set-state", help="an account's trading state (the kill switch)")
    p.add_argument("account_id")
    p.add_argument("state", choices=STATES)
    p.add_argument("--reason", default="")
    p.add_argument(
        "--cancel-working-orders", action="store_true", help="with HALTED: cancel every open order"
    )
    p = sub.add_parser("halt-platform", help="no new orders for any account (cancels still work)")
    p.add_argument("--reason", default="")
    p = sub.add_parser("resume-platform", help="lift the platform halt")
    p.add_argument("--reason", default="")
    p = sub.add_parser("cancel-order", help="cancel an order of any account")
    p.add_argument("account_id")
    p.add_argument("order_id")
    p.add_argument("--reason", default="")
    p = sub.add_parser(
        "post-entry", help="a ledger entry: deposit, withdrawal (positive) or adjustment (signed)"
    )
    p.add_argument("account_id")
    p.add_argument("type", choices=ENTRY_TYPES)
    p.add_argument("asset")
    p.add_argument("amount")
    p.add_argument("--reason", required=True)
    p.add_argument("--idempotency-key", help="default: a new one (the entry is posted once per key)")
    p = sub.add_parser("audit", help="the audit log, newest first")
    p.add_argument("--account", default="")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--before", type=int, default=0, help="records below this audit id")
    p = sub.add_parser(
        "hash-token", help="print the hex SHA-256 of an operator token (AIPX_OMS_ADMIN_TOKENS)"
    )
    p.add_argument("secret")
    return parser


async def run(args: argparse.Namespace) -> int:
    async with AdminClient(args.target, args.token) as client:
        c = args.command
        if c == "create-account":
            _print(
                await client.create_account(
                    args.account_id,
                    args.name,
                    risk_limits=_limits(args),
                    allow_negative_balances=args.allow_negative_balances,
                )
            )
        elif c == "list-accounts":
            for account in await client.list_accounts():
                _print(account)
        elif c == "issue-key":
            _print(await client.issue_api_key(args.account_id, args.label))
        elif c == "revoke-key":
            _print(await client.revoke_api_key(args.key_id, args.reason))
        elif c == "rotate-key":
            _print(await client.rotate_api_key(args.key_id, args.reason))
        elif c == "list-keys":
            for key in await client.list_api_keys(args.account):
                _print(key)
        elif c == "set-limits":
            _print(await client.set_risk_limits(args.account_id, _limits(args)))
        elif c == "set-fees":
            _print(await client.set_account_fees(args.account_id, args.maker, args.taker))
        elif c == "upsert-instrument":
            instrument = orders_pb2.Instrument(
                symbol=args.symbol,
                base_asset=args.base,
                quote_asset=args.quote,
                tick_size=to_pb(args.tick_size),
                lot_size=to_pb(args.lot_size),
                min_quantity=to_pb(args.min_quantity),
                min_notional=to_pb(args.min_notional),
                trading=not args.not_trading,
            )
            _print(await client.upsert_instrument(instrument))
        elif c == "set-state":
            _print(
                await client.set_trading_state(
                    args.account_id,
                    STATES[args.state],
                    args.reason,
                    cancel_working_orders=args.cancel_working_orders,
                )
            )
        elif c in ("halt-platform", "resume-platform"):
            _print(await client.set_platform_halt(c == "halt-platform", args.reason))
        elif c == "cancel-order":
            _print(await client.cancel_order(args.account_id, args.order_id, args.reason))
        elif c == "post-entry":
            _print(
                await client.post_ledger_entry(
                    args.account_id,
                    args.asset,
                    ENTRY_TYPES[args.type],
                    args.amount,
                    args.reason,
                    idempotency_key=args.idempotency_key,
                )
            )
        elif c == "audit":
            for record in await client.audit_log(args.account, limit=args.limit, before_audit_id=args.before):
                _print(record)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "hash-token":
        print(hashlib.sha256(args.secret.encode()).hexdigest())
        return 0
    if not args.token:
        print("an operator token is needed: --token or AIPX_ADMIN_TOKEN", file=sys.stderr)
        return 2
    try:
        return asyncio.run(run(args))
    except grpc.aio.AioRpcError as exc:
        print(f"{exc.code().name}: {exc.details()}", file=sys.stderr)
        return 1
    except ValueError as exc:  # a malformed amount, caught before sending
        print(f"invalid input: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
