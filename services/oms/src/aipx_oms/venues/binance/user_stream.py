"""The user-data stream: executionReport events -> ExecutionReports; outboundAccountPosition and the account
endpoint's answer -> balances; the trades endpoint's answer (GET /api/v3/myTrades) -> fill reports."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from aipx.money import parse_decimal
from aipx.numbers import epoch_ms_to_ns, parse_int

from aipx_oms.domain.model import Liquidity, RejectReason
from aipx_oms.venues.base import ExecutionReport, ReportKind

VENUE = "binance"


def _totals(rows: Any, asset_key: str, free_key: str, locked_key: str) -> dict[str, Decimal]:
    if not isinstance(rows, list):
        raise ValueError(f"balances must be a list, got {type(rows).__name__}")
    return {
        str(row[asset_key]): parse_decimal(row[free_key], field=f"balance.{free_key}")
        + parse_decimal(row[locked_key], field=f"balance.{locked_key}")
        for row in rows
    }


def parse_account_position(message: dict[str, Any]) -> dict[str, Decimal] | None:
    """An outboundAccountPosition event's balances (the assets that changed: free + locked), else None."""
    if message.get("e") != "outboundAccountPosition":
        return None
    return _totals(message.get("B"), "a", "f", "l")


def parse_account(body: dict[str, Any]) -> dict[str, Decimal]:
    """GET /api/v3/account: every asset's free + locked."""
    return _totals(body.get("balances"), "asset", "free", "locked")


def account_position_time_ns(message: dict[str, Any]) -> int | None:
    """An outboundAccountPosition's time of the last account update ("u"), epoch ns; None when absent."""
    return epoch_ms_to_ns(message["u"], field="outboundAccountPosition.u") if "u" in message else None


def account_time_ns(body: dict[str, Any]) -> int | None:
    """GET /api/v3/account's time of its last change ("updateTime"), epoch ns; None when absent or 0."""
    stamp = epoch_ms_to_ns(body.get("updateTime", 0), field="account.updateTime")
    return stamp or None


def parse_trades(order_id: str, venue_order_id: str, trades: Any) -> list[ExecutionReport]:
    """GET /api/v3/myTrades of one venue order -> one FILL per trade, in trade id order, each with its own
    price, fee, fee asset and liquidity, and the trade id as venue fill id (as on the stream: a trade seen on
    both is one fill). The cumulative quantity and quote up to each trade are what the stream's z/Z say after
    it, so the OMS stores only what it has not stored yet."""
    if not isinstance(trades, list):
        raise ValueError(f"trades must be a list, got {type(trades).__name__}")
    ordered = sorted(trades, key=lambda t: parse_int(t["id"], field="myTrades.id", minimum=0))
    reports: list[ExecutionReport] = []
    cumulative = cumulative_quote = Decimal(0)
    for trade in ordered:
        quantity = parse_decimal(trade["qty"], field="myTrades.qty")
        price = parse_decimal(trade["price"], field="myTrades.price")
        cumulative += quantity
        cumulative_quote += quantity * price
        reports.append(
            ExecutionReport(
                ReportKind.FILL,
                order_id,
                VENUE,
                venue_order_id=venue_order_id,
                quantity=quantity,
                price=price,
                fee=parse_decimal(trade.get("commission") or "0", field="myTrades.commission"),
                fee_currency=str(trade.get("commissionAsset") or ""),
                liquidity=Liquidity.MAKER if trade.get("isMaker") is True else Liquidity.TAKER,
                venue_fill_id=str(trade["id"]),
                time_ns=epoch_ms_to_ns(trade.get("time", 0), field="myTrades.time"),
                cumulative_quantity=cumulative,
                cumulative_quote=cumulative_quote,
            )
        )
    return reports


def _optional(message: dict[str, Any], key: str) -> Decimal | None:
    """A decimal field that older frames may lack."""
    return parse_decimal(message[key], field=f"executionReport.{key}") if key in message else None


def parse_execution_report(message: dict[str, Any]) -> ExecutionReport | None:
    """One executionReport as an ExecutionReport (None for event types order handling does not need).

    For cancels Binance puts the canceled order's client id in "C" ("c" is the cancel request's id). Numbers
    go through the boundary parsers: a malformed one raises InvalidNumberError (a ValueError) naming it.
    """
    if message.get("e") != "executionReport":
        return None
    execution = message.get("x")
    order_id = str(message.get("C") or message.get("c") or "")
    venue_order_id = str(message.get("i", ""))
    if not order_id:
        return None
    if execution == "NEW":
        return ExecutionReport(ReportKind.ACKNOWLEDGED, order_id, VENUE, venue_order_id=venue_order_id)
    if execution == "TRADE":
        return ExecutionReport(
            ReportKind.FILL,
            str(message["c"]),
            VENUE,
            venue_order_id=venue_order_id,
            quantity=parse_decimal(message["l"], field="executionReport.l"),
            price=parse_decimal(message["L"], field="executionReport.L"),
            fee=parse_decimal(message.get("n") or "0", field="executionReport.n"),
            fee_currency=str(message.get("N") or ""),
            liquidity=Liquidity.MAKER if message.get("m") else Liquidity.TAKER,
            venue_fill_id=str(message["t"]),
            time_ns=epoch_ms_to_ns(message.get("T", 0), field="executionReport.T"),
            cumulative_quantity=_optional(message, "z"),
            cumulative_quote=_optional(message, "Z"),
        )
    if execution == "CANCELED":
        return ExecutionReport(ReportKind.CANCELED, order_id, VENUE, venue_order_id=venue_order_id)
    if execution == "REJECTED":
        return ExecutionReport(
            ReportKind.REJECTED,
            order_id,
            VENUE,
            venue_order_id=venue_order_id,
            reason=RejectReason.VENUE_REJECTED,
            message=str(message.get("r", "")),
        )
    if execution in ("EXPIRED", "TRADE_PREVENTION"):
        fok = message.get("f") == "FOK"
        return ExecutionReport(
            ReportKind.EXPIRED,
            order_id,
            VENUE,
            venue_order_id=venue_order_id,
            reason=RejectReason.FOK_NOT_FILLABLE if fok else None,
            message=str(message.get("r", "")) if message.get("r") not in (None, "NONE") else "",
        )
    return None
