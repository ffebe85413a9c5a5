"""The strict number parsers every boundary uses (aipx.money.parse_decimal, aipx.numbers)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from aipx.money import (
    MAX_FRACTION_DIGITS,
    MAX_INTEGER_DIGITS,
    InvalidDecimalError,
    format_decimal,
    is_plain_decimal,
    parse_decimal,
)
from aipx.numbers import INT64_MAX, InvalidNumberError, epoch_ms_to_ns, epoch_ns, parse_int
from hypothesis import given
from hypothesis import strategies as st

# Every input the order-path-under-failure issue listed, and their neighbours.
HOSTILE_DECIMALS = [
    "1e-999999999",
    "1e400",
    "1e30",
    "1e999999999",
    "\uff11\uff12",  # full-width digits
    "1e-9999999",
    "NaN",
    "-Infinity",
    "inf",
    "",
    " 1",
    "1 ",
    "0x10",
    "1_000",
    "1" * 21,
    "0." + "0" * 18 + "1",
    "1" * 65,
    "١٢",  # Arabic-Indic digits
]


@pytest.mark.parametrize("text", HOSTILE_DECIMALS)
def test_hostile_decimals_are_refused_naming_the_field(text: str) -> None:
    with pytest.raises(InvalidDecimalError) as info:
        parse_decimal(text, field="order.quantity")
    assert info.value.field == "order.quantity"
    assert str(info.value).startswith("order.quantity: ")


@pytest.mark.parametrize("value", [1.5, True, None, b"1", 1])
def test_non_strings_are_refused(value: object) -> None:
    with pytest.raises(InvalidDecimalError, match="must be a decimal string"):
        parse_decimal(value, field="price")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("61234.50", "61234.50"),
        ("-0.001", "-0.001"),
        ("1e19", "10000000000000000000"),
        ("1.5E+3", "1500"),
        (".5", "0.5"),
        ("+7", "7"),
        ("0e-9999", "0"),
        ("0e+9999", "0"),
        ("1." + "0" * 30, "1"),  # trailing zeros past the scale are dropped, the value is unchanged
        ("0." + "0" * 17 + "1", "0." + "0" * 17 + "1"),
        ("9" * 20 + "." + "9" * 18, "9" * 20 + "." + "9" * 18),
    ],
)
def test_accepted_decimals(text: str, expected: str) -> None:
    assert format_decimal(parse_decimal(text)) == expected


@given(
    st.decimals(
        min_value=Decimal("-" + "9" * MAX_INTEGER_DIGITS + "." + "9" * MAX_FRACTION_DIGITS),
        max_value=Decimal("9" * MAX_INTEGER_DIGITS + "." + "9" * MAX_FRACTION_DIGITS),
        places=MAX_FRACTION_DIGITS,
        allow_nan=False,
        allow_infinity=False,
    )
)
def test_every_in_range_value_round_trips_exactly(value: Decimal) -> None:
    text = format_decimal(value)
    assert parse_decimal(text) == value
    assert is_plain_decimal(text)  # the hot paths' fast check accepts every in-range positional text


@given(st.text(max_size=80))
def test_any_text_is_either_a_bounded_decimal_or_a_clear_error(text: str) -> None:
    try:
        value = parse_decimal(text, field="f")
    except InvalidDecimalError as exc:
        assert exc.field == "f"
        return
    assert value.is_finite()
    assert len(format_decimal(value)) <= MAX_INTEGER_DIGITS + MAX_FRACTION_DIGITS + 2
    assert abs(value) < Decimal(10) ** MAX_INTEGER_DIGITS


@given(st.from_regex(r"[+-]?[0-9]{0,30}(\.[0-9]{0,30})?([eE][+-]?[0-9]{1,12})?", fullmatch=True))
def test_number_shaped_text_never_expands(text: str) -> None:
    try:
        value = parse_decimal(text)
    except InvalidDecimalError:
        return
    assert len(format_decimal(value)) <= 40


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        (5, True),
        ("5", True),
        ("-5", True),
        (True, False),
        (1.0, False),
        (2**63, False),
        ("\uff11", False),
        ("", False),
    ],
)
def test_parse_int(value: object, ok: bool) -> None:
    if ok:
        assert parse_int(value, field="n") == int(str(value))
    else:
        with pytest.raises(InvalidNumberError) as info:
            parse_int(value, field="n")
        assert info.value.field == "n"


def test_timestamps_are_bounded_to_int64_nanoseconds() -> None:
    assert epoch_ms_to_ns(1_700_000_000_000, field="E") == 1_700_000_000_000_000_000
    with pytest.raises(InvalidNumberError, match="E: "):
        epoch_ms_to_ns(2**53, field="E")  # the venue timestamp that used to end the connection
    with pytest.raises(InvalidNumberError):
        epoch_ms_to_ns(-1, field="E")
    assert epoch_ns(INT64_MAX, field="aipx-event-time-ns") == INT64_MAX
    with pytest.raises(InvalidNumberError):
        epoch_ns(2**63, field="aipx-event-time-ns")  # the header that used to stall the recorder
    with pytest.raises(InvalidNumberError):
        epoch_ns("9" * 30, field="aipx-event-time-ns")
