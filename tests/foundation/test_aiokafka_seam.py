"""The one seam into aiokafka's private producer internals (aipx.kafka.clients): it fits the pinned version
and fails loudly here when an aiokafka upgrade changes what NodeDrainingAccumulator relies on; a producer
whose internals do not fit keeps aiokafka's own accumulator instead of breaking."""

from __future__ import annotations

import logging
import tomllib
from pathlib import Path

import aiokafka
import pytest
from aiokafka import AIOKafkaProducer
from aipx.kafka import create_producer
from aipx.kafka.clients import (
    AIOKAFKA_VERIFIED,
    NodeDrainingAccumulator,
    install_node_draining,
    node_draining_unfit,
)
from aipx.settings import KafkaSettings

ROOT = Path(__file__).resolve().parents[2]


def test_aiokafka_is_pinned_to_the_version_the_seam_was_verified_with() -> None:
    deps = tomllib.loads((ROOT / "libs/aipx/pyproject.toml").read_text())["project"]["dependencies"]
    [pin] = [d for d in deps if d.startswith("aiokafka")]
    assert pin.endswith(f"=={AIOKAFKA_VERIFIED}"), f"aiokafka must stay pinned ({pin})"
    assert aiokafka.__version__ == AIOKAFKA_VERIFIED, (
        f"aiokafka {aiokafka.__version__} is installed; NodeDrainingAccumulator was verified with "
        f"{AIOKAFKA_VERIFIED}: re-check its private surface (aipx.kafka.clients.node_draining_unfit) and "
        "tests/foundation/test_producer_draining.py, then update AIOKAFKA_VERIFIED and the pin"
    )


async def test_the_seam_fits_a_real_producer_and_installs_the_draining_accumulator() -> None:
    producer = AIOKafkaProducer(bootstrap_servers="127.0.0.1:1")  # not started: nothing connects
    assert node_draining_unfit(producer) is None, "aiokafka's private surface changed"
    assert install_node_draining(producer)
    assert type(producer._message_accumulator) is NodeDrainingAccumulator
    made = create_producer(KafkaSettings(bootstrap_servers="127.0.0.1:1"), client_id="seam")
    assert type(made._message_accumulator) is NodeDrainingAccumulator


async def test_a_producer_that_does_not_fit_keeps_its_accumulator_and_says_why(
    caplog: pytest.LogCaptureFixture,
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers="127.0.0.1:1")
    assert install_node_draining(producer)
    # Installed once, the accumulator is no longer aiokafka's own class: a second install must refuse.
    caplog.set_level(logging.WARNING)
    assert (
        node_draining_unfit(producer)
        == "the producer's accumulator is NodeDrainingAccumulator, not MessageAccumulator"
    )
    assert not install_node_draining(producer)
    assert "keeps aiokafka's accumulator" in caplog.text


def _lz4_batch(records: int) -> bytes:
    """A record batch as the producer builds it (aiokafka's Cython builder), LZ4-compressed (codec 3)."""
    from aiokafka.record.default_records import DefaultRecordBatchBuilder

    builder = DefaultRecordBatchBuilder(2, 3, False, -1, -1, -1, 1 << 20)
    for i in range(records):
        value = b"binance BTCUSDT trade 97123.45000000 0.01200000 " + str(i).encode()
        builder.append(i, timestamp=1_700_000_000_000 + i, key=b"BTCUSDT", value=value, headers=[])
    return bytes(builder.build())


def test_the_lz4_level_reaches_both_record_batch_builders_and_compresses_the_kafka_frame() -> None:
    import aiokafka.record._crecords.default_records as cython_builder
    import aiokafka.record.default_records as python_builder
    from aiokafka.codec import lz4_decode
    from aipx.kafka.clients import install_lz4_level

    try:
        assert install_lz4_level(9)
        slow = _lz4_batch(200)
        assert install_lz4_level(0)
        fast = _lz4_batch(200)
        for module in (cython_builder, python_builder):
            assert module.lz4_encode.keywords == {"level": 0}, module.__name__
        # Same records, same framing (61-byte v2 batch header, then the LZ4 frame the broker decodes):
        # only the compressor's effort differs.
        assert lz4_decode(fast[61:]) == lz4_decode(slow[61:])
        assert int.from_bytes(fast[21:23], "big") & 0x07 == 3  # attributes (int16 at 21): codec 3 = lz4
    finally:
        install_lz4_level(KafkaSettings().lz4_level)


async def test_create_producer_installs_the_settings_lz4_level() -> None:
    import aiokafka.record._crecords.default_records as cython_builder

    try:
        create_producer(KafkaSettings(bootstrap_servers="127.0.0.1:1", lz4_level=4), client_id="seam")
        assert cython_builder.lz4_encode.keywords == {"level": 4}
    finally:
        create_producer(KafkaSettings(bootstrap_servers="127.0.0.1:1"), client_id="seam")
    assert cython_builder.lz4_encode.keywords == {"level": KafkaSettings().lz4_level}
