"""Idempotency that refuses a mismatch: a repeated request must be the same request, not a reused key.

Pure functions, no I/O: which parameters of a repeated request differ from what the key first recorded.
"""

from __future__ import annotations

from decimal import Decimal

from aipx_oms.domain.model import Order, OrderRequest


def _same(a: object, b: object) -> bool:
    # Decimals compare by value: "1.50" repeats "1.5".
    return a == b


def order_differences(existing: Order, request: OrderRequest, default_venue: str) -> list[str]:
    """The request fields (proto names under `order.`) whose values differ from the existing order's.

    Compared with the order as it is now; when only quantity and price differ and the order has been
    replaced since, the caller compares again with the order as submitted (`BookCache.as_submitted`), so a
    true repeat of the original submit still returns the order.
    """
    pairs: list[tuple[str, object, object]] = [
        ("symbol", existing.symbol, request.symbol),
        ("side", existing.side, request.side),
        ("type", existing.type, request.type),
        ("time_in_force", existing.time_in_force, request.time_in_force),
        ("quantity", existing.quantity, request.quantity),
        ("price", existing.price, request.price),
        ("stop_price", existing.stop_price, request.stop_price),
        ("reduce_only", existing.reduce_only, request.reduce_only),
        ("post_only", existing.post_only, request.post_only),
        ("venue", existing.venue, request.venue or default_venue),
        ("tags", dict(existing.tags), dict(request.tags)),
    ]
    return [f"order.{name}" for name, old, new in pairs if not _same(old, new)]


def _canonical(value: Decimal | None) -> str:
    return "" if value is None else format(value.normalize(), "f")


def replace_fingerprint(quantity: Decimal | None, price: Decimal | None) -> str:
    """What a ReplaceOrder asked for, as recorded with its idempotency key (equal values, equal text)."""
    return f"quantity={_canonical(quantity)};price={_canonical(price)}"


def fingerprint_differences(recorded: str, asked: str) -> list[str]:
    """The fields of two fingerprints (`name=value;...`) that differ."""
    old = dict(part.split("=", 1) for part in recorded.split(";") if "=" in part)
    new = dict(part.split("=", 1) for part in asked.split(";") if "=" in part)
    return sorted(name for name in old.keys() | new.keys() if old.get(name) != new.get(name))
