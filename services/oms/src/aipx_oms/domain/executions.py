"""Which part of a venue's fill report is new to the OMS. Pure: no I/O.

A venue that counts executions per order (Binance: `z`/`Z` on the stream, executedQty/cummulativeQuoteQty
when queried) says how much of the order is filled in total. The same execution can then reach the OMS
twice (on the stream and from a query after a gap) without being stored twice: only the part beyond what
the order already has is new.
"""

from __future__ import annotations

from decimal import Decimal

ZERO = Decimal(0)


def fill_to_store(  # noqa: PLR0917 - six numbers of one fill, each named at the call site
    filled: Decimal,
    average_price: Decimal | None,
    quantity: Decimal,
    price: Decimal,
    cumulative_quantity: Decimal | None,
    cumulative_quote: Decimal | None,
) -> tuple[Decimal, Decimal] | None:
    """(quantity, price) to store for a fill report on an order with `filled` so far; None if nothing is new.

    Without cumulative figures the report is taken as it is. With them, the new quantity is
    cumulative - filled, priced at the average of that part: (cumulative quote - what is stored) / new
    quantity, a division in the default decimal context (28 significant digits, ROUND_HALF_EVEN; exact for
    every price a venue quotes with fewer digits).
    """
    if cumulative_quantity is None:
        return quantity, price
    missing = cumulative_quantity - filled
    if missing <= ZERO:
        return None
    if missing == quantity or cumulative_quote is None:
        return missing, price
    value = cumulative_quote - (average_price or ZERO) * filled
    if value <= ZERO:  # inconsistent figures from the venue: keep the execution's own price
        return missing, price
    return missing, value / missing
