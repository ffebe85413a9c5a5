"""Numbers in settings (environment variables) go through the boundary parsers: an int field through
aipx.numbers.parse_int, a Decimal field (and a mapping's Decimal values) through aipx.money.parse_decimal, a
float field as a finite ASCII number. Anything else fails at start with an error naming the variable."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal

import pytest
from aipx.money import parse_decimal
from aipx.numbers import InvalidNumberError, parse_int
from aipx.settings import KafkaSettings, PostgresSettings
from aipx_cognitive.settings import CognitiveSettings
from aipx_oms.settings import OmsSettings
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

FULLWIDTH_12 = "\uff11\uff12"
LISTED = ["1e-999999999", "1e400", "1e30", FULLWIDTH_12, "1e999999999", "NaN", "inf", "1_000", "0x10", ""]
TEXTS = st.one_of(
    st.sampled_from(LISTED),
    st.from_regex(r"\A[+-]?[0-9]{0,25}(\.[0-9]{0,20})?([eE][+-]?[0-9]{1,10})?\Z"),
    st.text(alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=30),
)


@contextmanager
def environment(**values: str) -> Iterator[None]:
    saved = {k: v for k, v in os.environ.items() if k.startswith("AIPX_")}
    for key in saved:
        del os.environ[key]
    os.environ.update(values)
    try:
        yield
    finally:
        for key in [k for k in os.environ if k.startswith("AIPX_")]:
            del os.environ[key]
        os.environ.update(saved)


@given(text=TEXTS)
@example(text="250.5")
@settings(max_examples=150, deadline=None)
def test_a_decimal_setting_is_the_strict_parsers_value_or_an_error_naming_it(text: str) -> None:
    variable = "AIPX_OMS_RISK_RATE_PER_S"
    try:
        expected: Decimal | None = parse_decimal(text.strip(), field=variable)
    except InvalidNumberError:
        expected = None
    with environment(**{variable: text}):
        try:
            value = OmsSettings().risk_rate_per_s
        except ValidationError as exc:
            assert expected is None or expected <= 0, (text, exc)  # refused, or a field constraint
            assert expected is not None or variable in str(exc), str(exc)
            return
    assert value == expected


@given(text=TEXTS)
@example(text="5")
@example(text=str(2**63))
@settings(max_examples=150, deadline=None)
def test_an_int_setting_is_parse_ints_value_or_an_error_naming_it(text: str) -> None:
    variable = "AIPX_KAFKA_LINGER_MS"
    try:
        expected: int | None = parse_int(text.strip(), field=variable)
    except InvalidNumberError:
        expected = None
    with environment(**{variable: text}):
        try:
            value = KafkaSettings().linger_ms
        except ValidationError as exc:
            assert expected is None or expected < 0, (text, exc)
            assert expected is not None or variable in str(exc), str(exc)
            return
    assert value == expected


@given(text=TEXTS)
@example(text="2.5")
@settings(max_examples=150, deadline=None)
def test_a_float_setting_is_finite_ascii_or_an_error_naming_it(text: str) -> None:
    variable = "AIPX_POSTGRES_COMMAND_TIMEOUT_S"
    with environment(**{variable: text}):
        try:
            value = PostgresSettings().command_timeout_s
        except ValidationError as exc:
            assert variable in str(exc) or "greater than 0" in str(exc), str(exc)
            return
    assert text.strip().isascii() and math.isfinite(value) and value > 0
    assert value == float(text)


@pytest.mark.parametrize(
    ("mapping", "error"),
    [
        ('{"BTC-USDT": "1e999999999"}', "exponent of more than 4 digits"),
        ('{"BTC-USDT": 0.1}', "not a binary float"),
        ('{"BTC-USDT": "\uff11"}', "is not a decimal number"),
    ],
)
def test_a_mapping_of_decimals_refuses_each_bad_value_by_key(mapping: str, error: str) -> None:
    with environment(AIPX_COGNITIVE_ORDER_QUANTITIES=mapping), pytest.raises(ValidationError) as exc:
        CognitiveSettings()
    assert "AIPX_COGNITIVE_ORDER_QUANTITIES['BTC-USDT']" in str(exc.value) and error in str(exc.value)
    with environment(AIPX_COGNITIVE_ORDER_QUANTITIES='{"BTC-USDT": "0.001"}'):
        assert CognitiveSettings().order_quantities == {"BTC-USDT": Decimal("0.001")}
